"""``python -m bench.loop_lag`` (or ``python -m bench --only loop-lag``): can one chat request stall the gateway?

The gateway runs in this process (uvicorn in a thread, the real app) with a probe task on its event loop that
sleeps 10 ms over and over and records how late it wakes up (the loop lag). The grok.com simulator and the store
are separate processes. For each adversarial input — the worst this benchmark can build within the 4 MB body
limit — a few threads send it while another thread keeps sending a cheap ``GET /v1/models``; the report gives
the loop lag (max, p99) and the cheap request's latency (p50, max) next to an idle baseline. Target: the loop
never lags more than 50 ms.

Inputs: 500 image URLs to a refused range (over the per-request cap), the cap's worth of refused URLs (many
requests), hundreds of small data URIs (over the cap), the cap's worth of ~240 KB data URIs (accepted and
uploaded), one ~3.9 MB data URI, the cap's worth of URLs to a server that drip-feeds one byte per 100 ms
(stopped by the fetch deadline), and 50 000 image URLs in one 3.5 MB body (its cost is request parsing and
validation in the API layer, before any image code runs). The drip server listens on 127.0.0.77, which this benchmark alone lets the
address policy treat as public; everything else meets the real policy.

Writes ``bench/results/loop_lag.md`` (``--out DIR``; ``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICK = 0.010
TARGET_LAG = 0.050
DRIP_HOST = "127.0.0.77"
RESULTS = Path(__file__).resolve().parent / "results"
MAX_BODY = 4_000_000  # under the gateway's 4 MiB request limit
REFUSED_FORMS = ("http://100.64.0.{}/a.png", "http://198.18.0.{}/a", "http://[2002:c000:201::{}]/")


# --- the probe on the gateway's loop -------------------------------------------------------------------------

class LagProbe:
    """Sleeps ``TICK`` in a loop on the event loop it is started on; records each wake-up's overshoot."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.samples.append(time.perf_counter() - before - TICK)

    def window(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples


class Probed:
    """An ASGI wrapper that starts ``probe`` on the server's loop at its first event (lifespan startup)."""

    def __init__(self, app: Any, probe: LagProbe) -> None:
        self.app, self.probe = app, probe

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.probe.start()
        await self.app(scope, receive, send)


# --- a drip-feeding image host -------------------------------------------------------------------------------

@contextlib.contextmanager
def drip_server(host: str = DRIP_HOST) -> Iterator[int]:
    """An HTTP server in its own thread that answers 200 and then sends one byte every 100 ms until stopped."""
    loop = asyncio.new_event_loop()
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[Any]] = set()
    stopping = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        with contextlib.suppress(Exception):  # the client hung up
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n\x89PNG")
            while not stopping.is_set():
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.write(b"\0")
        writer.close()
        handlers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def start() -> None:
        servers.append(await asyncio.start_server(handle, host, 0))

    async def stop() -> None:
        servers[0].close()
        stopping.set()
        if handlers:
            await asyncio.wait(handlers, timeout=2)

    loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, name="drip", daemon=True)
    thread.start()
    try:
        yield servers[0].sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def drip_counts_as_public() -> None:
    """Let the address policy treat ``DRIP_HOST`` (loopback) as a public host; nothing else changes."""
    import core.fetch
    from core.netguard import refusal

    core.fetch.refusal = lambda address: None if str(address) == DRIP_HOST else refusal(address)  # type: ignore


# --- the inputs ----------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    what: str
    refs: list[str] | None  # the image references of each request; None: idle
    requests: int
    parallel: int
    expect: int | None = None  # the status every request must get, when known
    parsing: bool = False  # the cost is in request parsing (api/*), before any image code runs
    body: bytes | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.body = None if self.refs is None else _chat(self.refs)


def _chat(refs: list[str]) -> bytes:
    parts = [{"type": "image_url", "image_url": {"url": ref}} for ref in refs]
    body = json.dumps({"model": "grok-4.5-fast", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "describe"}, *parts]}]}).encode()
    assert len(body) < MAX_BODY, (len(body), MAX_BODY)
    return body


