"""What the media half costs: added latency of ``images.generate`` over the same Imagine WebSocket request sent
straight to the simulator, the gateway's memory while many clients download one large local media object, and
store commands per image request and per video job (when ``/v1/videos`` exists).

    python -m bench.media [--requests 200] [--concurrency 1,4] [--object-mb 100] [--clients 20] [--wait-quiet 30]

Every component runs in its own process, as in ``python -m bench``: the simulator (fast mode: no artificial
delay), a redis-server, the gateway (``python -m adapters.cli serve``, local media backend under its DATA_DIR).
The large object is put into the media store by this process, through ``MediaStore`` on the gateway's DATA_DIR,
redis and store prefix, so the gateway serves it as one of its own. Results go to ``bench/results/media.md``.

* Latency: the direct path opens the Imagine WebSocket with the account's cookies, sends the reset and request
  frames the gateway sends (``core.grok.imagine.ImagineRequest.frames``) and reads until the job completes,
  decoding the final image (what the gateway has to do too). The gateway path is ``POST /v1/images/generations``
  (``n=1``; ``b64_json`` and ``url``). Rounds alternate between paths so machine noise hits them alike.
* Memory: VmRSS of the gateway sampled every 20 ms from ``/proc/<pid>/status`` while the clients stream
  ``GET /media/{id}`` and throw the bytes away; VmHWM (the kernel's peak) before and after. A gateway that
  buffered the object would grow by about the object size per concurrent download.
* Store commands: ``Store.commands_sent`` of the gateway process (``GET /admin/usage``) around single requests,
  minus the cost of the reading call itself: ``n=1`` images (``url``, ``b64_json``), and a video job created and
  driven by ``POST /v1/videos`` (``VIDEO_DRIVE=inline``), a poll and a download of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.procs import (
    API_KEY,
    Proc,
    cpu_seconds,
    free_port,
    gateway_env,
    http_json,
    machine_busy_seconds,
    memory_kb,
    spawn,
    start_gateway,
    store_commands,
    wait_http,
    wait_quiet,
)
from bench.run import fill_pool, usage_call_cost

RESULTS = Path(__file__).resolve().parent / "results" / "media.md"
STORE_PREFIX = "bench-media:"
BIG = {"total": 10_000_000, "remaining": 10_000_000, "window": 7200}
QUOTAS = dict.fromkeys(("fast", "auto", "expert", "heavy", "image", "imagePro", "imageEdit", "video"), BIG)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000 if ordered else float("nan")


# -- latency ---------------------------------------------------------------------------------------------------


async def direct_one(sim: Proc, token: str, prompt: str) -> float:
    """One Imagine request straight to the simulator: handshake, frames, previews, final image decoded."""
    import websockets

    from core.grok.imagine import ImagineRequest

    started = time.perf_counter()
    headers = {"Cookie": f"sso={token}; sso-rw={token}", "Origin": sim.url}
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/ws/imagine/listen", additional_headers=headers,
                                  max_size=None, compression=None) as ws:
        for frame in ImagineRequest(prompt, 1).frames():
            await ws.send(json.dumps(frame))
        final = None
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "error":
                raise RuntimeError(f"direct Imagine error: {frame}")
            if frame.get("type") == "image" and (frame.get("percentage_complete") or 0) >= 100:
                final = base64.b64decode(frame["blob"])
            if frame.get("type") == "json" and frame.get("current_status") == "completed":
                break
    if not final:
        raise RuntimeError("direct Imagine request completed without an image")
    return time.perf_counter() - started


async def gateway_one(client: httpx.AsyncClient, gateway: Proc, prompt: str, fmt: str) -> float:
    started = time.perf_counter()
    response = await client.post(gateway.url + "/v1/images/generations",
                                 json={"model": "grok-imagine-image", "prompt": prompt, "n": 1,
                                       "response_format": fmt},
                                 headers={"Authorization": f"Bearer {API_KEY}"})
    body = response.json()
    if response.status_code != 200 or not body.get("data"):
        raise RuntimeError(f"gateway images.generate → {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - started


async def latency_block(sim: Proc, gateway: Proc, tokens: list[str], path: str, count: int,
                        concurrency: int, samples: dict[str, list[float]], cpu: dict[str, float]) -> None:
    queue = list(range(count))
    cpu0 = gateway.cpu()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        async def worker(slot: int) -> None:
            while queue:
                n = queue.pop()
                prompt = f"a lighthouse at dusk {uuid.uuid4().hex[:6]} {n}"
                if path == "direct":
                    samples[path].append(await direct_one(sim, tokens[(n + slot) % len(tokens)], prompt))
                else:
                    samples[path].append(await gateway_one(client, gateway, prompt, path.split()[1]))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    cpu[path] = cpu.get(path, 0.0) + gateway.cpu() - cpu0


def run_latency(sim: Proc, gateway: Proc, tokens: list[str], requests: int, levels: tuple[int, ...],
                rounds: int = 4) -> dict[int, list[dict[str, Any]]]:
    paths = ("direct", "gateway b64_json", "gateway url")
    out: dict[int, list[dict[str, Any]]] = {}
    for level in levels:
        samples: dict[str, list[float]] = {p: [] for p in paths}
        cpu: dict[str, float] = {}
        for p in paths:  # warm-up: sockets, imports, lazy quota refreshes
            asyncio.run(latency_block(sim, gateway, tokens, p, max(4, level * 2), level, {p: []}, {}))
        per_round = max(requests // rounds, level)
        for _ in range(rounds):
            for p in paths:
                asyncio.run(latency_block(sim, gateway, tokens, p, per_round, level, samples, cpu))
        direct = samples["direct"]
        rows = []
        for p in paths:
            values = samples[p]
            rows.append({"path": p, "requests": len(values), "p50": _pct(values, 0.5), "p99": _pct(values, 0.99),
                         "added_p50": _pct(values, 0.5) - _pct(direct, 0.5),
                         "added_p99": _pct(values, 0.99) - _pct(direct, 0.99),
                         "gateway_cpu_ms": cpu.get(p, 0.0) / max(len(values), 1) * 1000 if p != "direct" else None,
                         "mean": statistics.fmean(values) * 1000 if values else float("nan")})
        out[level] = rows
    return out


# -- memory while streaming a large object ---------------------------------------------------------------------


async def put_big_object(env: dict[str, str], size: int) -> str:
    """Put ``size`` bytes into the gateway's media store (same DATA_DIR, redis and prefix), chunk by chunk."""
    from core.media.store import MediaStore
    from core.settings import Settings
    from core.store import open_store

    settings = Settings.from_env({k: v for k, v in env.items() if v != ""})
    store = open_store(settings)
    media = MediaStore.from_settings(settings, store, environ={})
    block = os.urandom(1024 * 1024)

    async def chunks():
        for _ in range(size // len(block)):
            yield block

    try:
        item = await media.put_stream(chunks(), mime="video/mp4", kind="video", source="bench")
    finally:
        await store.close()
    return item.filename


def run_memory(gateway: Proc, filename: str, size: int, clients: int) -> dict[str, Any]:
    before = gateway.memory()
    samples: list[int] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            rss = memory_kb(gateway.pid).get("VmRSS")
            if rss:
                samples.append(rss)
            time.sleep(0.02)

    thread = threading.Thread(target=sampler, daemon=True)
    received: list[int] = []
    statuses: list[int] = []

    async def download(client: httpx.AsyncClient) -> None:
        total = 0
        async with client.stream("GET", f"{gateway.url}/media/{filename}") as response:
            statuses.append(response.status_code)
            async for chunk in response.aiter_raw(256 * 1024):
                total += len(chunk)  # to /dev/null
        received.append(total)

    async def all_downloads() -> float:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as client:
            started = time.perf_counter()
            await asyncio.gather(*(download(client) for _ in range(clients)))
            return time.perf_counter() - started

    thread.start()
    try:
        seconds = asyncio.run(all_downloads())
    finally:
        stop.set()
        thread.join()
    after = gateway.memory()
    peak_sampled = max(samples) if samples else after.get("VmRSS", 0)
    base = before.get("VmRSS", 0)
    return {
        "clients": clients, "object_bytes": size, "seconds": seconds, "statuses": sorted(set(statuses)),
        "complete": sum(r == size for r in received), "rss_before_kb": base, "rss_after_kb": after.get("VmRSS", 0),
        "rss_peak_sampled_kb": peak_sampled, "hwm_before_kb": before.get("VmHWM", 0),
        "hwm_after_kb": after.get("VmHWM", 0), "sampled_growth_kb": peak_sampled - base, "samples": len(samples),
        "throughput_mb_s": clients * size / seconds / 1e6 if seconds else 0.0,
    }


# -- store commands --------------------------------------------------------------------------------------------


def run_store_commands(gateway: Proc, repeats: int = 10) -> dict[str, Any]:
    """Mean store commands per ``n=1`` image request (after one warm-up request of each kind), and each delta."""
    cost = usage_call_cost(gateway)
    out: dict[str, Any] = {}
    for fmt in ("url", "b64_json"):
        before = store_commands(gateway)
        http_json("POST", gateway.url + "/v1/images/generations",
                  {"model": "grok-imagine-image", "prompt": f"warm-up {fmt}", "n": 1, "response_format": fmt},
                  token=API_KEY)
        out[f"first {fmt}"] = store_commands(gateway) - before - cost
        deltas = []
        for i in range(repeats):
            before = store_commands(gateway)
            http_json("POST", gateway.url + "/v1/images/generations",
                      {"model": "grok-imagine-image", "prompt": f"store count {fmt} {i}", "n": 1,
                       "response_format": fmt}, token=API_KEY)
            deltas.append(store_commands(gateway) - before - cost)
        out[f"images n=1 {fmt}"] = (statistics.fmean(deltas), deltas)
    return out


def run_video_commands(gateway: Proc, repeats: int = 3) -> dict[str, Any]:
    """Store commands of one video job (``VIDEO_DRIVE=inline``: the ``POST`` runs it), of a poll, a download."""
    cost = usage_call_cost(gateway)
    out: dict[str, Any] = {}

    def job(i: int) -> tuple[int, str]:
        before = store_commands(gateway)
        video = http_json("POST", gateway.url + "/v1/videos",
                          {"prompt": f"a paper boat {i}", "seconds": "4", "size": "480x854"}, token=API_KEY)
        assert isinstance(video, dict) and video.get("status") == "completed", video
        return store_commands(gateway) - before - cost, video["id"]

    out["first"], _ = job(-1)
    deltas, polls, downloads = [], [], []
    for i in range(repeats):
        delta, video_id = job(i)
        deltas.append(delta)
        before = store_commands(gateway)
        http_json("GET", f"{gateway.url}/v1/videos/{video_id}", token=API_KEY)
        polls.append(store_commands(gateway) - before - cost)
        before = store_commands(gateway)
        response = httpx.get(f"{gateway.url}/v1/videos/{video_id}/content",
                             headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        assert response.status_code == 200 and response.content[4:8] == b"ftyp", response.status_code
        downloads.append(store_commands(gateway) - before - cost)
    out["job"] = (statistics.fmean(deltas), deltas)
    out["poll"] = (statistics.fmean(polls), polls)
    out["download"] = (statistics.fmean(downloads), downloads)
    return out


def videos_available(gateway: Proc) -> bool:
    try:
        response = httpx.post(gateway.url + "/v1/videos", json={}, headers={"Authorization": f"Bearer {API_KEY}"},
                              timeout=10)
    except httpx.HTTPError:
        return False
    return response.status_code not in (404, 405)


# -- the run ---------------------------------------------------------------------------------------------------


def run(requests: int, levels: tuple[int, ...], object_mb: int, clients: int) -> dict[str, Any]:
    from tests.support.redis_server import start_redis_server

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="g2a-bench-media-"))
    (workdir / "redis").mkdir()
    redis = start_redis_server(workdir / "redis")
    port = free_port()
    sim = spawn("simulator", [sys.executable, "-m", "simulator", "--fast", "--port", str(port),
                              "--log-level", "warning"], workdir, port=port)
    gateway = None
    try:
        wait_http(sim, "/__sim/config")
        env = gateway_env(sim, {"REDIS_URL": redis.url}, STORE_PREFIX=STORE_PREFIX,
                          DATA_DIR=str(workdir / "data"), MEDIA_BACKEND="local", ACCOUNT_CONCURRENCY="64",
                          GROK_IMAGINE_WS_URL=f"ws://127.0.0.1:{sim.port}/ws/imagine/listen",
                          PUBLIC_BASE_URL="http://127.0.0.1", LOG_LEVEL="warning")
        gateway = start_gateway("gateway", workdir, env)
        wait_http(gateway, "/health")
        run_id = uuid.uuid4().hex[:8]
        tokens = [f"bench-media-{run_id}-{i}-{uuid.uuid4().hex}" for i in range(8)]
        for token in tokens:
            http_json("POST", sim.url + "/__sim/accounts", {"token": token, "tier": "heavy", "quotas": QUOTAS})
        fill_pool(gateway, tokens)
        results: dict[str, Any] = {"started": datetime.now(UTC)}
        results["commands"] = run_store_commands(gateway)
        results["videos"] = videos_available(gateway)
        if results["videos"]:
            results["video_commands"] = run_video_commands(gateway)
        own = (sim.pid, gateway.pid, redis.process.pid, os.getpid())
        busy0, own0, wall0 = machine_busy_seconds(), sum(cpu_seconds(p) for p in own), time.monotonic()
        results["latency"] = run_latency(sim, gateway, tokens, requests, levels)
        wall = time.monotonic() - wall0
        results["other_cores"] = max(0.0, (machine_busy_seconds() - busy0) - (sum(cpu_seconds(p) for p in own)
                                                                                - own0)) / wall
        size = object_mb * 1024 * 1024
        filename = asyncio.run(put_big_object({**env, "DATA_DIR": str(workdir / "data")}, size))
        results["memory"] = run_memory(gateway, filename, size, clients)
        results["gateway_alive"] = gateway.alive()
        results["seconds"] = time.monotonic() - started
        return results
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()
        redis.stop()
        shutil.rmtree(workdir / "data" / "media", ignore_errors=True)  # the 100 MB object


