"""Real processes for the multi-instance tests: the simulator, gateways, the Upstash-compatible server.

Every process runs in its own session with its output in a log file, is waited for until it answers, and is
always stopped (SIGTERM, then SIGKILL) by whoever started it. ``Proc.kill()`` is the SIGKILL the kill test
needs; ``Proc.tail()`` gives the last lines of its log for assertion messages.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from simulator.client import SimControl
from tests.support.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
# Variables of the developer's shell that would point a gateway at some other store or upstream.
_SCRUBBED = (
    "REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "KV_REST_API_URL", "KV_REST_API_TOKEN",
    "STORE_PREFIX", "ENCRYPTION_KEY", "APP_ENV", "VERCEL", "AWS_LAMBDA_FUNCTION_NAME", "RENDER",
)


@dataclass
class Proc:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup runs in the process, exactly like a frozen or killed serverless instance."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if not self.alive:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])


class Processes:
    """Starts processes and stops every one of them at ``close()`` (use as a context manager)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready: str | None = None,
        timeout: float = 20.0,
    ) -> Proc:
        """``python <args>`` with ``{port}`` in args replaced by a free port; wait until it answers.

        ``ready``: a path that must answer 200 (else: the port accepting connections is enough).
        """
        for _ in range(3):  # the free port can be taken between probing and binding: try another
            port = free_port()
            log = self.log_dir / f"{name}-{port}.log"
            child_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
            child_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, *(a.replace("{port}", str(port)) for a in args)],
                    cwd=ROOT, env=child_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent,
                )
            proc = Proc(name, port, log, process)
            self.started.append(proc)
            if _wait_ready(proc, ready, timeout):
                return proc
            proc.stop()
            if "address already in use" not in proc.tail().lower():
                raise RuntimeError(f"{name} did not start\n{proc.tail()}")
        raise RuntimeError(f"{name} did not start after 3 attempts\n{proc.tail()}")

    def close(self) -> None:
        for proc in reversed(self.started):
            proc.stop()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL the child if the test process dies without cleaning up (e.g. killed itself)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_ready(proc: Proc, ready: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    try:
        wait_for_port(proc.port, timeout)
    except TimeoutError:
        return False
    while proc.alive and time.monotonic() < deadline:
        if ready is None:
            return True
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(proc.url + ready, timeout=2).status_code == 200:
                return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def simulator_process(procs: Processes, *extra: str) -> Iterator[tuple[Proc, SimControl]]:
    """``python -m simulator --fast`` as its own process, with its control API."""
    proc = procs.spawn("simulator", ["-m", "simulator", "--port", "{port}", "--fast", *extra], ready="/__sim/health")
    with SimControl(proc.url) as control:
        yield proc, control
