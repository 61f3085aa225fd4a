"""This checkout against another revision, side by side in the same run: gateway CPU and latency per chat request.

    python -m bench.ab --baseline <git rev> [--requests 600] [--concurrency 1,16] [--rounds 6]

The baseline is checked out into a temporary git worktree; both gateways run at once (each its own process and
embedded store, one simulator with no delay), and their load blocks alternate round by round, so a busy or slow
machine hits both alike. Reports per level: p50 / p99 latency and gateway CPU ms per request for each, and the
ratio. Nothing is written unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.keys import chat_block, ms
from bench.procs import API_KEY, ROOT, Proc, free_port, gateway_env, spawn, wait_http
from bench.run import fill_pool, make_sim_accounts


def start_gateway_at(name: str, checkout: Path, workdir: Path, env: dict[str, str]) -> Proc:
    """``python -m adapters.cli serve`` run from ``checkout`` (its own code first on ``sys.path``)."""
    port = free_port()
    log = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(checkout), **env}
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=checkout, env=full_env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        )
    return Proc(name, port, popen, log, env=env)


def run(baseline: str, requests: int, levels: tuple[int, ...], rounds: int) -> tuple[str, dict[int, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="g2a-bench-ab-"))
    tree = workdir / "baseline"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), baseline], cwd=ROOT, check=True)
    rev = subprocess.run(["git", "rev-parse", "--short", baseline], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    port = free_port()
    sim = spawn("simulator", [sys.executable, "-m", "simulator", "--fast", "--port", str(port), "--log-level",
                              "warning"], workdir, port=port)
    gateways: dict[str, Proc] = {}
    try:
        wait_http(sim, "/__sim/config")
        for name, checkout in (("baseline", tree), ("this checkout", ROOT)):
            env = gateway_env(sim, {"DATA_DIR": str(workdir / f"data-{len(gateways)}")}, ACCOUNT_CONCURRENCY="64")
            gateways[name] = start_gateway_at(name.replace(" ", "-"), checkout, workdir, env)
        for gateway in gateways.values():
            wait_http(gateway, "/health")
            fill_pool(gateway, make_sim_accounts(sim, 16))
        results: dict[int, Any] = {}
        for level in levels:
            stats: dict[str, dict[str, Any]] = {name: {} for name in gateways}
            for gateway in gateways.values():  # warm-up
                asyncio.run(chat_block(gateway.url, API_KEY, 50, level, gateway, {}, count_commands=False))
            for _ in range(rounds):
                for name, gateway in gateways.items():
                    asyncio.run(chat_block(gateway.url, API_KEY, max(requests // rounds, 1), level, gateway, stats[name],
                                           count_commands=False))
            results[level] = stats
        return rev, results
    finally:
        for gateway in gateways.values():
            gateway.stop()
        sim.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def report(rev: str, results: dict[int, Any]) -> str:
    lines = [f"# This checkout vs {rev}\n\n`python -m bench.ab --baseline {rev}` — "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; non-stream chat, simulator with no delay, both gateways "
             "running at once, blocks alternating.\n",
             "| c | gateway | requests | p50 ms | p99 ms | CPU ms/request | CPU vs baseline | errors |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for level, stats in results.items():
        base_cpu = stats["baseline"]["cpu"] / max(len(stats["baseline"].get("times", [])), 1) * 1000
        for name, s in stats.items():
            times = s.get("times", [])
            cpu = s["cpu"] / max(len(times), 1) * 1000
            label = name if name != "baseline" else f"baseline ({rev})"
            lines.append(f"| {level} | {label} | {len(times)} | {ms(times, 50):.2f} | {ms(times, 99):.2f} | "
                         f"{cpu:.2f} | {cpu / base_cpu:.2f}× | {s.get('errors', 0)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="a git revision to compare with")
    parser.add_argument("--requests", type=int, default=600, help="requests per gateway and level")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    rev, results = run(args.baseline, args.requests, tuple(int(x) for x in args.concurrency.split(",")), args.rounds)
    text = report(rev, results)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
