"""Hostile or odd requests over real HTTP (uvicorn): body limits, nesting depth, production docs, health."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from api._app import create_app
from api._limits import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, json_depth, json_structure, too_deep
from core.settings import Settings
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment
from tests.support.asgi import ThreadedServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}
LIMIT = 2048


@pytest.fixture(scope="module")
def small(deploy: Callable[..., Deployment]) -> Deployment:
    """A gateway with a 2 KiB body limit and one account."""
    deployment = deploy(max_request_bytes=LIMIT)
    deployment.add_accounts(1)
    return deployment


def chunks(total: int, size: int = 500) -> Iterator[bytes]:
    """A JSON-ish body sent chunked (httpx sends a generator with Transfer-Encoding: chunked)."""
    body = b'{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "' + b"x" * total + b'"}]}'
    for start in range(0, len(body), size):
        yield body[start:start + size]


# -- 413: declared or chunked, the same answer ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_oversized_body_is_413_with_or_without_content_length(small: Deployment, path: str) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    declared = httpx.post(small.url + path, content=b"".join(chunks(LIMIT * 2)), headers=headers, timeout=30)
    chunked = httpx.post(small.url + path, content=chunks(LIMIT * 2), headers=headers, timeout=30)
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in chunked.request.headers
    assert declared.status_code == chunked.status_code == 413
    assert declared.json() == chunked.json()
    if path == "/v1/messages":
        assert chunked.json() == {"type": "error", "error": {
            "type": "request_too_large", "message": f"request body is larger than {LIMIT} bytes"}}
    else:
        assert chunked.json()["error"]["code"] == "payload_too_large"
        assert chunked.json()["error"]["type"] == "invalid_request_error"


def test_chunked_body_under_the_limit_still_works(small: Deployment) -> None:
    response = httpx.post(small.url + "/v1/chat/completions", content=chunks(100), timeout=30,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


# -- nesting depth ------------------------------------------------------------------------------------------------

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def chat_body(content: str) -> bytes:
    return ('{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": ' + content + "}]}").encode()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_body_is_a_400(gateway: Deployment, depth: int) -> None:
    response = httpx.post(gateway.base_url + "/chat/completions", content=chat_body(nested(depth)), timeout=30,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "json_too_deep" and str(MAX_JSON_DEPTH) in error["message"]


def test_unterminated_nesting_and_anthropic_shape(gateway: Deployment) -> None:
    response = httpx.post(gateway.url + "/v1/messages", content=b"[" * 100_000, timeout=30,
                          headers={"x-api-key": API_KEY})  # no content type: FastAPI would parse it as JSON
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"


def test_brackets_inside_strings_do_not_count(gateway: Deployment) -> None:
    text = json.dumps("[{" * 50_000 + '\\"[')
    response = httpx.post(gateway.base_url + "/chat/completions", content=chat_body(text), timeout=60,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
def test_too_many_containers_is_a_400_before_parsing(gateway: Deployment) -> None:
    """4 MB of tiny image parts would hold the event loop for ~0.5 s in parsing alone: refused by the scan."""
    part = '{"type": "image_url", "image_url": {"url": "http://100.64.0.1/x.png"}}'
    body = chat_body("[" + ", ".join([part] * (MAX_JSON_CONTAINERS // 2 + 1)) + "]")
    response = httpx.post(gateway.base_url + "/chat/completions", content=body, timeout=30,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_large"
    ok = chat_body("[" + ", ".join(['{"type": "text", "text": "a"}'] * (MAX_JSON_CONTAINERS - 10)) + "]")
    response = httpx.post(gateway.base_url + "/chat/completions", content=ok, timeout=30,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text


def _random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 6 or roll < 0.3:
        return rng.choice(['a\\"b]}{', "x", "\\", '[{"', 1, None])
    if roll < 0.65:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(99)}\\]": _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_sliced_structure_scan_equals_the_whole_body_scan() -> None:
    """Strings and escapes cut at any slice boundary: the sliced scan sees what one pass over the body sees."""
    rng = random.Random(7)
    strings = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
    bodies = [b'{"a": [1, {"b": "]]]]"}], "c": "\\\\"}', b'"[[[" [ "\\"[[" ]', b"[]" * 1000]
    bodies += [json.dumps(_random_json(rng)).encode() for _ in range(150)]
    for body in bodies:
        outside = strings.sub(b"", body)
        containers = outside.count(b"[") + outside.count(b"{")
        for size in (1, 2, 3, 5, 8, 64, 1 << 20):
            shape = asyncio.run(json_structure(body, slice_size=size))
            assert (shape.depth, shape.containers) == (json_depth(body), containers), (body[:60], size)


def test_nested_json_inside_tool_call_arguments_is_a_400(gateway: Deployment) -> None:
    body = {"model": "grok-4.5-fast", "messages": [
        {"role": "user", "content": "call it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": nested(100_000)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        {"role": "user", "content": "and now?"},
    ]}
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=AUTH, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_deep"


def test_admin_import_rejects_deep_json(gateway: Deployment) -> None:
    response = httpx.post(gateway.url + "/admin/tokens", content=b'{"tokens": ' + nested(10_000).encode() + b"}",
                          headers={"Authorization": f"Bearer {ADMIN_PASSWORD}", "Content-Type": "application/json"},
                          timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "json_too_deep"


def test_depth_scan() -> None:
    assert json_depth(b'{"a": [1, {"b": "]]]]"}], "c": "\\\\"}') == 3
    assert json_depth(b'"[[[" [ "\\"[[" ]') == 1
    assert not too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert too_deep(b"[" * (MAX_JSON_DEPTH + 1))
    assert not too_deep(b"[]" * 100_000)


# -- production: no schema, no docs -------------------------------------------------------------------------------

def test_production_serves_no_openapi_schema_or_docs(tmp_path) -> None:
    settings = Settings(app_env="production", admin_password="prod-admin-secret", api_keys=("sk-prod",),
                        data_dir=str(tmp_path))
    with ThreadedServer(create_app(settings)) as server:
        for path in ("/openapi.json", "/docs"):
            response = httpx.get(server.url + path, timeout=10)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
    dev = create_app(Settings(data_dir=str(tmp_path)))
    assert dev.openapi_url == "/openapi.json"


# -- digits that are not decimal ("²".isdigit() is True, int("²") raises) --------------------------------------------


@pytest.mark.parametrize("method,path,kwargs", [
    ("POST", "/v1/videos", {"json": {"prompt": "a kite", "seconds": "²"}}),
    ("POST", "/v1/videos", {"files": {"prompt": (None, "a kite"), "seconds": (None, "³")}}),
    ("GET", "/admin/tokens", {"params": {"cursor": "²"}}),
    ("GET", "/admin/usage", {"params": {"day": "2026120²"}}),
    ("GET", "/admin/keys", {"params": {"cursor": "²"}}),
])
def test_superscript_digits_are_a_clear_400(gateway: Deployment, method: str, path: str, kwargs: dict) -> None:
    auth = AUTH if path.startswith("/v1") else {"Authorization": f"Bearer {ADMIN_PASSWORD}"}
    response = httpx.request(method, gateway.url + path, headers=auth, timeout=30, **kwargs)
    assert response.status_code in (200, 400), response.text  # never a 500
    if response.status_code == 400:
        assert response.json()["error"]["type"] == "invalid_request_error"
