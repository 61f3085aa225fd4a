"""Store-managed API keys through the official SDKs, over real HTTP, against the simulator and a real Redis:
create / list / edit / rotate / delete, each limit (rpm, rpd, concurrency, quota in requests and tokens, model
allow-list, scopes, expiry, disabled) in the route's own error shape with Retry-After, the request log and the
statistics after the requests, and the store commands a chat request costs with a store key (3 in all)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from api._app import create_app
from core.settings import Settings
from simulator.runner import SimulatorServer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY
from tests.support.asgi import ThreadedServer


class Gateway:
    def __init__(self, server: ThreadedServer, app: Any, sim: SimulatorServer) -> None:
        self.url, self.app, self.sim = server.url, app, sim

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"},
                             timeout=30, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.admin(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def new_key(self, **fields: Any) -> tuple[str, str]:
        body = self.ok("POST", "/admin/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **fields})
        return body["key"]["id"], body["secret"]

    def openai(self, secret: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=secret, max_retries=0)

    def commands(self) -> int:
        return self.app.state.gateway._gateway.store.commands_sent


@pytest.fixture(scope="module")
def gw(sim: SimulatorServer, embedded_redis) -> Iterator[Gateway]:
    settings = Settings(
        api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"keys-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url, grok_assets_url=sim.assets_url,
        grok_ws_url=sim.ws_url, first_byte_timeout=10.0, stream_idle_timeout=5.0, account_concurrency=8,
    )
    app = create_app(settings)
    with ThreadedServer(app) as server:
        gateway = Gateway(server, app, sim)
        tokens = [f"keys-{uuid.uuid4().hex}" for _ in range(2)]
        for token in tokens:
            sim.state.add_account(token, tier="heavy")
        gateway.ok("POST", "/admin/tokens", json={"tokens": tokens})
        yield gateway


def fresh_minute() -> None:
    """Per-minute limits count in calendar minutes: start a test that must fit in one with time to spare."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


def chat(client: openai.OpenAI, text: str = "hello", model: str = "grok-4.5") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def test_create_shows_the_secret_once_and_lists_it_masked(gw: Gateway) -> None:
    key_id, secret = gw.new_key(note="for the docs team")
    assert secret.startswith("sk-g2a-") and len(secret) > 40
    listing = gw.admin("GET", "/admin/keys")
    detail = gw.admin("GET", f"/admin/keys/{key_id}")
    for response in (listing, detail):
        assert response.status_code == 200 and secret not in response.text
    key = detail.json()
    assert key["prefix"].startswith("sk-g2a-") and "…" in key["prefix"] and key["note"] == "for the docs team"
    assert key["enabled"] is True and key["scopes"] == ["chat", "images", "video"] and len(key["usage"]) == 30
    assert any(k["id"] == key_id for k in listing.json()["data"]) and listing.json()["total"] >= 1
    stored = gw.app.state.gateway._gateway.store
    assert secret not in repr(stored)  # nothing in memory either


def test_a_key_works_with_the_sdk_and_its_usage_and_log_follow(gw: Gateway) -> None:
    key_id, secret = gw.new_key()
    answer = chat(gw.openai(secret), "count me")
    assert answer.choices[0].message.content
    key = gw.ok("GET", f"/admin/keys/{key_id}")
    assert key["today"]["requests"] == 1 and key["today"]["ok"] == 1 and key["last_used_at"]
    assert key["today"]["completion_tokens"] == answer.usage.completion_tokens
    entries = gw.ok("GET", "/admin/logs", params={"key": key_id})["data"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["status"] == 200 and entry["route"] == "POST /v1/chat/completions" and entry["model"] == "grok-4.5"
    assert entry["key_name"].startswith("k-") and entry["account"] and entry["attempts"] == 1
    assert entry["completion_tokens"] == answer.usage.completion_tokens and entry["ttft_ms"] is not None
    assert "prompt" not in entry  # prompts are not logged by default
    assert gw.ok("GET", f"/admin/logs/{entry['id']}")["id"] == entry["id"]


def test_a_chat_with_a_store_key_costs_three_store_commands(gw: Gateway) -> None:
    _, secret = gw.new_key(rpm=1000, rpd=100000, concurrency=4, quota={"kind": "tokens", "limit": 10**9,
                                                                       "period": "month"})
    client = gw.openai(secret)
    chat(client)  # warm: scripts loaded, accounts refreshed
    chat(client)
    before = gw.commands()
    chat(client)
    assert gw.commands() - before == 3  # admit + lease + settle (log, stats, key usage and slot inside settle)
    before = gw.commands()
    list(client.chat.completions.create(model="grok-4.5", messages=[{"role": "user", "content": "s"}], stream=True))
    assert gw.commands() - before == 3


def test_rpm_lets_exactly_n_through(gw: Gateway) -> None:
    fresh_minute()
    key_id, secret = gw.new_key(rpm=3)
    client = gw.openai(secret)
    passed, refused = 0, []
    for _ in range(5):
        try:
            chat(client)
            passed += 1
        except openai.RateLimitError as exc:
            refused.append(exc)
    assert passed == 3 and len(refused) == 2
    error = refused[0]
    assert error.body["code"] == "rate_limit_exceeded" and "3 requests per minute" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    log = gw.ok("GET", "/admin/logs", params={"key": key_id, "status": "429"})["data"]
    assert len(log) == 2 and log[0]["error_kind"] == "rate_limit_exceeded"


def test_rpm_is_exact_under_concurrency(gw: Gateway) -> None:
    fresh_minute()
    _, secret = gw.new_key(rpm=5)
    results: list[int] = []

    def one() -> None:
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {secret}"},
                       json={"model": "grok-4.5", "messages": [{"role": "user", "content": "x"}]})
        results.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) == 5 and results.count(429) == 7


