"""The embedded store: a detached redis-server per data dir, shared by processes, self-healing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.store.base import Store
from core.store.embedded import EmbeddedRedis, EmbeddedTransport
from tests.support.redis_server import embedded_server

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_starts_fast_persists_under_data_dir_and_attaches(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    started = time.perf_counter()
    assert server.ensure_running() is True
    cold = time.perf_counter() - started
    try:
        assert server.state() == "ready"
        assert server.socket_path == tmp_path.resolve() / "redis" / "redis.sock"
        assert (tmp_path / "redis" / "redis.conf").read_text().startswith("daemonize yes")
        assert cold < 1.0, f"embedded redis took {cold:.3f}s to start"
        started = time.perf_counter()
        assert server.ensure_running() is False  # already up: attach, do not start another
        assert time.perf_counter() - started < 0.05
    finally:
        assert server.stop() is True
    assert server.state() == "down" and server.pid() is None
    assert (tmp_path / "redis" / "appendonly.aof").exists()
    assert server.stop() is False


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    with embedded_server(tmp_path) as server:
        store = Store(EmbeddedTransport(server))
        await store.call("SET", "kept", "yes")
        await store.close()
    with embedded_server(tmp_path) as server:
        store = Store(EmbeddedTransport(server))
        assert await store.call("GET", "kept") == "yes"
        await store.close()


async def test_transport_starts_the_server_lazily_and_heals_after_it_dies(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    store = Store(EmbeddedTransport(server), timeout=5)
    try:
        assert server.state() == "down"
        assert await store.call("SET", "k", "v") == "OK"  # first command starts the server
        pid = server.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert await store.call("GET", "k") == "v"  # restarted from its AOF, command retried once
        assert server.pid() not in (None, pid)
    finally:
        await store.close()
        server.stop()


def test_second_process_shares_the_server(embedded_redis: EmbeddedRedis) -> None:
    data_dir = embedded_redis.directory.parent
    result = run_python(
        f"""
        import asyncio
        from core.store.base import Store
        from core.store.embedded import EmbeddedRedis, EmbeddedTransport

        async def main():
            server = EmbeddedRedis({str(data_dir)!r})
            store = Store(EmbeddedTransport(server))
            await store.call("SET", "written-by", "child")
            print(server.pid())
            await store.close()

        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == embedded_redis.pid()  # attached, did not start its own
    import redis

    client = redis.Redis(unix_socket_path=str(embedded_redis.socket_path), decode_responses=True)
    assert client.get("written-by") == "child"
    client.close()


def test_processes_racing_to_start_launch_one_server(tmp_path: Path) -> None:
    code = f"""
        import json
        from core.store.embedded import EmbeddedRedis
        server = EmbeddedRedis({str(tmp_path)!r})
        print(json.dumps({{"started": server.ensure_running(), "pid": server.pid()}}))
        """
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        outputs = [json.loads(p.communicate(timeout=20)[0]) for p in processes]
        assert sum(o["started"] for o in outputs) == 1
        assert len({o["pid"] for o in outputs}) == 1
    finally:
        EmbeddedRedis(tmp_path).stop()


def test_server_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    result = run_python(
        f"""
        from core.store.embedded import EmbeddedRedis
        server = EmbeddedRedis({str(tmp_path)!r})
        server.ensure_running()
        print(server.pid())
        """
    )
    assert result.returncode == 0, result.stderr
    server = EmbeddedRedis(tmp_path)
    try:
        assert server.state() == "ready"
        assert server.pid() == int(result.stdout)
    finally:
        server.stop()


def test_deep_data_dir_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    assert len(os.fsencode(server.socket_path)) <= 100
    assert server.socket_path != server.directory / "redis.sock"
    with embedded_server(deep) as running:
        assert running.state() == "ready"


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    from core.store.embedded import EmbeddedRedisError

    server = EmbeddedRedis(tmp_path, executable=str(tmp_path / "no-such-redis-server"))
    with pytest.raises(EmbeddedRedisError, match="could not run"):
        server.ensure_running()
