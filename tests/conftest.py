"""Shared fixtures. Real-server fixtures live in ``tests/support/fixtures.py``; import new ones here."""

from tests.support.fixtures import _stop_stray_embedded_servers, embedded_redis, redis_server, upstash_server

__all__ = ["_stop_stray_embedded_servers", "embedded_redis", "redis_server", "upstash_server"]

# no_skips: fails G2A_NO_SKIPS=1 runs that skip for a missing dependency; fuzz_option: --fuzz-cases N;
# netns: @pytest.mark.netns runs a test in a private network namespace
pytest_plugins = ["tests.support.no_skips", "tests.support.fuzz_option", "tests.support.netns"]
