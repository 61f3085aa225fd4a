"""Cold import time of each deployment entry point against a bare FastAPI app, in fresh interpreters.

    python -m bench.cold_import [--repeat 15]

A cold start on Vercel or Lambda pays this import before the first request is served. Each sample is a new
``python`` process (nothing cached in memory; the OS file cache is warm, as it is on a reused host); runs are
interleaved so drift hits every entry alike. Printed as a Markdown table of medians; the target is at most 2x the
bare app.

* bare FastAPI: a module that only does ``from fastapi import FastAPI; app = FastAPI()``;
* Vercel ``api.index``: imports the app *and builds it* (``app = load_app()``), as Vercel does at boot;
* Lambda ``adapters.lambda_handler``: the same plus Mangum;
* CLI ``adapters.cli``: the command-line module alone; ``cli serve`` adds what ``serve`` imports and builds
  before it listens (uvicorn, the app).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ENTRIES: dict[str, str] = {
    "bare FastAPI app": "from fastapi import FastAPI; app = FastAPI()",
    "Vercel: api.index": "import api.index",
    "Lambda: adapters.lambda_handler": "import adapters.lambda_handler",
    "local: adapters.cli": "import adapters.cli",
    "local: cli serve (until listen)": "import adapters.cli, uvicorn; from api._app import create_app; create_app()",
}

PROBE = """
import time
_t = time.perf_counter()
{code}
print(time.perf_counter() - _t)
"""


def sample(code: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data:
        # A production-like environment; building the app does no I/O (the engine is built on first request).
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "", "DATA_DIR": data,
               "APP_ENV": "production", "API_KEYS": "sk-bench", "ADMIN_PASSWORD": "bench",
               "UPSTASH_REDIS_REST_URL": "https://bench.upstash.io", "UPSTASH_REDIS_REST_TOKEN": "bench"}
        for code in ENTRIES.values():  # warm the bytecode and OS file caches once
            sample(code, env)
        times: dict[str, list[float]] = {name: [] for name in ENTRIES}
        for _ in range(args.repeat):
            for name, code in ENTRIES.items():
                times[name].append(sample(code, env))

    base = statistics.median(times["bare FastAPI app"])
    print(f"Cold import, median of {args.repeat} fresh processes (Python {sys.version.split()[0]}, {sys.platform})\n")
    print("| entry | median | min | max | vs bare FastAPI |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1000:.0f} ms | {min(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms "
              f"| {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
