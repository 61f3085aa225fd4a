"""Shared fixtures. Real-server fixtures live in ``tests/support/fixtures.py``; import new ones here."""

from tests.support.fixtures import _stop_stray_embedded_servers, embedded_redis, redis_server, upstash_server

__all__ = ["_stop_stray_embedded_servers", "embedded_redis", "redis_server", "upstash_server"]