def report(r: dict[str, Any]) -> str:
    lines = [f"# Media\n\n`python -m bench.media` — {r['started']:%Y-%m-%d %H:%M:%S} UTC, {r['seconds']:.0f} s. "
             "Simulator (fast mode, no artificial delay) → gateway (redis-server store, local media backend), one "
             "process each, on 2 cores shared with other work (another engineer's test runs): compare the paths "
             "within one run (rounds alternate between them), not with other runs. Other processes kept "
             f"**{r['other_cores']:.2f} cores** busy on average during the latency blocks (/proc/stat minus this "
             f"benchmark's own processes){': noisy' if r['other_cores'] > 0.2 else ''}.\n"]
    for level, rows in r["latency"].items():
        lines += [f"\n## Added latency of `images.generate` (n=1), c={level} (ms)\n",
                  "| path | requests | p50 | p99 | added p50 | added p99 | gateway CPU ms/request |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in rows:
            added = "" if row["path"] == "direct" else f"**{row['added_p50']:+.2f}** | **{row['added_p99']:+.2f}**"
            cpu = "" if row["gateway_cpu_ms"] is None else f"{row['gateway_cpu_ms']:.2f}"
            name = "direct (Imagine WebSocket to the simulator)" if row["path"] == "direct" else row["path"]
            lines.append(f"| {name} | {row['requests']} | {row['p50']:.2f} | {row['p99']:.2f} | "
                         f"{added if added else ' | '} | {cpu} |")
    m = r["memory"]
    mib = 1024
    lines += ["\n## Gateway memory while clients download one local media object\n",
              f"{m['clients']} concurrent httpx clients stream `GET /media/{{id}}` of one "
              f"{m['object_bytes'] / 2**20:.0f} MiB object (bytes discarded); RSS sampled every 20 ms "
              f"({m['samples']} samples) from `/proc/<pid>/status`.\n",
              "| object | clients | bytes served | complete downloads | time s | MB/s | RSS before MiB | RSS peak "
              "(sampled) MiB | VmHWM before → after MiB | **RSS growth** | growth / object size | growth per download |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
              f"| {m['object_bytes'] / 2**20:.0f} MiB | {m['clients']} | "
              f"{m['clients'] * m['object_bytes'] / 2**20:.0f} MiB | {m['complete']}/{m['clients']} | "
              f"{m['seconds']:.1f} | {m['throughput_mb_s']:.0f} | {m['rss_before_kb'] / mib:.1f} | "
              f"{m['rss_peak_sampled_kb'] / mib:.1f} | {m['hwm_before_kb'] / mib:.1f} → {m['hwm_after_kb'] / mib:.1f} | "
              f"**{m['sampled_growth_kb'] / mib:.1f} MiB** | "
              f"{m['sampled_growth_kb'] * 1024 / m['object_bytes'] * 100:.1f} % | "
              f"{m['sampled_growth_kb'] / m['clients'] / mib:.2f} MiB |",
              "",
              "A buffering gateway would grow by the object size per concurrent download "
              f"({m['clients'] * m['object_bytes'] / 2**20:.0f} MiB here); the growth above is "
              f"{'streaming' if m['sampled_growth_kb'] * 1024 < m['object_bytes'] / 2 else 'NOT streaming'}."
              f" Status codes: {', '.join(map(str, m['statuses']))}."]
    lines += ["\n## Store commands per request\n", "| request | store commands (mean) | each request |",
              "| --- | ---: | --- |"]
    for fmt in ("url", "b64_json"):
        value, deltas = r["commands"][f"images n=1 {fmt}"]
        lines.append(f"| images n=1 `{fmt}` | {value:.2f} | {' '.join(map(str, deltas))} (the first of this kind "
                     f"after start-up, not counted: {r['commands'][f'first {fmt}']}) |")
    lines.append("| (a chat answer without images, for comparison: README) | 2 | lease + settle |")
    if r["videos"]:
        v = r["video_commands"]
        for name, label in (("job", "video job, created and driven by `POST /v1/videos` (`VIDEO_DRIVE=inline`, 4 s, "
                                    "480x854)"), ("poll", "poll of a finished job (`GET /v1/videos/{id}`)"),
                            ("download", "download (`GET /v1/videos/{id}/content`, local backend)")):
            value, deltas = v[name]
            first = f" (the first job after the images, not counted: {v['first']})" if name == "job" else ""
            lines.append(f"| {label} | {value:.2f} | {' '.join(map(str, deltas))}{first} |")
    else:
        lines.append("| video job | – | `/v1/videos` did not exist in the gateway at the time of this run |")
    lines += ["", "Steady state: a `url` image costs the lease and the settle (as a chat request) plus one `EVALSHA` for "
              "the media record; `b64_json` stores nothing. The first requests after start-up cost more: each Lua "
              "script's first use is an `EVALSHA` answered `NOSCRIPT`, then an `EVAL` (lease, settle, media put)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path and level")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--object-mb", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="first wait up to this many seconds until other processes leave the CPUs alone")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.wait_quiet > 0:
        print(f"other processes: {wait_quiet(args.wait_quiet):.2f} cores busy at the start", file=sys.stderr)
    results = run(args.requests, tuple(int(x) for x in args.concurrency.split(",")), args.object_mb, args.clients)
    text = report(results)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