def _png_data_uri(total: int, salt: int) -> str:
    from tests.e2e.media import png

    image = png(64, 64) + b"%08d" % salt
    raw = image + b"\0" * max(0, total * 3 // 4 - len(image) - 40)
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def _refused(count: int) -> list[str]:
    return [f"http://100.64.{i // 250 % 250}.{i % 250 + 1}/a.png" for i in range(count)]


def scenarios(drip_port: int, *, cap: int, scale: float) -> list[Scenario]:
    def n(count: int) -> int:
        return max(1, round(count * scale))

    per_uri = (MAX_BODY - 2000) // cap
    return [
        Scenario("idle", "cheap requests only", None, n(150), 1),
        Scenario("urls-500", "500 URLs into 100.64.0.0/10 (the reported 37 KB request)", _refused(500),
                 n(20), 4, 400),
        Scenario("urls-refused", f"{cap} URLs into 100.64/10, 198.18/15, 2002::/16",
                 [REFUSED_FORMS[i % 3].format(i + 1) for i in range(cap)], n(60), 8, 400),
        Scenario("data-uris-over-cap", "600 data URIs of ~6.5 KB (3.9 MB)",
                 [_png_data_uri(6400, i) for i in range(600)], n(8), 2, 400),
        Scenario("data-uris-at-cap", f"{cap} data URIs of ~{per_uri // 1000} KB, accepted and uploaded",
                 [_png_data_uri(per_uri - 200, i) for i in range(cap)], n(6), 2),
        Scenario("huge-data-uri", "one data URI of ~3.9 MB, accepted and uploaded",
                 [_png_data_uri(MAX_BODY - 1000, 0)], n(6), 2),
        Scenario("drip-feed", f"{cap} URLs to a host sending 1 byte / 100 ms (until the deadline)",
                 [f"http://{DRIP_HOST}:{drip_port}/i{i}.png" for i in range(cap)], n(4), 4, 400),
        Scenario("parts-flood", "50 000 image URLs (3.5 MB): parsed and validated before the image cap",
                 _refused(50_000), n(4), 2, 400, parsing=True),
    ]


async def _isolated(scenario: Scenario, settings: Any) -> tuple[list[float], float]:
    """``load_images`` alone on this loop (no HTTP, no parsing): the probe's lag samples, seconds per call."""
    from core.attachments import load_images
    from core.errors import GatewayError

    probe = LagProbe()
    probe.start()
    await asyncio.sleep(TICK * 3)
    probe.window()
    started = time.perf_counter()
    calls = max(1, scenario.requests // scenario.parallel)
    for _ in range(calls):
        loads = [load_images(scenario.refs or [], settings) for _ in range(scenario.parallel)]
        for outcome in await asyncio.gather(*loads, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, GatewayError):
                raise outcome
    elapsed = (time.perf_counter() - started) / calls
    await asyncio.sleep(TICK * 3)
    assert probe.task is not None
    probe.task.cancel()
    return probe.window(), elapsed


# --- sending and measuring -----------------------------------------------------------------------------------

def _request(port: int, method: str, path: str, body: bytes | None, api_key: str) -> tuple[int, float]:
    """(HTTP status, seconds); status 0 when the request failed or took more than a minute."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "Connection": "close"}
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, time.perf_counter() - started


@dataclass
class Row:
    scenario: Scenario
    lags: list[float]
    cheap: list[float]
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    others: float = float("nan")  # CPU cores other processes kept busy meanwhile
    alone: list[float] = field(default_factory=list)  # lag with load_images alone on a loop
    alone_seconds: float = float("nan")  # per load_images call, alone

    @property
    def lag_max(self) -> float:
        return max(self.lags, default=0.0)

    @property
    def alone_max(self) -> float:
        return max(self.alone, default=0.0)

    @property
    def lag_p99(self) -> float:
        return _pct(self.lags, 0.99)

    @property
    def cheap_p50(self) -> float:
        return statistics.median(self.cheap) if self.cheap else float("nan")

    @property
    def cheap_max(self) -> float:
        return max(self.cheap, default=float("nan"))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(port: int, probe: LagProbe, scenario: Scenario, api_key: str, own: list[int]) -> Row:
    """The scenario's requests against the gateway with the cheap request alongside; ``own``: our pids."""
    from bench.procs import cpu_seconds, machine_busy_seconds

    stop = threading.Event()
    cheap: list[float] = []

    def cheap_loop() -> None:
        while not stop.is_set():
            status, seconds = _request(port, "GET", "/v1/models", None, api_key)
            if status == 200:
                cheap.append(seconds)
            stop.wait(0.02)

    probe.window()
    busy, mine = machine_busy_seconds(), sum(cpu_seconds(pid) for pid in own)
    started = time.perf_counter()
    watcher = threading.Thread(target=cheap_loop, name="cheap", daemon=True)
    watcher.start()
    statuses: dict[int, int] = {}
    if scenario.body is None:
        time.sleep(scenario.requests * 0.02)
    else:
        with ThreadPoolExecutor(scenario.parallel) as pool:
            body = scenario.body
            for status, _ in pool.map(lambda _: _request(port, "POST", "/v1/chat/completions", body, api_key),
                                      range(scenario.requests)):
                statuses[status] = statuses.get(status, 0) + 1
    stop.set()
    watcher.join()
    seconds = time.perf_counter() - started
    others = (machine_busy_seconds() - busy - (sum(cpu_seconds(pid) for pid in own) - mine)) / seconds
    return Row(scenario, probe.window(), cheap, statuses, seconds, max(others, 0.0))


# --- the run -------------------------------------------------------------------------------------------------

def run(
    workdir: Path, *, scale: float = 1.0, deadline: float = 3.0, parsing: bool = True,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Start simulator, store and gateway, measure every scenario (``parsing=False``: not those whose cost is in
    request parsing), stop everything; the rows in order."""
    from api._app import create_app
    from bench.procs import ADMIN_PASSWORD, API_KEY, Proc, start_simulator, wait_http
    from bench.run import fill_pool, make_sim_accounts
    from core.settings import Settings
    from tests.support.asgi import ThreadedServer
    from tests.support.redis_server import embedded_server

    drip_counts_as_public()
    sim = start_simulator(workdir)
    probe = LagProbe()
    try:
        wait_http(sim, "/__sim/health")
        with embedded_server(workdir / "store") as store, drip_server() as drip_port:
            settings = Settings(
                api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=store.url,
                store_prefix=f"lag-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.url,
                grok_assets_url=sim.url + "/__assets", grok_ws_url=f"ws://127.0.0.1:{sim.port}/ws/mgw/",
                chat_transport="rest", image_fetch_deadline=deadline,
            )
            with ThreadedServer(Probed(create_app(settings), probe)) as gateway:
                fill_pool(Proc("gateway", gateway.port, None), make_sim_accounts(sim, 8))
                rows = []
                for scenario in scenarios(drip_port, cap=settings.max_images_per_request, scale=scale):
                    if scenario.parsing and not parsing:
                        continue
                    row = measure(gateway.port, probe, scenario, API_KEY, [os.getpid(), sim.pid])
                    if scenario.refs is not None:
                        row.alone, row.alone_seconds = asyncio.run(_isolated(scenario, settings))
                    log(f"{scenario.name}: lag max {row.lag_max * 1000:.1f} ms, p99 {row.lag_p99 * 1000:.1f} ms; "
                        f"GET /v1/models p50 {row.cheap_p50 * 1000:.1f} ms max {row.cheap_max * 1000:.1f} ms; "
                        f"statuses {row.statuses}; load_images alone: lag max {row.alone_max * 1000:.1f} ms")
                    rows.append(row)
                return rows
    finally:
        sim.stop()


def _verdict(lag: float) -> str:
    return f"**{'PASS' if lag <= TARGET_LAG else 'MISS'}** (worst {lag * 1000:.1f} ms)"


def render(rows: list[Row], command: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    image_rows = [r for r in rows if not r.scenario.parsing]
    lines = [
        "# Event-loop lag under adversarial image inputs", "",
        f"`{command}` — {when}. Probe: a task on the gateway's loop sleeping {TICK * 1000:.0f} ms; lag = how late "
        "it wakes. *Gateway*: the whole request path (uvicorn, body limit, JSON, validation, load_images, upload, "
        "answer) with a cheap `GET /v1/models` alongside. *load_images alone*: the same image references handed "
        "straight to `core.attachments.load_images` on a loop of its own (same parallelism).", "",
        f"Target max lag ≤ {TARGET_LAG * 1000:.0f} ms. load_images alone: {_verdict(max(r.alone_max for r in rows))}."
        f" Gateway, image inputs: {_verdict(max(r.lag_max for r in image_rows))}."
        f" Gateway, all inputs: {_verdict(max(r.lag_max for r in rows))}.", "",
        "| input | requests × parallel | statuses | gateway lag max | gateway lag p99 | GET /v1/models p50 "
        "| GET /v1/models max | load_images alone: lag max | per call | other load (cores) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        s = r.scenario
        load = "—" if s.body is None else f"{s.requests} × {s.parallel}"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items())) or "—"
        alone = "—" if s.refs is None else f"{r.alone_max * 1000:.1f}"
        per_call = "—" if s.refs is None else f"{r.alone_seconds * 1000:.1f}"
        lines.append(f"| **{s.name}**: {s.what} | {load} | {statuses} | {r.lag_max * 1000:.1f} "
                     f"| {r.lag_p99 * 1000:.1f} | {r.cheap_p50 * 1000:.1f} | {r.cheap_max * 1000:.1f} "
                     f"| {alone} | {per_call} | {r.others:.2f} |")
    lines += ["", "All times in ms. 'other load': CPU cores other processes on the machine kept busy during the "
              "row (2 shared cores). With few samples p99 equals max."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_lag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    parser.add_argument("--deadline", type=float, default=3.0, help="image_fetch_deadline for the run (s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for loop_lag.md")
    parser.add_argument("--no-write", action="store_true", help="print only, write no file")
    parser.add_argument("--note", default="", help="a line added under the report's header")
    args = parser.parse_args(argv)
    rows = run(Path(tempfile.mkdtemp(prefix="g2a-loop-lag-")), scale=args.scale, deadline=args.deadline,
               log=lambda line: print(line, file=sys.stderr))
    command = "python -m bench.loop_lag" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    text = render(rows, command.split(" --note")[0])
    if args.note:
        head, sep, rest = text.partition("\n\n")
        text = f"{head}{sep}{args.note}\n\n{rest}"
    print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "loop_lag.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