def test_daily_limit_and_request_quota(gw: Gateway) -> None:
    _, secret = gw.new_key(rpd=2)
    client = gw.openai(secret)
    chat(client), chat(client)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)
    assert caught.value.body["code"] == "daily_limit_exceeded"
    _, secret = gw.new_key(quota={"kind": "requests", "limit": 1, "period": "total"})
    client = gw.openai(secret)
    chat(client)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)
    assert caught.value.body["code"] == "insufficient_quota"


def test_token_quota_counts_what_settled(gw: Gateway) -> None:
    key_id, secret = gw.new_key(quota={"kind": "tokens", "limit": 5, "period": "day"})
    client = gw.openai(secret)
    answer = chat(client, "a reply long enough to spend more than five tokens in all")
    assert answer.usage.total_tokens > 5
    assert gw.ok("GET", f"/admin/keys/{key_id}")["quota_used"] == answer.usage.total_tokens
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)
    assert caught.value.body["code"] == "insufficient_quota"
    assert int(caught.value.response.headers["retry-after"]) <= 86400


def test_concurrency_cap_counts_open_streams(gw: Gateway) -> None:
    _, secret = gw.new_key(concurrency=1)
    client = gw.openai(secret)
    stream = client.chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "hold the line please #stall=1.5"}], stream=True
    )
    first = next(iter(stream))
    assert first is not None
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)
    assert caught.value.body["code"] == "concurrency_limit_exceeded"
    list(stream)  # the stream ends: its slot is free again
    assert chat(client).choices[0].message.content


def test_model_allow_list_scopes_and_anthropic_shape(gw: Gateway) -> None:
    _, secret = gw.new_key(models=["grok-4.5*"], scopes=["chat"])
    client = gw.openai(secret)
    assert chat(client, model="grok-4.5").choices
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(client, model="grok-3-fast")
    assert caught.value.body["code"] == "model_not_allowed" and caught.value.body["param"] == "model"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.images.generate(model="grok-imagine-image", prompt="a cat")
    assert caught.value.body["code"] == "scope_not_allowed"
    claude = anthropic.Anthropic(base_url=gw.url, api_key=secret, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as caught_a:
        claude.messages.create(model="grok-3-fast", max_tokens=50, messages=[{"role": "user", "content": "x"}])
    assert caught_a.value.body["type"] == "error" and caught_a.value.body["error"]["type"] == "permission_error"
    answer = claude.messages.create(model="grok-4.5", max_tokens=50, messages=[{"role": "user", "content": "x"}])
    assert answer.content


def test_disable_expire_rotate_delete(gw: Gateway) -> None:
    key_id, secret = gw.new_key()
    client = gw.openai(secret)
    assert chat(client).choices
    gw.ok("PATCH", f"/admin/keys/{key_id}", json={"enabled": False})
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(client)
    assert caught.value.body["code"] == "api_key_disabled"
    expires_at = time.time() + 3.0  # room for a slow machine to answer before it
    gw.ok("PATCH", f"/admin/keys/{key_id}", json={"enabled": True, "expires_at": expires_at})
    assert chat(client).choices
    time.sleep(max(0.0, expires_at - time.time()) + 0.1)
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(client)
    assert caught.value.body["code"] == "api_key_expired"
    gw.ok("PATCH", f"/admin/keys/{key_id}", json={"expires_at": None})
    rotated = gw.ok("POST", f"/admin/keys/{key_id}/rotate")
    assert rotated["secret"] != secret
    with pytest.raises(openai.AuthenticationError):
        chat(client)
    assert chat(gw.openai(rotated["secret"])).choices
    gw.ok("DELETE", f"/admin/keys/{key_id}")
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gw.openai(rotated["secret"]))
    assert caught.value.body["code"] == "invalid_api_key"
    assert gw.admin("GET", f"/admin/keys/{key_id}").status_code == 404


