"""What the operator backend costs a request: store-managed keys and the request ledger (log, stats, key usage).

    python -m bench.keys [--requests 400] [--concurrency 1,8] [--pairs 2000]

Two parts, both on a real redis-server:

* **Redis time** (in process, ``INFO commandstats``): a lease + settle pair without and with the ledger folded
  into the settle (the log entry, hourly and daily counters), and one key admission with every limit set.
* **End to end** (simulator → gateway processes, rounds interleaved): non-stream chat completions with a key from
  ``API_KEYS`` (compared in memory; its request still gets a log entry and counters, inside the settle) and with a
  store-managed key with rpm, rpd, concurrency and a token quota (one more command: its admission): latency,
  gateway CPU per request and store commands per request.

Results go to ``bench/results/keys.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.load import percentile
from bench.pool_scale import evalsha_usec
from bench.procs import (
    ADMIN_PASSWORD,
    API_KEY,
    Proc,
    free_port,
    gateway_env,
    spawn,
    start_gateway,
    store_commands,
    wait_http,
)
from bench.run import fill_pool, make_sim_accounts
from core.apikeys import ApiKeys, KeyQuota, KeySpec
from core.ledger import Ledger, RequestRecord
from core.pool import Outcome, TokenPool
from core.settings import Settings
from core.store import Store
from core.store.redis_transport import RedisTransport
from tests.pool.conftest import fake_token
from tests.support.redis_server import running_redis_server

RESULTS = Path(__file__).resolve().parent / "results" / "keys.md"


async def redis_time(url: str, pairs: int) -> dict[str, float]:
    """µs of Redis time per lease + settle pair, without and with the ledger, and per key admission."""
    store = Store(RedisTransport.from_url(url), prefix="bench-keys:", timeout=30)
    await store.call("FLUSHALL")
    settings = Settings(lease_wait=0, account_concurrency=64)
    pool, ledger, keys = TokenPool(store, settings), Ledger(store, settings), ApiKeys(store, settings)
    await pool.add([fake_token(n) for n in range(50)])

    async def pair(with_ledger: bool, n: int) -> None:
        lease = await pool.lease(mode="auto", min_tier="basic", cost=1, model="grok-4.5")
        ops = None
        if with_ledger:
            record = RequestRecord(route="POST /v1/chat/completions", key_id=f"key{n % 20}", key_name="bench",
                                   model="grok-4.5", account=lease.account_id, status=200, prompt_tokens=12,
                                   completion_tokens=40, ttft_ms=3.0, attempts=1)
            ops = ledger.ops(record)
        await pool.settle(lease, Outcome(ok=True, model="grok-4.5", prompt_tokens=12, completion_tokens=40,
                                         latency_ms=5.0, ledger=ops))

    out: dict[str, float] = {}
    for label, with_ledger in (("warm", False), ("pair", False), ("pair_ledger", True), ("pair_again", False),
                               ("pair_ledger_again", True)):
        await store.call("CONFIG", "RESETSTAT")
        for n in range(pairs if label != "warm" else 100):
            await pair(with_ledger, n)
        calls, usec = await evalsha_usec(store)
        out[label] = usec / max(calls, 1) * 2  # two scripts per pair
    _, secret = await keys.create(KeySpec(name="bench", rpm=10**6, rpd=10**8, concurrency=10**4,
                                          quota=KeyQuota("tokens", 10**12, "month")))
    await store.call("CONFIG", "RESETSTAT")
    for _ in range(pairs):
        await keys.admit(secret, scope="chat", model="grok-4.5", counted=True)
    calls, usec = await evalsha_usec(store)
    out["admit"] = usec / max(calls, 1)
    await store.close()
    return out


async def chat_block(url: str, key: str, count: int, concurrency: int, gateway: Proc, into: dict[str, Any], *,
                     count_commands: bool = True) -> None:
    """``count`` non-stream chat completions with ``key``, ``concurrency`` at a time; adds to ``into``: the
    latencies (``times``), errors, gateway CPU seconds, requests sent and (``count_commands``) store commands."""
    body = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "hello"}]}
    queue = list(range(count))
    times: list[float] = into.setdefault("times", [])
    async with httpx.AsyncClient(timeout=60) as client:
        cpu0 = gateway.cpu()
        cmd0 = store_commands(gateway) if count_commands else 0

        async def worker() -> None:
            while queue:
                queue.pop()
                started = time.perf_counter()
                response = await client.post(url + "/v1/chat/completions", json=body,
                                             headers={"Authorization": f"Bearer {key}"})
                if response.status_code == 200:
                    times.append(time.perf_counter() - started)
                else:
                    into["errors"] = into.get("errors", 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        into["cpu"] = into.get("cpu", 0.0) + gateway.cpu() - cpu0
        into["sent"] = into.get("sent", 0) + count
        if count_commands:  # store_commands() itself costs one command (its usage read), subtracted here
            into["commands"] = into.get("commands", 0) + store_commands(gateway) - cmd0 - 1


def end_to_end(redis_url: str, requests: int, levels: tuple[int, ...], rounds: int = 4) -> dict[int, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="g2a-bench-keys-"))
    port = free_port()
    sim = spawn("simulator", [sys.executable, "-m", "simulator", "--fast", "--port", str(port), "--log-level",
                              "warning"], workdir, port=port)
    gateway = None
    try:
        wait_http(sim, "/__sim/config")
        env = gateway_env(sim, {"REDIS_URL": redis_url, "STORE_PREFIX": "bench-e2e:"}, ACCOUNT_CONCURRENCY="64")
        gateway = start_gateway("gateway", workdir, env)
        wait_http(gateway, "/health")
        fill_pool(gateway, make_sim_accounts(sim, 16))
        created = httpx.post(gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"},
                             json={"name": "bench", "rpm": 10**6, "rpd": 10**8, "concurrency": 10**4,
                                   "quota": {"kind": "tokens", "limit": 10**12, "period": "month"}}).json()
        paths = {"API_KEYS key": API_KEY, "store key (all limits)": created["secret"]}
        results: dict[int, dict[str, Any]] = {}
        for level in levels:
            stats: dict[str, dict[str, Any]] = {name: {} for name in paths}
            for key in paths.values():  # warm-up
                asyncio.run(chat_block(gateway.url, key, 30, level, gateway, {}))
            for _ in range(rounds):
                for name, key in paths.items():
                    asyncio.run(chat_block(gateway.url, key, max(requests // rounds, 1), level, gateway,
                                           stats[name]))
            results[level] = stats
        return results
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()


def ms(values: list[float], q: float) -> float:
    """The ``q``-th percentile of latencies in seconds, in ms."""
    return percentile(values, q) * 1000


def report(redis: dict[str, float], e2e: dict[int, dict[str, Any]], pairs: int) -> str:
    plain = statistics.fmean([redis["pair"], redis["pair_again"]])
    with_ledger = statistics.fmean([redis["pair_ledger"], redis["pair_ledger_again"]])
    lines = [
        f"# Keys and the request ledger\n\n`python -m bench.keys` — {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, "
        "one redis-server, 2 shared cores.\n",
        f"\n## Redis time per request ({pairs} each, `INFO commandstats`)\n",
        "| what | µs of Redis time | vs plain pair |", "| --- | ---: | ---: |",
        f"| lease + settle | {plain:.1f} | 1.00× |",
        f"| lease + settle with the ledger (log entry, hourly + daily counters) | {with_ledger:.1f} | "
        f"{with_ledger / plain:.2f}× |",
        f"| key admission (rpm, rpd, concurrency, token quota) | {redis['admit']:.1f} | {redis['admit'] / plain:.2f}× |",
        "\n## End to end: non-stream chat, simulator with no delay\n",
        "| c | key | requests | p50 ms | p99 ms | gateway CPU ms/request | store commands/request | p50 vs API_KEYS "
        "| CPU vs API_KEYS | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level, stats in e2e.items():
        base = stats["API_KEYS key"]
        base_p50 = ms(base["times"], 50)
        base_cpu = base["cpu"] / max(len(base["times"]), 1) * 1000
        for name, s in stats.items():
            done = max(len(s["times"]), 1)
            cpu = s["cpu"] / done * 1000
            lines.append(
                f"| {level} | {name} | {len(s['times'])} | {ms(s['times'], 50):.2f} | {ms(s['times'], 99):.2f} "
                f"| {cpu:.2f} | {s['commands'] / max(s['sent'], 1):.2f} | {ms(s['times'], 50) - base_p50:+.2f} ms "
                f"| {cpu / base_cpu:.2f}× | {s.get('errors', 0)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per key and level")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    levels = tuple(int(x) for x in args.concurrency.split(","))
    with running_redis_server() as server:
        redis = asyncio.run(redis_time(server.url, args.pairs))
        e2e = end_to_end(server.url, args.requests, levels)
    text = report(redis, e2e, args.pairs)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
