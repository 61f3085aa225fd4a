"""``@pytest.mark.netns``: the test runs in a private network namespace of its own.

For tests that hand the gateway non-loopback addresses (the address-check ranges): should a check ever be wrong,
nothing can leave the machine. The marked test is run again by a child pytest under ``unshare -n`` with only
``lo`` up (everything the tests talk to is on loopback); the parent passes when the child passes.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSIDE = "G2A_IN_NETNS"
ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: run the test inside a private network namespace (unshare -n)")


@functools.cache
def unavailable() -> str | None:
    """Why a private network namespace cannot be made here, or None."""
    if sys.platform != "linux" or not shutil.which("unshare") or not shutil.which("ip"):
        return "needs Linux with unshare (util-linux) and ip (iproute2)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"the kernel refuses a private network namespace: {probe.stderr}"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker("netns") is None or os.environ.get(INSIDE):
        return None  # not marked, or already inside the namespace: run it here
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    child = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -m pytest -p no:cacheprovider -q "$1"',
         sys.executable, pyfuncitem.nodeid],
        cwd=ROOT, env={**os.environ, INSIDE: "1"}, capture_output=True, text=True, timeout=600, check=False,
    )
    assert child.returncode == 0, f"in the private network namespace:\n{child.stdout[-6000:]}\n{child.stderr[-3000:]}"
    return True
