"""The whole benchmark plan, in one run: processes up, pools filled, load at each concurrency, store commands on
each transport, memory, import time. Returns one JSON-able dict that ``bench.report`` renders."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import chat, imports
from bench.load import BlockResult, close_clients, merge, open_clients, run_block, run_paced
from bench.procs import (
    UPSTASH_TOKEN,
    Proc,
    admin,
    gateway_env,
    http_json,
    loaded_extensions,
    start_bare,
    start_gateway,
    start_simulator,
    start_upstash,
    store_commands,
    wait_http,
    wait_port,
    wait_quiet,
)
from core.store.embedded import EmbeddedRedis
from tests.support.redis_server import RedisServer, redis_server_binary, start_redis_server

CHAT_MODES = ("auto", "fast", "expert", "heavy")
BIG_QUOTA = 10_000_000


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...] = (1, 16, 64)
    requests: dict[int, int] | None = None  # per concurrency level
    warmup: int = 100
    accounts: int = 96
    transport_requests: int = 300  # per block on the redis / upstash gateways
    transport_concurrency: int = 16
    stale_requests: int = 100
    import_runs: int = 11
    cold_import_repeat: int = 9  # bench/cold_import.py, when present (0 = skip)
    client: str = "raw"
    transports: tuple[str, ...] = ("embedded", "redis", "upstash")
    pool_sizes: tuple[int, ...] = (32, 128, 512)  # lease cost vs pool size (redis transport)
    pool_size_requests: int = 600
    rounds: int = 4  # each level's blocks are split into interleaved rounds
    noise_limit: float = 0.4  # a round during which other processes kept more cores busy is run again ...
    retry_budget: float = 45.0  # ... while this many seconds of discarded rounds are not used up
    paced_rate: float = 200.0  # req/s of the open-loop c=16 block: about a third of one gateway process's capacity
    paced_requests: int = 1500
    sections: tuple[str, ...] = ("latency", "stores", "import")
    quick: bool = False
    wait_quiet: float = 0.0  # seconds to wait for other processes to calm down before starting

    def n(self, level: int) -> int:
        return (self.requests or {}).get(level, 500)


FULL = Plan(requests={1: 1000, 16: 2000, 64: 3000})
QUICK = Plan(quick=True, requests={1: 40, 16: 160, 64: 192}, warmup=64, accounts=72, transport_requests=48,
             stale_requests=16, import_runs=5, cold_import_repeat=0, paced_requests=150, rounds=2, retry_budget=8.0, pool_sizes=(32, 128), pool_size_requests=96)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- pool setup ----------------------------------------------------------------------------------------------------


def make_sim_accounts(sim: Proc, count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    tokens = [f"bench-{run}-{i:03d}-{uuid.uuid4().hex}" for i in range(count)]
    quotas = dict.fromkeys(CHAT_MODES, BIG_QUOTA)
    for token in tokens:
        http_json("POST", sim.url + "/__sim/accounts", {"token": token, "tier": "heavy", "quotas": quotas})
    return tokens


def fill_pool(gateway: Proc, tokens: list[str]) -> dict[str, Any]:
    """Import the tokens and refresh every account's quota (so the hot path never needs a lazy refresh)."""
    report = admin(gateway, "POST", "/admin/tokens", {"tokens": tokens})
    if report.get("added") != len(tokens):
        raise RuntimeError(f"{gateway.name}: token import added {report.get('added')} of {len(tokens)}")
    progress = admin(gateway, "POST", "/admin/tokens/refresh", {})
    deadline = time.monotonic() + 120
    while progress["status"] != "done":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{gateway.name}: quota refresh did not finish: {progress}")
        progress = admin(gateway, "GET", f"/admin/refresh/{progress['job_id']}")
    if progress.get("errors"):
        raise RuntimeError(f"{gateway.name}: quota refresh errors: {progress}")
    return progress


def usage_call_cost(gateway: Proc) -> int:
    """Store commands one ``GET /admin/usage`` itself spends (its HGETALL), to subtract from deltas."""
    first = store_commands(gateway)
    second = store_commands(gateway)
    third = store_commands(gateway)
    if third - second != second - first:
        raise RuntimeError(f"{gateway.name}: /admin/usage costs a varying number of store commands")
    return second - first


