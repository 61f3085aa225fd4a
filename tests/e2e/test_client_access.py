"""Who may call /v1 besides API keys, and what the request log keeps: the console's session (cookie + CSRF header),
the public playground mode (its key or none, its own per-address rate limit), media ids and — only when the
operator asks — the first characters of prompts and answers. Real HTTP, the simulator, a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from api._app import create_app
from core.settings import Settings
from simulator.runner import SimulatorServer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY
from tests.support.asgi import ThreadedServer

ADMIN = {"Authorization": f"Bearer {ADMIN_PASSWORD}"}
CHAT = {"model": "grok-4.5", "messages": [{"role": "user", "content": "hello from the playground"}]}


@pytest.fixture(scope="module")
def url(sim: SimulatorServer, embedded_redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"access-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url, grok_assets_url=sim.assets_url,
        grok_ws_url=sim.ws_url, grok_imagine_ws_url=sim.imagine_ws_url, first_byte_timeout=10.0, stream_idle_timeout=5.0, account_concurrency=4,
        data_dir=tmp_path_factory.mktemp("access"), settings_cache_ttl=0.2,
    )
    with ThreadedServer(create_app(settings)) as server:
        tokens = [f"access-{uuid.uuid4().hex}" for _ in range(2)]
        for token in tokens:
            sim.state.add_account(token, tier="heavy")
        assert httpx.post(server.url + "/admin/tokens", json={"tokens": tokens}, headers=ADMIN).status_code == 200
        yield server.url


def put_settings(url: str, **values: Any) -> None:
    response = httpx.put(url + "/admin/settings", json={"values": values}, headers=ADMIN)
    assert response.status_code == 200, response.text


def last_log(url: str, **params: Any) -> dict[str, Any]:
    entries = httpx.get(url + "/admin/logs", params={"limit": 1, **params}, headers=ADMIN).json()["data"]
    assert entries, params
    return entries[0]


def test_the_console_session_calls_v1_with_its_csrf_token(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as browser:
        login = browser.post("/admin/login", json={"password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        csrf = login.json()["csrf"]
        answer = browser.post("/v1/chat/completions", json=CHAT, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        assert browser.get("/v1/models").status_code == 200  # a safe read needs no CSRF token
        refused = browser.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        browser.post("/admin/logout", headers={"X-CSRF-Token": csrf})
        after = browser.post("/v1/chat/completions", json=CHAT, headers={"X-CSRF-Token": csrf})
        assert after.status_code == 401
    entry = last_log(url, key="console", status="ok")
    assert entry["key_name"] == "console" and entry["route"] == "POST /v1/chat/completions"


def test_public_playground_mode(url: str) -> None:
    open_call = {"X-G2A-Playground": "1"}
    assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers=open_call).status_code == 401  # off
    put_settings(url, PUBLIC_PLAYGROUND=True, PUBLIC_RPM=2, PUBLIC_KEY="")
    try:
        statuses = [httpx.post(url + "/v1/chat/completions", json=CHAT, headers=open_call, timeout=30).status_code
                    for _ in range(3)]
        if statuses[:2] != [200, 200]:  # a minute boundary restarted the count between the calls
            statuses = [httpx.post(url + "/v1/chat/completions", json=CHAT, headers=open_call,
                                   timeout=30).status_code for _ in range(3)]
        assert statuses == [200, 200, 429], statuses
        assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 401  # no key, no header
        put_settings(url, PUBLIC_KEY="pub-playground-secret", PUBLIC_RPM=100)
        client = openai.OpenAI(base_url=url + "/v1", api_key="pub-playground-secret", max_retries=0)
        assert client.chat.completions.create(**CHAT).choices[0].message.content
        assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers=open_call).status_code == 401
        public = httpx.get(url + "/admin/public").json()
        assert public == {"enabled": True, "key_required": True}
        assert last_log(url, key="public")["key_name"] == "public playground"
    finally:
        put_settings(url, PUBLIC_PLAYGROUND=None, PUBLIC_RPM=None, PUBLIC_KEY=None)


def test_prompts_are_logged_only_when_asked(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    client.chat.completions.create(model="grok-4.5", messages=[{"role": "user", "content": "secret plans one"}])
    assert "prompt" not in last_log(url, key="env")
    put_settings(url, LOG_CONTENT_CHARS=12)
    try:
        answer = client.chat.completions.create(
            model="grok-4.5", messages=[{"role": "user", "content": "secret plans two"}]
        )
        entry = last_log(url, key="env")
        assert "secret plans" in entry["prompt"] and len(entry["prompt"]) <= 12
        assert entry["answer"] == answer.choices[0].message.content[:12]
    finally:
        put_settings(url, LOG_CONTENT_CHARS=None)


def test_a_stream_that_dies_is_logged_as_failed(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="grok-4.5", stream=True, messages=[{"role": "user", "content": "tell me a long story #disconnect"}]
        ):
            pass
    entry = last_log(url, key="env", status="error")
    assert entry["status"] == 200 and entry["stream"] is True and entry["error_kind"].startswith("upstream_")


def test_generated_images_are_listed_in_the_log_entry(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    result = client.images.generate(model="grok-imagine-image", prompt="a lighthouse", n=2)
    entry = last_log(url, route="images")
    assert entry["status"] == 200 and len(entry["media"]) == 2
    assert all(any(media_id in (image.url or "") for image in result.data) for media_id in entry["media"])


def test_media_aliases_are_listed_as_models(url: str) -> None:
    put_settings(url, MODEL_ALIASES={"house-painter": "grok-imagine-image", "house-film": "grok-imagine-video"})
    try:
        models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}).json()["data"]
        listed = {m["id"]: m for m in models}
        assert listed["house-painter"]["alias_of"] == "grok-imagine-image"
        assert listed["house-film"]["alias_of"] == "grok-imagine-video"
    finally:
        put_settings(url, MODEL_ALIASES=None)


def test_requests_refused_before_auth_are_not_logged(url: str) -> None:
    """A body too large or not JSON, sent with no key or a wrong one, writes nothing (an anonymous client cannot
    spend the store's command budget)."""
    before = httpx.get(url + "/admin/stats", headers=ADMIN).json()["totals"]["requests"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer sk-g2a-" + "y" * 40}):
        for body in (b"{not json", b"[" * 100 + b"]" * 100, b'{"model": "grok-4.5"}'):
            response = httpx.post(url + "/v1/chat/completions", content=body,
                                  headers={**headers, "Content-Type": "application/json"})
            assert response.status_code in (400, 401), response.text
    assert httpx.get(url + "/admin/stats", headers=ADMIN).json()["totals"]["requests"] == before
    # ... while a known key's malformed request is logged, as what it was told
    bad = httpx.post(url + "/v1/chat/completions", content=b'{"model": "grok-4.5"}',
                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert bad.status_code == 400
    assert last_log(url, key="env", status="400")["error_kind"] == "invalid_request"


def test_token_counters_are_not_logged(url: str) -> None:
    """count_tokens / input_tokens reach no account; an agent may call them before every turn."""
    before = httpx.get(url + "/admin/stats", headers=ADMIN).json()["totals"]["requests"]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    counted = httpx.post(url + "/v1/messages/count_tokens", headers=headers,
                         json={"model": "grok-4.5", "messages": [{"role": "user", "content": "how many"}]})
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    assert httpx.post(url + "/v1/responses/input_tokens", headers=headers,
                      json={"model": "grok-4.5", "input": "how many"}).status_code == 200
    assert httpx.get(url + "/admin/stats", headers=ADMIN).json()["totals"]["requests"] == before


def test_production_without_api_keys_takes_store_keys_only(sim: SimulatorServer, embedded_redis, tmp_path) -> None:
    """No API_KEYS in production: nobody gets in without a key (never the development's open access), and a key
    made in the console works — so an operator can hand out store-managed keys only."""
    settings = Settings(
        app_env="production", admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"prod-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url, grok_assets_url=sim.assets_url,
        grok_ws_url=sim.ws_url, first_byte_timeout=10.0, stream_idle_timeout=5.0, data_dir=tmp_path,
    )
    with ThreadedServer(create_app(settings)) as server:
        token = f"prod-{uuid.uuid4().hex}"
        sim.state.add_account(token, tier="heavy")
        assert httpx.post(server.url + "/admin/tokens", json={"tokens": [token]}, headers=ADMIN).status_code == 200
        for headers in ({}, {"Authorization": "Bearer sk-anything"}):
            refused = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["type"] == "authentication_error"
        assert httpx.get(server.url + "/v1/models").status_code == 401
        made = httpx.post(server.url + "/admin/keys", json={"name": "only-key"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=made.json()["secret"], max_retries=0)
        assert client.chat.completions.create(model="grok-4.5", messages=CHAT["messages"]).choices[0].message.content
