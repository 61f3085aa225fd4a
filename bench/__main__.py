"""``python -m bench``: the whole benchmark in one run (see bench/README.md).

    python -m bench                 # full run (~2 minutes on 2 cores)
    python -m bench --quick         # ~20 s smoke run, same sections with few requests
    python -m bench --client httpx  # same plan with httpx as the load generator's client
    python -m bench --only latency  # just one section: latency | stores | import (repeatable)
    python -m bench pool-scale      # the token pool at 100 … 50,000 accounts (= python -m bench.pool_scale)
    python -m bench --only loop-lag # event-loop lag under adversarial image inputs (bench/loop_lag.py)

Prints the Markdown report and writes it to bench/results/latest.md, the raw numbers to bench/results/latest.json
(``--out DIR`` for another place; ``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from bench.report import render, targets
from bench.run import FULL, QUICK, nan_to_none, run

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["pool-scale"]:  # the token pool at scale, on its own
        from bench import pool_scale

        return pool_scale.main((sys.argv[1:] if argv is None else argv)[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~20 s smoke run with few requests")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator's HTTP client (default: raw asyncio HTTP/1.1)")
    parser.add_argument("--only", action="append", choices=("latency", "stores", "import", "loop-lag"),
                        help="run only these sections (repeatable)")
    parser.add_argument("--levels", help="concurrency levels, comma-separated (default 1,16,64)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long until other processes leave the CPUs alone")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for latest.md / latest.json")
    parser.add_argument("--no-write", action="store_true", help="print only, write no files")
    args = parser.parse_args(argv)

    if args.only and "loop-lag" in args.only:
        from bench import loop_lag

        loop_lag.main(["--scale", str(0.3 if args.quick else args.scale), "--out", str(args.out)]
                      + (["--no-write"] if args.no_write else []))
        args.only = [section for section in args.only if section != "loop-lag"]
        if not args.only:
            return 0
    plan = QUICK if args.quick else FULL
    changes: dict[str, object] = {"client": args.client, "wait_quiet": args.wait_quiet}
    if args.only:
        changes["sections"] = tuple(args.only)
    levels = tuple(int(x) for x in args.levels.split(",")) if args.levels else plan.levels
    changes["levels"] = levels
    requests = {c: max(1, int(plan.n(c) * args.scale)) for c in levels}
    changes["requests"] = requests
    if args.scale != 1.0:
        changes["transport_requests"] = max(8, int(plan.transport_requests * args.scale))
        changes["stale_requests"] = max(4, int(plan.stale_requests * args.scale))
        changes["paced_requests"] = int(plan.paced_requests * args.scale)
    plan = dataclasses.replace(plan, **changes)

    results = nan_to_none(run(plan))
    command = "python -m bench" + ("" if argv is None and len(sys.argv) == 1 else " " + shlex.join(
        sys.argv[1:] if argv is None else argv))
    results["command"] = command
    results["targets"] = targets(results)
    text = render(results, command)
    print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "latest.md").write_text(text)
        (args.out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