async def counted_block(gateway: Proc, usage_cost: int, label: str, **kwargs: Any) -> BlockResult:
    """A load block on a gateway, with its store commands per request (the warm-up is outside the count)."""
    warmup = kwargs.pop("warmup", 0)
    if warmup:
        await run_block(label + " (warm-up)", kwargs["targets"], concurrency=kwargs["concurrency"],
                        requests=warmup, mark=kwargs.get("mark"), client=kwargs.get("client", "raw"),
                        connections=kwargs.get("connections"))
    before = store_commands(gateway)
    result = await run_block(label, **kwargs)
    after = store_commands(gateway)
    sent = result.ok + result.errors
    result.extra["store_commands"] = after - before - usage_cost
    result.extra["store_commands_per_request"] = (after - before - usage_cost) / max(sent, 1)
    return result


# -- the run -------------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.redis: RedisServer | None = None
        self.embedded_dir = workdir / "embedded-data"
        self.retry_budget = plan.retry_budget  # seconds of measurement that may be thrown away as too noisy
        self.rejected_rounds: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {"plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__}}
        self.results["plan"]["requests"] = {str(level): plan.n(level) for level in plan.levels}

    def track(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        EmbeddedRedis(self.embedded_dir).stop()
        if self.redis is not None:
            self.redis.stop()

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        if plan.wait_quiet:
            log(f"waiting up to {plan.wait_quiet:g}s for the machine to be quiet")
            self.results["busy_cores_before_start"] = wait_quiet(plan.wait_quiet)
        started = time.monotonic()
        self.results["machine"] = machine_facts()
        log("starting simulator, bare FastAPI app and gateway processes")
        sim = self.track(start_simulator(self.workdir))
        bare = self.track(start_bare(self.workdir))
        prefix = f"bench-{uuid.uuid4().hex[:8]}:"
        embedded_env = gateway_env(sim, {"DATA_DIR": str(self.embedded_dir), "STORE_PREFIX": prefix})
        gateway = self.track(start_gateway("gateway-embedded", self.workdir, embedded_env))
        others: dict[str, tuple[Proc, Proc]] = {}
        stores = "stores" in plan.sections
        if stores and ("redis" in plan.transports or "upstash" in plan.transports):
            if redis_server_binary() is None:
                log("redis-server not found: skipping the redis and upstash transports")
                self.results["skipped_transports"] = "redis-server not installed"
            else:
                (self.workdir / "redis").mkdir()
                self.redis = start_redis_server(self.workdir / "redis")
                for kind in ("redis", "upstash"):
                    if kind not in plan.transports:
                        continue
                    if kind == "redis":
                        store = {"REDIS_URL": self.redis.url}
                    else:
                        upstash = self.track(start_upstash(self.workdir, self.redis.url))
                        store = {"UPSTASH_REDIS_REST_URL": upstash.url, "UPSTASH_REDIS_REST_TOKEN": UPSTASH_TOKEN}
                    env = gateway_env(sim, {**store, "STORE_PREFIX": f"bench-{kind}-{uuid.uuid4().hex[:8]}:"})
                    hot = self.track(start_gateway(f"gateway-{kind}", self.workdir, env))
                    stale = self.track(start_gateway(f"gateway-{kind}-stale", self.workdir,
                                                     {**env, "QUOTA_STALE_AFTER": "0.001"}))
                    others[kind] = (hot, stale)
        embedded_stale = None
        if stores:
            embedded_stale = self.track(start_gateway("gateway-embedded-stale", self.workdir,
                                                      {**embedded_env, "QUOTA_STALE_AFTER": "0.001"}))
        wait_http(sim, "/__sim/health")
        wait_http(bare, "/ping")
        wait_http(gateway, "/health", timeout=60)  # builds the engine and starts the embedded redis-server
        if embedded_stale is not None:
            wait_http(embedded_stale, "/health", timeout=60)
        for proc in self.procs:
            if proc.name.startswith("upstash"):
                wait_port(proc)
        for hot, stale in others.values():
            wait_http(hot, "/health", timeout=60)
            wait_http(stale, "/health", timeout=60)
        log(f"processes up in {time.monotonic() - started:.1f}s; creating {plan.accounts} simulator accounts")
        tokens = make_sim_accounts(sim, plan.accounts)
        fill_pool(gateway, tokens)
        usage_cost = usage_call_cost(gateway)
        store_pid = EmbeddedRedis(self.embedded_dir).pid()
        watch = {"simulator": sim.cpu, "gateway": gateway.cpu, "bare FastAPI": bare.cpu}
        if store_pid:
            watch["redis-server (embedded)"] = lambda: _cpu(store_pid)
        self.results["memory_before"] = {"gateway": gateway.memory(), "bare FastAPI": bare.memory()}
        self.results["gateway_extensions"] = loaded_extensions(gateway.pid)
        self.results["setup"] = {"accounts": plan.accounts, "account_concurrency": 1,
                                 "usage_call_store_commands": usage_cost}

        direct = chat.direct_targets(sim, tokens)
        gw_plain = chat.gateway_target(gateway, stream=False)
        gw_stream = chat.gateway_target(gateway, stream=True)
        bare_target = chat.bare_target(bare)
        client = plan.client

        log("warm-up")
        warm_c = min(16, max(plan.levels)) if "latency" in plan.sections else 1
        await run_block("warm direct", direct, concurrency=warm_c, requests=plan.warmup, client=client)
        await run_block("warm gateway", lambda i: gw_plain, concurrency=warm_c, requests=plan.warmup, client=client)
        await run_block("warm gateway stream", lambda i: gw_stream, concurrency=warm_c, requests=plan.warmup,
                        client=client)
        await run_block("warm bare", lambda i: bare_target, concurrency=warm_c, requests=plan.warmup, client=client)

        blocks: list[dict[str, Any]] = []
        levels = plan.levels if "latency" in plan.sections else ()
        for level in levels:
            n = plan.n(level)
            rounds = max(1, min(plan.rounds, n // max(level, 1)))
            per_round = math.ceil(n / rounds)
            log(f"c={level}: {per_round * rounds} requests per path in {rounds} interleaved rounds")

            # One keep-alive pool per path for all rounds of this level (opened by the first round's warm-up):
            # a burst of fresh connections costs the simulator hundreds of ms at c=64, on both paths alike.
            pools = {
                "direct": open_clients(direct, level, client),
                "gateway": open_clients(lambda i: gw_plain, level, client),
                "gateway stream": open_clients(lambda i: gw_stream, level, client),
                "bare FastAPI": open_clients(lambda i: bare_target, level, client),
            }

            def common(name: str, requests: int, level: int = level, pools: dict = pools) -> dict[str, Any]:
                return {"concurrency": level, "requests": requests, "watch": watch, "client": client,
                        "connections": pools[name]}

            paths: list[tuple[str, Any]] = [
                ("direct", lambda r, w: run_block("direct", direct, warmup=w, mark=_ndjson, check=chat.direct_ok,
                                                  **common("direct", r))),
                ("gateway", lambda r, w: counted_block(gateway, usage_cost, "gateway", targets=lambda i: gw_plain,
                                                       warmup=w, check=chat.completion_ok, **common("gateway", r))),
                ("gateway stream", lambda r, w: counted_block(
                    gateway, usage_cost, "gateway stream", targets=lambda i: gw_stream, warmup=w, mark=_sse,
                    check=chat.stream_ok, **common("gateway stream", r))),
                ("bare FastAPI", lambda r, w: run_block("bare FastAPI", lambda i: bare_target, warmup=w,
                                                        check=chat.bare_ok, **common("bare FastAPI", r))),
            ]

            parts: dict[str, list[BlockResult]] = {name: [] for name, _ in paths}
            for r in range(rounds):
                warm = level  # re-opens any connection a server closed while idle (the simulator keeps them 5 s)
                while True:
                    # Alternate the order so drift and other processes' bursts hit every path alike.
                    got = {}
                    for name, block in paths if r % 2 == 0 else paths[::-1]:
                        got[name] = await block(per_round, warm)
                    noise = _round_noise(got.values())
                    if noise <= plan.noise_limit or self.retry_budget <= 0:
                        break
                    spent = sum(b.wall_s for b in got.values())
                    self.retry_budget -= spent
                    self.rejected_rounds.append({"concurrency": level, "round": r, "background_cores": noise})
                    log(f"  c={level} round {r + 1}: other processes kept {noise:.2f} cores busy; round discarded, "
                        f"run again (retry budget left {max(self.retry_budget, 0):.0f}s)")
                    await asyncio.sleep(1.0)  # let the burst pass
                for name in got:
                    parts[name].append(got[name])
            blocks.extend(merge(parts[name]).to_dict() for name, _ in paths)
            for pool in pools.values():
                await close_clients(pool)
            _log_level(blocks[-4:])
            if level == 16 and plan.paced_requests:
                rate = plan.paced_rate
                log(f"c=16 paced at {rate:.0f} req/s (open loop), {plan.paced_requests} requests per path")
                paced = {"rate": rate, "closed_loop_rps": blocks[-3]["rps"]}
                for name, target, mark, check in (("direct", direct, _ndjson, chat.direct_ok),
                                                  ("gateway", lambda i: gw_plain, None, chat.completion_ok)):
                    while True:
                        result = await run_paced(f"{name} paced", target, concurrency=16, rate=rate, mark=mark,
                                                 requests=plan.paced_requests, check=check, watch=watch,
                                                 client=client)
                        noise = _round_noise([result])
                        if noise <= plan.noise_limit or self.retry_budget <= 0:
                            break
                        self.retry_budget -= result.wall_s
                        self.rejected_rounds.append({"concurrency": 16, "round": f"paced {name}",
                                                     "background_cores": noise})
                        log(f"  paced {name}: other processes kept {noise:.2f} cores busy; run again")
                        await asyncio.sleep(1.0)
                    paced[name] = result.to_dict()
                _log_level([paced["direct"], paced["gateway"]])
                self.results["paced"] = paced
        self.results["blocks"] = blocks
        self.results["rejected_rounds"] = self.rejected_rounds
        self.results["memory_after"] = {"gateway": gateway.memory(), "bare FastAPI": bare.memory()}

        if stores and embedded_stale is not None:
            log("store commands per request on each transport")
            transports: dict[str, Any] = {}
            transports["embedded"] = await self.transport_run("embedded", gateway, embedded_stale, tokens=None,
                                                              usage_cost=usage_cost, watch_also=self.store_watch(sim))
            for kind, (hot, stale) in others.items():
                transports[kind] = await self.transport_run(kind, hot, stale, tokens=tokens, usage_cost=None,
                                                            watch_also=self.store_watch(sim, kind))
            self.results["transports"] = transports
            if "redis" in others and self.redis is not None and plan.pool_sizes:
                self.results["pool_sizes"] = await self.pool_size_run(sim, others["redis"][0], tokens)

        self.stop_all()
        if "import" in plan.sections:
            log("import time")
            self.results["import"] = imports.measure(plan.import_runs)
            if plan.cold_import_repeat:
                log(f"bench/cold_import.py --repeat {plan.cold_import_repeat}")
                self.results["import"]["cold_import_script"] = imports.cold_import_script(plan.cold_import_repeat)
        self.results["duration_s"] = time.monotonic() - started
        return self.results

    async def pool_size_run(self, sim: Proc, gateway: Proc, tokens: list[str]) -> list[dict[str, Any]]:
        """The lease script looks at every account: its cost in redis-server CPU as the pool grows."""
        assert self.redis is not None
        redis_pid = self.redis.process.pid
        watch = {"gateway": gateway.cpu, "simulator": sim.cpu, "redis-server": lambda: _cpu(redis_pid)}
        have = len(admin(gateway, "GET", "/admin/tokens")["data"])
        extra = make_sim_accounts(sim, max(0, max(self.plan.pool_sizes) - len(tokens)))
        everything = tokens + extra
        target = chat.gateway_target(gateway, stream=False)
        rows = []
        for size in self.plan.pool_sizes:
            if size > have:
                fill_pool(gateway, everything[have:size])
                have = size
            result = await run_block(f"pool {size}", lambda i: target, concurrency=16,
                                     requests=self.plan.pool_size_requests, warmup=32, check=chat.completion_ok,
                                     watch=watch, client=self.plan.client)
            row = {"accounts": size, **result.to_dict()}
            rows.append(row)
            cpu = result.cpu_ms_per_request
            log(f"pool of {size}: redis-server {cpu['redis-server']:.3f} ms CPU/request, gateway "
                f"{cpu['gateway']:.3f}, p50 {result.total_ms['p50']:.1f} p99 {result.total_ms['p99']:.1f} ms, "
                f"{result.rps:.0f} req/s")
        return rows

    def store_watch(self, sim: Proc, kind: str = "embedded") -> dict[str, Any]:
        """CPU readers for the simulator and the store processes behind one transport (so the *other processes*
        figure of a transport block counts only what is not the benchmark's)."""
        watch: dict[str, Any] = {"simulator": sim.cpu}
        if kind == "embedded":
            pid = EmbeddedRedis(self.embedded_dir).pid()
            if pid:
                watch["redis-server"] = lambda: _cpu(pid)
            return watch
        if self.redis is not None:
            redis_pid = self.redis.process.pid
            watch["redis-server"] = lambda: _cpu(redis_pid)
        if kind == "upstash":
            for proc in self.procs:
                if proc.name == "upstash-compat":
                    watch["upstash-compat server"] = proc.cpu
        return watch

    async def transport_run(
        self, kind: str, hot: Proc, stale: Proc, *, tokens: list[str] | None, usage_cost: int | None,
        watch_also: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store commands per chat request on one transport: hot path (stream and not), then stale quotas."""
        plan = self.plan
        if tokens is not None:
            fill_pool(hot, tokens[: max(plan.transport_concurrency * 2, 8)])
        cost = usage_call_cost(hot) if usage_cost is None else usage_cost
        c = plan.transport_concurrency
        n = plan.transport_requests
        watch = {"gateway": hot.cpu, **(watch_also or {})}
        out: dict[str, Any] = {"usage_call_store_commands": cost}
        for stream in (False, True):
            label = f"{kind} {'stream' if stream else 'non-stream'}"
            target = chat.gateway_target(hot, stream=stream)
            result = await counted_block(
                hot, cost, label, targets=lambda i, t=target: t, concurrency=c, requests=n, warmup=2 * c,
                mark=_sse if stream else None, check=chat.stream_ok if stream else chat.completion_ok,
                client=plan.client, watch=watch,
            )
            out["stream" if stream else "non_stream"] = result.to_dict()
        # Stale quota: another instance on the same store that treats every quota as stale (QUOTA_STALE_AFTER
        # =1 ms), so every lease asks for the lazy refresh (/rest/rate-limits) and settle stores the windows.
        stale_cost = usage_call_cost(stale)
        target = chat.gateway_target(stale, stream=False)
        result = await counted_block(
            stale, stale_cost, f"{kind} stale quota", targets=lambda i: target, concurrency=4,
            requests=plan.stale_requests, warmup=8, check=chat.completion_ok, client=plan.client,
        )
        out["stale"] = result.to_dict()
        log(f"{kind}: {out['non_stream']['store_commands_per_request']:.2f} commands/request (non-stream), "
            f"{out['stream']['store_commands_per_request']:.2f} (stream), "
            f"{out['stale']['store_commands_per_request']:.2f} (stale quota)")
        return out


def _round_noise(blocks: Any) -> float:
    """Cores other processes kept busy during a round (wall-time weighted over its blocks)."""
    pairs = [(b.extra.get("background_cores"), b.wall_s) for b in blocks]
    pairs = [(x, w) for x, w in pairs if isinstance(x, float) and not math.isnan(x)]
    wall = sum(w for _, w in pairs)
    return sum(x * w for x, w in pairs) / wall if wall > 0 else 0.0


def _ndjson(line: bytes) -> bool:
    from bench.http import ndjson_token

    return ndjson_token(line)


def _sse(line: bytes) -> bool:
    from bench.http import sse_content

    return sse_content(line)


def _cpu(pid: int) -> float:
    from bench.procs import cpu_seconds

    return cpu_seconds(pid)


def _log_level(blocks: list[dict[str, Any]]) -> None:
    for b in blocks:
        first = b["first_ms"]
        ttft = f" first p50 {first['p50']:.2f} p99 {first['p99']:.2f}" if first else ""
        log(f"  {b['label']:<14} c={b['concurrency']:<3} ok={b['ok']:<5} err={b['errors']:<3} "
            f"p50 {b['total_ms']['p50']:.2f} p99 {b['total_ms']['p99']:.2f} ms{ttft}  {b['rps']:.0f} req/s"
            + (f"  first error: {b['first_error']}" if b["errors"] else ""))


def machine_facts() -> dict[str, Any]:
    loaded = {}
    for name in ("uvloop", "httptools", "uvicorn", "fastapi", "starlette", "pydantic", "curl_cffi", "redis"):
        try:
            module = __import__(name)
            loaded[name] = getattr(module, "__version__", "installed")
        except ImportError:
            loaded[name] = None
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": loaded,
        "loadavg_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally below: every process started is stopped


def run(plan: Plan) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="g2a-bench-"))
    bench = Bench(plan, workdir)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(bench.run())
        return uvloop.run(bench.run())
    finally:
        bench.stop_all()
        if os.environ.get("BENCH_KEEP_LOGS"):
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return value
