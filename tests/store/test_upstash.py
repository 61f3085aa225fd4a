"""Upstash specifics: what the official client puts on the wire, and the compatible server's own behaviour."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.errors import StoreUnavailable
from core.store.base import CommandError, Script, ScriptMissing, Store
from core.store.upstash_transport import UpstashTransport, _error
from tests.support.fixtures import UPSTASH_TOKEN
from tests.support.net import free_port, wait_for_port
from tests.support.redis_server import RedisServer
from tests.support.upstash_server import UpstashCompatServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(upstash_server: UpstashCompatServer) -> AsyncIterator[Store]:
    store = Store(UpstashTransport.from_url(upstash_server.url, UPSTASH_TOKEN), prefix="upstash-test:")
    upstash_server.requests.clear()
    yield store
    await store.close()


@pytest.fixture
async def http(upstash_server: UpstashCompatServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {UPSTASH_TOKEN}"}
    async with httpx.AsyncClient(base_url=upstash_server.url, headers=headers) as client:
        yield client


async def test_client_uses_post_body_form_lowercase_names_base64_and_no_telemetry(
    store: Store, upstash_server: UpstashCompatServer
) -> None:
    await store.call("SET", store.key("k"), "v")
    await store.pipeline([["GET", store.key("k")], ["HGETALL", store.key("h")]])
    await store.run(Script("s", "return 1"))
    assert [(r.method, r.path) for r in upstash_server.requests] == [
        ("POST", "/"),
        ("POST", "/pipeline"),
        *[("POST", "/")] * (len(upstash_server.requests) - 2),  # EVALSHA, maybe EVAL
    ]
    assert upstash_server.requests[0].body == ["set", "upstash-test:k", "v"]
    assert upstash_server.requests[1].body == [["get", "upstash-test:k"], ["hgetall", "upstash-test:h"]]
    for recorded in upstash_server.requests:
        assert recorded.headers["authorization"] == f"Bearer {UPSTASH_TOKEN}"
        assert recorded.headers["upstash-encoding"] == "base64"
        assert not [name for name in recorded.headers if name.startswith("upstash-telemetry")]


async def test_no_hidden_retries(store: Store, upstash_server: UpstashCompatServer) -> None:
    await store.call("SET", store.key("t"), "text")
    upstash_server.requests.clear()
    with pytest.raises(CommandError):
        await store.call("INCR", store.key("t"))
    assert len(upstash_server.requests) == 1


async def test_wrong_token_is_unavailable_not_a_command_error(upstash_server: UpstashCompatServer) -> None:
    store = Store(UpstashTransport.from_url(upstash_server.url, "wrong"))
    upstash_server.requests.clear()
    with pytest.raises(StoreUnavailable, match="Unauthorized"):
        await store.call("GET", "k")
    with pytest.raises(StoreUnavailable, match="Unauthorized"):
        await store.pipeline([["GET", "k"]])
    assert len(upstash_server.requests) == 2
    await store.close()


def test_error_mapping() -> None:
    assert isinstance(_error("NOSCRIPT No matching script. Please use EVAL."), ScriptMissing)
    assert isinstance(
        _error("ERR max requests limit exceeded. Limit: 500000, Usage: 500000"), StoreUnavailable
    )
    assert isinstance(
        _error("NOPERM this user has no permissions to run the 'set' command"), StoreUnavailable
    )
    assert isinstance(
        _error("WRONGTYPE Operation against a key holding the wrong kind of value"), CommandError
    )


# -- the compatible server on its own ----------------------------------------------------------------------------


async def test_server_requires_the_token(upstash_server: UpstashCompatServer) -> None:
    async with httpx.AsyncClient(base_url=upstash_server.url) as anonymous:
        response = await anonymous.post("/", json=["PING"])
        assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"})
        response = await anonymous.post("/", json=["PING"], headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
        response = await anonymous.post(f"/?_token={UPSTASH_TOKEN}", json=["PING"])
        assert response.json() == {"result": "PONG"}


async def test_server_encodes_strings_in_base64_except_ok(http: httpx.AsyncClient) -> None:
    b64 = {"Upstash-Encoding": "base64"}
    assert (await http.post("/", json=["SET", "compat:k", "hi"], headers=b64)).json() == {"result": "OK"}
    assert (await http.post("/", json=["GET", "compat:k"], headers=b64)).json() == {"result": "aGk="}
    assert (await http.post("/", json=["GET", "compat:k"])).json() == {"result": "hi"}
    assert (await http.post("/", json=["GET", "compat:none"], headers=b64)).json() == {"result": None}
    nested = ["EVAL", "return {1, 'a', {'b', 2}}", 0]
    assert (await http.post("/", json=nested, headers=b64)).json() == {"result": [1, "YQ==", ["Yg==", 2]]}
    assert (await http.post("/", json=["INCRBY", "compat:n", 5])).json() == {"result": 5}  # numbers accepted


async def test_server_errors_and_forms(http: httpx.AsyncClient) -> None:
    response = await http.post("/", json=["HGET", "compat:n", "f"])
    assert response.status_code == 400 and response.json()["error"].startswith("WRONGTYPE")
    response = await http.post("/", json={"not": "a command"})
    assert response.status_code == 400 and "error" in response.json()
    response = await http.get("/get/compat:k")  # path form: deliberately unsupported
    assert response.status_code == 400


async def test_server_pipeline_and_multi_exec(http: httpx.AsyncClient) -> None:
    await http.post("/", json=["DEL", "compat:p", "compat:t"])
    body = [["SET", "compat:p", "1"], ["HGET", "compat:p", "f"], ["INCR", "compat:p"]]
    response = await http.post("/pipeline", json=body)
    assert response.status_code == 200
    assert response.json()[0] == {"result": "OK"}
    assert response.json()[1]["error"].startswith("WRONGTYPE")
    assert response.json()[2] == {"result": 2}

    response = await http.post("/multi-exec", json=[["INCR", "compat:t"], ["INCR", "compat:t"]])
    assert response.json() == [{"result": 1}, {"result": 2}]
    response = await http.post("/multi-exec", json=[["INCR", "compat:t"], ["SET", "compat:t"]])  # bad arity
    assert response.status_code == 400 and response.json()["error"].startswith("EXECABORT")
    assert (await http.post("/", json=["GET", "compat:t"])).json() == {"result": "2"}  # nothing applied


def test_server_runs_as_a_module(redis_server: RedisServer) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.upstash_server",
            "--redis",
            redis_server.url,
            "--token",
            "T",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=15)
        response = httpx.post(
            f"http://127.0.0.1:{port}/", json=["PING"], headers={"Authorization": "Bearer T"}
        )
        assert response.json() == {"result": "PONG"}
    finally:
        process.terminate()
        process.wait(10)
