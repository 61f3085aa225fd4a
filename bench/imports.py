"""Cold import time of the app versus a bare FastAPI app, each in a fresh interpreter.

If ``bench/cold_import.py`` exists (a dedicated cold-start benchmark), it is run too and its output is kept in
the results verbatim; the PASS/MISS here always comes from this module's own measurement, so the report does not
depend on another script's output format.

Each sample is the wall time of ``python -c <statement>`` in a new process (interpreter start-up included, as a
serverless cold start pays it); ``python -c pass`` is measured too so the import part alone can be read off.
Runs are interleaved (app, bare, empty, app, bare, ...) so a slow moment of the machine hits all three alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = {
    "app": "import api.index",
    "bare FastAPI": "from fastapi import FastAPI; FastAPI()",
    "python": "pass",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "UPSTASH_", "KV_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _once(statement: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def measure(runs: int = 11) -> dict[str, Any]:
    env = _env()
    for statement in STATEMENTS.values():  # byte-compile caches warm; a failure shows up here, clearly
        try:
            _once(statement, env)
        except subprocess.CalledProcessError as exc:
            return {"error": f"`python -c {statement!r}` failed: {exc.stderr.decode(errors='replace')[-800:]}"}
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(runs):
        for name, statement in STATEMENTS.items():
            samples[name].append(_once(statement, env) * 1000)
    out: dict[str, Any] = {
        name: {"median_ms": statistics.median(values), "min_ms": min(values), "runs": len(values)}
        for name, values in samples.items()
    }
    app, bare, empty = (out[n]["median_ms"] for n in ("app", "bare FastAPI", "python"))
    out["ratio"] = app / bare
    out["ratio_imports_only"] = (app - empty) / (bare - empty) if bare > empty else None
    return out


def cold_import_script(repeat: int, timeout: float = 120.0) -> dict[str, Any] | None:
    """Run ``bench/cold_import.py`` (``python -m bench.cold_import --repeat N``) when present; keep its output
    (parsed if it printed JSON)."""
    script = ROOT / "bench" / "cold_import.py"
    if not script.exists():
        return None
    try:
        done = subprocess.run([sys.executable, "-m", "bench.cold_import", "--repeat", str(repeat)], cwd=ROOT,
                              env=_env(), capture_output=True, timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"bench/cold_import.py did not finish within {timeout:g}s"}
    result: dict[str, Any] = {"exit_code": done.returncode, "stdout": done.stdout[-4000:],
                              "stderr": done.stderr[-1000:]}
    try:
        result["json"] = json.loads(done.stdout)
    except ValueError:
        pass
    return result