def test_bad_key_bodies_are_clear_400s(gw: Gateway) -> None:
    for body, param in (({}, "name"), ({"name": "x", "rpm": -1}, "rpm"), ({"name": "x", "scopes": ["admin"]},
                        "scopes[0]"), ({"name": "x", "expires_at": 5}, "expires_at"), ({"name": "x", "bogus": 1},
                        "bogus"), ({"name": "x", "quota": {"kind": "tokens", "limit": 0, "period": "day"}},
                        "quota.limit")):
        response = gw.admin("POST", "/admin/keys", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, (body, response.json())
    assert httpx.get(gw.url + "/admin/keys").status_code == 401


def test_unknown_keys_are_refused_and_not_logged(gw: Gateway) -> None:
    before = gw.ok("GET", "/admin/stats")["totals"]["requests"]
    for secret in ("sk-g2a-" + "x" * 40, "nope"):
        with pytest.raises(openai.AuthenticationError):
            chat(gw.openai(secret))
    assert gw.ok("GET", "/admin/stats")["totals"]["requests"] == before


def test_stats_and_log_agree_with_what_clients_saw(gw: Gateway) -> None:
    fresh_minute()
    key_id, secret = gw.new_key(rpm=4)
    client = gw.openai(secret)
    seen: dict[int, int] = {}
    for text in ("a", "b", "c", "d", "e", "f"):
        try:
            chat(client, text)
            seen[200] = seen.get(200, 0) + 1
        except openai.APIStatusError as exc:
            seen[exc.status_code] = seen.get(exc.status_code, 0) + 1
    with pytest.raises(openai.NotFoundError):
        gw.openai(API_KEY).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    log = gw.ok("GET", "/admin/logs", params={"key": key_id, "limit": 100})["data"]
    by_status: dict[int, int] = {}
    for entry in log:
        by_status[entry["status"]] = by_status.get(entry["status"], 0) + 1
    assert by_status == seen
    stats = gw.ok("GET", "/admin/stats")
    row = stats["by_key"][key_id]
    assert row == {"requests": 6, "ok": 4, "failed": 2, "tokens": row["tokens"]} and row["tokens"] > 0
    assert stats["totals"]["errors"]["rate_limit_exceeded"] >= 2 and stats["totals"]["errors"]["model_not_found"] >= 1
    assert len(stats["buckets"]) == 24 and stats["buckets"][-1]["requests"] >= 7
    assert stats["totals"]["latency_p95_ms"] is not None
    daily = gw.ok("GET", "/admin/stats", params={"range": "30d"})
    assert len(daily["buckets"]) == 30 and daily["by_key"][key_id]["requests"] == 6
    errors = gw.ok("GET", "/admin/logs", params={"status": "404"})["data"]
    assert errors and errors[0]["error_kind"] == "model_not_found" and errors[0]["key_id"] == "env"


def test_log_pages_with_cursors(gw: Gateway) -> None:
    key_id, secret = gw.new_key()
    client = gw.openai(secret)
    for i in range(5):
        chat(client, f"page {i}")
    client.models.list()  # reaches no account: not logged
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"key": key_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = gw.ok("GET", "/admin/logs", params=params)
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len(set(seen)) == 5 and seen == sorted(seen, reverse=True)
    routes = {e["route"] for e in gw.ok("GET", "/admin/logs", params={"key": key_id, "route": "chat"})["data"]}
    assert routes == {"POST /v1/chat/completions"}
    assert gw.ok("GET", "/admin/logs", params={"key": key_id, "route": "models"})["data"] == []


def test_summary_is_one_call_for_the_dashboard(gw: Gateway) -> None:
    summary = gw.ok("GET", "/admin/summary")
    assert summary["pool"]["total"] >= 2 and summary["keys"]["total"] >= 1
    assert summary["today"]["requests"] >= 1 and len(summary["last_24h"]["buckets"]) == 24
    history = gw.ok("GET", "/admin/pool/history")["points"]
    assert history and history[-1]["total"] >= 2 and "remaining" in history[-1]


def test_the_allow_list_reads_the_model_the_way_the_routes_do(gw: Gateway) -> None:
    """Every way a body can name a model is seen by admission, so no spelling gets past an allow-list."""
    _, secret = gw.new_key(models=["grok-4.5"], scopes=["chat", "images"])
    auth = {"Authorization": f"Bearer {secret}"}
    chat_body = b'{"model": "grok-4.5-heavy", "messages": [{"role": "user", "content": "x"}]}'
    refused = httpx.post(gw.url + "/v1/chat/completions", content=chat_body,
                         headers={**auth, "Content-Type": "Application/JSON"}, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    boundary = "xyz"
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

    def form(*model_parts: bytes) -> bytes:
        parts = [b"--xyz\r\nContent-Disposition: form-data; " + p for p in model_parts]
        parts.append(b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n')
        parts.append(b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                     b"Content-Type: image/png\r\n\r\n" + png + b"\r\n")
        return b"".join(parts) + b"--xyz--\r\n"

    for body in (form(b'name="model"\r\n\r\ngrok-4.5\r\n', b'name="model"\r\n\r\ngrok-imagine-image-edit\r\n'),
                 form(b"name=model\r\n\r\ngrok-imagine-image-edit\r\n"),
                 form(b'NAME="model"\r\n\r\ngrok-imagine-image-edit\r\n'),
                 form()):  # no model at all: an allow-list does not let a default through
        response = httpx.post(gw.url + "/v1/images/edits", content=body, timeout=30,
                              headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 403, (body[:80], response.text)
    as_text = httpx.post(gw.url + "/v1/images/edits", timeout=30, headers={**auth, "Content-Type": "text/plain"},
                         content=json.dumps({"model": "grok-imagine-image-edit", "prompt": "x",  # a data URI: nothing to fetch
                                              "image": "data:image/png;base64," + base64.b64encode(png).decode()}))
    assert as_text.status_code == 403
    too_long = httpx.post(gw.url + "/v1/chat/completions", headers=auth, timeout=30,
                          json={"model": "m" * 201, "messages": [{"role": "user", "content": "x"}]})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "model"


def test_hostile_bodies_cost_neither_time_nor_store_commands(gw: Gateway) -> None:
    """A body built to make a model scan backtrack is read in linear time; a key that cannot exist is refused
    without asking the store."""
    body = b'--x\r\nname="model"\r\n' * 12000
    started = time.monotonic()
    response = httpx.post(gw.url + "/v1/images/edits", content=body, timeout=30, headers={
        "Authorization": "Bearer sk-g2a-" + "A" * 40, "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 401 and time.monotonic() - started < 2.0
    before = gw.commands()
    for secret in ("sk-g2a-x", "sk-g2a-" + "!" * 40, "sk-g2a-" + "a" * 41):
        assert httpx.post(gw.url + "/v1/chat/completions", json={"model": "grok-4.5"},
                          headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert gw.commands() == before


def test_reads_need_no_scope_and_odd_admin_input_is_a_clear_error(gw: Gateway) -> None:
    _, secret = gw.new_key(scopes=["images"])
    assert gw.openai(secret).models.list().data  # an images-only key can still list the models
    for path in ("/admin/keys/all", "/admin/keys/h:abc", "/admin/keys/0123456789ab:slots"):
        assert gw.admin("GET", path).status_code == 404
    assert gw.admin("GET", "/admin/keys", params={"cursor": "9" * 30}).status_code == 400
    for entry in ("-1", "1-2-3", "9" * 20 + "-0"):
        assert gw.admin("GET", f"/admin/logs/{entry}").status_code == 400
    response = httpx.post(gw.url + "/admin/keys", content=b'{"name": "x", "expires_at": 1e999}',
                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_PASSWORD}"})
    assert response.status_code == 400
    assert gw.admin("POST", "/admin/keys", json={"name": "x", "models": ["*a*b*c"]}).status_code == 400


def test_a_store_key_sees_only_its_own_video_jobs(gw: Gateway) -> None:
    _, alice = gw.new_key()
    _, bob = gw.new_key()
    a = gw.openai(alice).videos.create(prompt="alice's paper boat", seconds="6", size="480x854")
    b = gw.openai(bob).videos.create(prompt="bob's kite", seconds="6", size="480x854")
    assert a.status == "completed" and b.status == "completed", (a.error, b.error)
    mine = {v.id for v in gw.openai(alice).videos.list().data}
    assert a.id in mine and b.id not in mine
    for call in (lambda: gw.openai(alice).videos.retrieve(b.id), lambda: gw.openai(alice).videos.delete(b.id),
                 lambda: gw.openai(alice).videos.download_content(b.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    everyone = {v.id for v in gw.openai(API_KEY).videos.list().data}  # the operator's own key sees all
    assert {a.id, b.id} <= everyone
    assert gw.openai(bob).videos.retrieve(b.id).status == "completed"
