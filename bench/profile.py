"""Where a gateway request's CPU goes: py-spy samples the gateway process under load.

    python -m bench.profile [--stream] [--concurrency 16] [--seconds 8] [--native] [--out bench/results/profile]

Starts its own simulator and gateway (embedded store), fills the pool, puts the gateway under closed-loop load and
records it with ``py-spy record`` (``pip install py-spy``; needs ptrace rights, e.g. root). Prints and writes:

* self time by area (the package or project module of the innermost Python frame);
* inclusive time of the frames worth knowing (routing, validation, the upstream client, the store, logging, ...);
* the hottest leaf functions.

The raw collapsed stacks are kept (``*.txt``, flamegraph-compatible) for a closer look.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import chat
from bench.load import run_block
from bench.procs import gateway_env, start_gateway, start_simulator, wait_http
from bench.run import fill_pool, log, make_sim_accounts

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Areas by the innermost frame's file (py-spy shortens paths to the import path: "fastapi/routing.py",
# "api/_openai.py"); first prefix that matches wins.
AREAS = [
    ("curl_cffi (upstream HTTP client)", ("curl_cffi/",)),
    ("redis-py (store client)", ("redis/",)),
    ("uvicorn / httptools (HTTP server)", ("uvicorn/", "httptools/")),
    ("starlette", ("starlette/",)),
    ("fastapi", ("fastapi/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("event loop (asyncio / uvloop)", ("asyncio/", "uvloop/")),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
    ("api/ (routes, SSE, auth)", ("api/",)),
    ("core/grok (client, parser, markup)", ("core/grok/",)),
    ("core/pool + core/store", ("core/pool/", "core/store/")),
    ("core/ (other: chat, answer, ...)", ("core/",)),
    ("idle worker thread (blocked in queue.get; py-spy counts it)", ("threading.py", "concurrent/")),
]

# Inclusive: share of samples with any frame matching (function name or its last dotted part, file prefix).
INCLUSIVE = [
    ("uvicorn request cycle (run_asgi)", "run_asgi", "uvicorn/"),
    ("  FastAPI/Starlette middleware stack + routing", "__call__", "starlette/applications.py"),
    ("  request body validation (FastAPI/pydantic)", "", "pydantic"),
    ("  chat_completions route", "chat_completions", "api/_openai.py"),
    ("    ChatService.open (lease, upstream open, preflight)", "open", "core/chat.py"),
    ("      TokenPool.lease", "lease", "core/pool/pool.py"),
    ("    Completion.collect (non-stream body)", "collect", "api/_openai.py"),
    ("    Completion.sse (stream body)", "sse", "api/_openai.py"),
    ("      SSE chunk JSON encoding (Completion.chunk)", "chunk", "api/_openai.py"),
    ("      with_heartbeats", "with_heartbeats", "api/_sse.py"),
    ("    ChatStream.finish (settle)", "finish", "core/chat.py"),
    ("store: Store.run / Store.call (incl. redis-py)", "", "core/store/base.py"),
    ("store: redis-py client", "", "redis/"),
    ("upstream: GrokClient._chat_rest", "_chat_rest", "core/grok/client.py"),
    ("upstream: curl_cffi (any)", "", "curl_cffi/"),
    ("upstream: GrokClient.headers + rest_payload", "headers", "core/grok/client.py"),
    ("NDJSON decode + event parse (core/grok/parse.py)", "", "core/grok/parse.py"),
    ("AnswerBuilder (core/answer.py)", "", "core/answer.py"),
    ("markup filter (core/grok/markup.py)", "", "core/grok/markup.py"),
    ("json encode/decode (any caller)", "", "json/"),
    ("logging (any)", "", "logging/"),
    ("asyncio.wait_for", "wait_for", "asyncio/tasks.py"),
    ("api/_limits.py BodyLimit middleware", "", "api/_limits.py"),
    ("auth (client_auth)", "client_auth", "api/_deps.py"),
]


def parse_frame(text: str) -> tuple[str, str]:
    match = FRAME.match(text)
    if not match:
        return text, ""
    return match.group("func"), match.group("file")


def analyse(raw: Path, top: int = 25) -> dict[str, Any]:
    stacks: list[tuple[list[tuple[str, str]], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [parse_frame(part) for part in stack.split(";")]
        frames = [f for f in frames if f[1]]  # drop "process ..." / "thread ..." pseudo-frames
        stacks.append((frames, int(count)))
    total = sum(count for _, count in stacks) or 1
    areas: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        if not frames:
            areas["(no Python frame)"] += count
            continue
        func, file = frames[-1]
        if func == "Runner.run" and file.startswith("asyncio/"):
            file = "uvloop/(event loop itself: epoll, callbacks, C code)"
        areas[_area(file)] += count
        leaves[f"{func} ({_short(file)})"] += count
        for label, want_func, want_file in INCLUSIVE:
            if any(_matches(fn, f, want_func, want_file) for fn, f in frames):
                inclusive[label] += count
    pct = lambda n: round(100 * n / total, 1)  # noqa: E731
    return {
        "samples": total,
        "self_by_area": [(name, pct(n)) for name, n in areas.most_common()],
        "inclusive": [(label, pct(inclusive[label])) for label, _, _ in INCLUSIVE],
        "top_leaves": [(name, pct(n)) for name, n in leaves.most_common(top)],
    }


def _matches(func: str, file: str, want_func: str, want_file: str) -> bool:
    if not (file.startswith(want_file) or (want_file.endswith("/") is False and want_file in file)):
        return False
    return not want_func or func == want_func or func.endswith("." + want_func)


def _area(file: str) -> str:
    for name, prefixes in AREAS:
        if file.startswith(prefixes):
            return name
    return "other (stdlib, runpy, ...)"


def _short(file: str) -> str:
    return file


def render(result: dict[str, Any], title: str) -> str:
    lines = [f"## Profile: {title}", "",
             f"{result['samples']} samples of the gateway process (py-spy); share of all samples.", "",
             "| self time by area | % |", "| --- | ---: |"]
    lines += [f"| {name} | {p} |" for name, p in result["self_by_area"]]
    lines += ["", "| inclusive (any frame on the stack) | % |", "| --- | ---: |"]
    lines += [f"| {name} | {p} |" for name, p in result["inclusive"]]
    lines += ["", "| hottest leaf functions | % |", "| --- | ---: |"]
    lines += [f"| `{name}` | {p} |" for name, p in result["top_leaves"]]
    return "\n".join(lines) + "\n"


async def _load_until(proc: subprocess.Popen[bytes], target: Any, concurrency: int, mark: Any) -> int:
    sent = 0
    while proc.poll() is None:
        await run_block("profile load", lambda i: target, concurrency=concurrency, requests=concurrency * 20,
                        mark=mark)
        sent += concurrency * 20
    return sent


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def profile(args: argparse.Namespace) -> int:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    from bench.http import sse_content
    from core.store.embedded import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="g2a-profile-"))
    sim = start_simulator(workdir)
    env = gateway_env(sim, {"DATA_DIR": str(workdir / "data"), "STORE_PREFIX": "profile:"})
    gateway = start_gateway("gateway", workdir, env)
    try:
        wait_http(sim, "/__sim/health")
        wait_http(gateway, "/health", timeout=60)
        tokens = make_sim_accounts(sim, max(args.concurrency * 2, 8))
        fill_pool(gateway, tokens)
        target = chat.gateway_target(gateway, stream=args.stream)
        mark = sse_content if args.stream else None
        _run(run_block("warm", lambda i: target, concurrency=args.concurrency, requests=200, mark=mark))
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        kind = "stream" if args.stream else "non-stream"
        raw = out_dir / f"profile-{kind}-c{args.concurrency}.txt"
        command = [pyspy, "record", "-p", str(gateway.pid), "-f", "raw", "-o", str(raw), "-d", str(args.seconds),
                   "-r", str(args.rate), "-F"]
        if args.native:
            command.append("--native")
        log(f"py-spy: {' '.join(command[1:])}")
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # py-spy attaches
        started = time.perf_counter()
        sent = _run(_load_until(spy, target, args.concurrency, mark))
        elapsed = time.perf_counter() - started
        _, err = spy.communicate()
        if spy.returncode != 0 or not raw.exists():
            print(f"py-spy failed: {err.decode(errors='replace')[-1000:]}", file=sys.stderr)
            return 1
        result = analyse(raw)
        title = f"{kind}, c={args.concurrency}, {sent} requests in {elapsed:.1f}s ({sent / elapsed:.0f} req/s)"
        text = render(result, title)
        (out_dir / f"profile-{kind}-c{args.concurrency}.md").write_text(text)
        print(text)
        return 0
    finally:
        gateway.stop()
        sim.stop()
        EmbeddedRedis(workdir / "data").stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", action="store_true", help="profile streamed completions (default: non-stream)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--native", action="store_true", help="include C frames (curl, uvloop, ...)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "profile"))
    return profile(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
