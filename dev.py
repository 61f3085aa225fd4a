#!/usr/bin/env python3
"""Bootstrap and run: needs only python3 (3.11+) and pip.

    python3 dev.py demo     # create .venv, install, run the gateway against the built-in grok.com simulator
    python3 dev.py test     # create .venv, install with test extras, run ruff and the whole test suite
    python3 dev.py serve    # run the gateway with configuration from the environment
    python3 dev.py bench    # run the benchmarks in bench/

Everything is installed into ./.venv; nothing touches the system Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        raise SystemExit(f"Python 3.11+ is required (this is {sys.version.split()[0]})")
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = f"{extras}:{(ROOT / 'pyproject.toml').stat().st_mtime_ns}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"installing grok2api{extras} into .venv ...", flush=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "-e", f".{extras}"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "demo"
    rest = argv[1:]
    if command == "demo":
        ensure_venv("")
        return subprocess.call([PYTHON, "-m", "adapters.cli", "demo", *rest], cwd=ROOT)
    if command == "serve":
        ensure_venv("")
        return subprocess.call([PYTHON, "-m", "adapters.cli", "serve", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv("[test]")
        lint = subprocess.call([PYTHON, "-m", "ruff", "check", "."], cwd=ROOT)
        tests = subprocess.call([PYTHON, "-m", "pytest", *rest], cwd=ROOT)
        return lint or tests
    if command == "bench":
        ensure_venv("[test]")
        return subprocess.call([PYTHON, "-m", "bench", *rest], cwd=ROOT)
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
