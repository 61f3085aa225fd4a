#!/usr/bin/env python3
"""Install the agent CLIs the tests in ``tests/agents`` drive (Claude Code, Codex CLI) from the npm registry.

    python3 tests/agents/install_clients.py          # idempotent: a no-op when the pinned versions are there

Into ``$G2A_NPM_DIR`` (default ``~/.cache/grok2api/npm``, outside the clone, so CI's fresh clones reuse it),
with ``npm ci`` from ``package.json`` + ``package-lock.json`` beside this file (exact versions). A stamp with
the hash of both files marks a finished install. Cold: ~240 MB downloaded, ~660 MB installed, ~10 s here.
Exits 0 and prints why when node/npm is absent (the tests then skip, or fail under ``G2A_NO_SKIPS=1``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("package.json", "package-lock.json")
BINARIES = ("claude", "codex")


def npm_dir() -> Path:
    return Path(os.environ.get("G2A_NPM_DIR") or "~/.cache/grok2api/npm").expanduser()


def wanted_stamp() -> str:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


def bin_path(name: str) -> Path:
    return npm_dir() / "node_modules" / ".bin" / name


def installed() -> bool:
    stamp = npm_dir() / ".stamp"
    return (stamp.exists() and stamp.read_text().strip() == wanted_stamp()
            and all(bin_path(name).exists() for name in BINARIES))


def missing_tools() -> list[str]:
    return [tool for tool in ("node", "npm") if shutil.which(tool) is None]


def install(*, quiet: bool = False) -> str | None:
    """Install when needed; returns None when the CLIs are ready, else the reason they are not."""
    if installed():
        return None
    missing = missing_tools()
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install nodejs npm)"
    target = npm_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(HERE / name, target / name)
    (target / ".stamp").unlink(missing_ok=True)
    started = time.monotonic()
    command = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--update-notifier=false"]
    result = subprocess.run(command, cwd=target, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        return f"npm ci failed in {target} (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
    missing_bins = [name for name in BINARIES if not bin_path(name).exists()]
    if missing_bins:
        return f"npm ci in {target} installed no {', '.join(missing_bins)}"
    (target / ".stamp").write_text(wanted_stamp() + "\n")
    if not quiet:
        print(f"agent CLIs installed into {target} in {time.monotonic() - started:.1f} s", flush=True)
    return None


def main() -> int:
    started = time.monotonic()
    reason = install()
    if reason is not None:
        print(f"agent CLIs not installed: {reason}", flush=True)
        return 0
    versions = []
    for name in BINARIES:
        out = subprocess.run([str(bin_path(name)), "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=60)
        versions.append(out.stdout.strip() or out.stderr.strip())
    print(f"agent CLIs ready in {npm_dir()} ({'; '.join(versions)}; {time.monotonic() - started:.1f} s)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
