"""What each protocol path costs on top of a plain streamed chat completion: time to first token and gateway CPU
per request, for a plain answer, a tool-calling answer, ``/v1/messages`` and ``/v1/responses`` streams.

    python -m bench.protocols [--requests 200] [--concurrency 1,8]

Every component runs in its own process (simulator in agent mode, gateway on an embedded store), as in
``python -m bench``. The simulator answers the tool-calling requests with one ``<tool_call>`` (agent mode), so the
tool sieve and the call rendering are on the path; plain requests get plain text. Rounds are interleaved across
paths so machine noise hits them alike. Results go to ``bench/results/protocols.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.procs import API_KEY, Proc, free_port, gateway_env, spawn, start_gateway, wait_http
from bench.run import fill_pool, make_sim_accounts

RESULTS = Path(__file__).resolve().parent / "results" / "protocols.md"
WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@dataclass
class BenchPath:
    name: str
    route: str
    body: Callable[[int], dict[str, Any]]
    first: Callable[[str], bool]  # does this SSE data line carry the first token (text or call)?
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu: float = 0.0
    errors: int = 0


def _chat_first(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    delta = json.loads(line[6:]).get("choices", [{}])[0].get("delta", {})
    return bool(delta.get("content") or delta.get("tool_calls"))


def _messages_first(line: str) -> bool:
    return line.startswith("data: ") and '"content_block_delta"' in line


def _responses_first(line: str) -> bool:
    return line.startswith("data: ") and ('"response.output_text.delta"' in line
                                          or '"response.function_call_arguments.delta"' in line)


def paths() -> list[BenchPath]:
    def chat(n: int) -> dict[str, Any]:
        return {"model": "grok-4.5-fast", "stream": True, "messages": [{"role": "user", "content": f"hello {n}"}]}

    def chat_tools(n: int) -> dict[str, Any]:
        return {**chat(n), "messages": [{"role": "user", "content": f"weather in \"Paris\" {n}"}],
                "tools": [{"type": "function", "function": WEATHER}]}

    def messages(n: int) -> dict[str, Any]:
        return {"model": "grok-4.5-fast", "stream": True, "max_tokens": 1024,
                "messages": [{"role": "user", "content": f"hello {n}"}]}

    def responses(n: int) -> dict[str, Any]:
        return {"model": "grok-4.5-fast", "stream": True, "store": False, "input": f"hello {n}"}

    return [
        BenchPath("chat (plain)", "/v1/chat/completions", chat, _chat_first),
        BenchPath("chat with a tool call", "/v1/chat/completions", chat_tools, _chat_first),
        BenchPath("/v1/messages", "/v1/messages", messages, _messages_first),
        BenchPath("/v1/responses", "/v1/responses", responses, _responses_first),
    ]


async def one(client: httpx.AsyncClient, url: str, path: BenchPath, n: int) -> None:
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url + path.route, json=path.body(n),
                             headers={"Authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY}) as response:
        if response.status_code != 200:
            path.errors += 1
            await response.aread()
            return
        async for line in response.aiter_lines():
            if first is None and path.first(line):
                first = time.perf_counter()
    end = time.perf_counter()
    if first is None:
        path.errors += 1
        return
    path.ttft.append(first - started)
    path.total.append(end - started)


async def block(url: str, path: BenchPath, gateway: Proc, count: int, concurrency: int) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        queue = list(range(count))
        cpu0 = gateway.cpu()

        async def worker() -> None:
            while queue:
                await one(client, url, path, queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        path.cpu += gateway.cpu() - cpu0


def available(url: str, route: str) -> bool:
    response = httpx.post(url + route, json={}, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    return response.status_code != 404


def run(requests: int, levels: tuple[int, ...], rounds: int = 4) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="g2a-bench-protocols-"))
    port = free_port()
    sim = spawn("simulator", [sys.executable, "-m", "simulator", "--fast", "--agent-model", "--port", str(port),
                              "--log-level", "warning"], workdir, port=port)
    gateway = None
    try:
        wait_http(sim, "/__sim/config")
        gateway = start_gateway("gateway", workdir, gateway_env(sim, {"DATA_DIR": str(workdir / "data")},
                                                               ACCOUNT_CONCURRENCY="64"))
        wait_http(gateway, "/health")
        fill_pool(gateway, make_sim_accounts(sim, 16))
        results: dict[str, Any] = {"levels": {}}
        for level in levels:
            measured = [p for p in paths() if available(gateway.url, p.route)]
            for p in measured:  # warm-up: scripts loaded, connections open
                asyncio.run(block(gateway.url, p, gateway, 20, level))
                p.ttft.clear(), p.total.clear()
                p.cpu, p.errors = 0.0, 0
            per_round = max(requests // rounds, 1)
            for _ in range(rounds):
                for p in measured:
                    asyncio.run(block(gateway.url, p, gateway, per_round, level))
            results["levels"][level] = [_summary(p) for p in measured]
        return results
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()


def _summary(p: BenchPath) -> dict[str, Any]:
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000 if ordered else float("nan")

    done = len(p.ttft)
    return {"path": p.name, "requests": done, "errors": p.errors, "ttft_p50": pct(p.ttft, 0.5),
            "ttft_p99": pct(p.ttft, 0.99), "total_p50": pct(p.total, 0.5),
            "cpu_ms": p.cpu / max(done, 1) * 1000, "mean_ttft": statistics.fmean(p.ttft) * 1000 if done else 0}


def report(results: dict[str, Any]) -> str:
    lines = [f"# Protocol paths\n\n`python -m bench.protocols` — {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, "
             "simulator (agent mode, no artificial delay) → gateway (embedded store), one process each, 2 shared "
             "cores. TTFT = time to the first text or tool-call byte; *vs plain* compares with the plain chat "
             "stream of the same block.\n"]
    for level, rows in results["levels"].items():
        base = next((r for r in rows if r["path"] == "chat (plain)"), rows[0])
        lines += [f"\n## c={level}\n", "| path | requests | TTFT p50 ms | TTFT p99 ms | total p50 ms | gateway CPU "
                  "ms/request | TTFT p50 vs plain | CPU vs plain | errors |", "| --- | ---: | ---: | ---: | ---: | "
                  "---: | ---: | ---: | ---: |"]
        for r in rows:
            lines.append(
                f"| {r['path']} | {r['requests']} | {r['ttft_p50']:.2f} | {r['ttft_p99']:.2f} | {r['total_p50']:.2f} "
                f"| {r['cpu_ms']:.2f} | {r['ttft_p50'] - base['ttft_p50']:+.2f} ms | "
                f"{r['cpu_ms'] / base['cpu_ms']:.2f}× | {r['errors']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path and level")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    levels = tuple(int(x) for x in args.concurrency.split(","))
    text = report(run(args.requests, levels))
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
