"""Run-time settings over real HTTP: the admin view, validation with the environment's own messages, overrides
marked as such, null back to the environment, and a change made through one instance in force on another that
shares the store within SETTINGS_CACHE_TTL. Plus the store cost of the freshness check, counted on a real store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core import runtime_settings
from core.gateway import Gateway
from core.settings import Settings, SettingsError
from core.store import open_store
from tests.e2e.conftest import API_KEY, Deployment

ALIAS = "my-office-model"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def env_message(name: str, value: str) -> str:
    """What start-up says about ``name=value`` in the environment."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={name: value})
    return caught.value.problems[0]


def by_name(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in view["data"]}


def model_status(gw: Deployment, model: str) -> int:
    response = httpx.get(f"{gw.base_url}/models/{model}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    return response.status_code


@pytest.fixture(scope="module")
def gw(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(settings_cache_ttl=0.5)


def test_view_lists_only_runtime_settings_with_their_source(gw: Deployment) -> None:
    view = ok(gw.admin("GET", "/admin/settings"))
    items = by_name(view)
    assert set(items) == set(runtime_settings.BY_NAME)
    for secret in ("ADMIN_PASSWORD", "ENCRYPTION_KEY", "API_KEYS", "REDIS_URL", "S3_BUCKET", "UPSTASH_REDIS_REST_URL"):
        assert secret not in items
    beat = items["SSE_HEARTBEAT_INTERVAL"]  # the deployment sets it: "env"
    assert beat["source"] == "env" and beat["value"] == beat["env_value"] == 5.0 and beat["type"] == "number"
    thinking = items["THINKING_OUTPUT"]
    assert thinking["source"] == "default" and thinking["choices"] == ["separate", "inline", "hidden"]
    assert items["LOG_CONTENT_CHARS"] == {**items["LOG_CONTENT_CHARS"], "value": 0, "minimum": 0, "type": "integer"}
    assert items["PUBLIC_PLAYGROUND"]["value"] is False and items["PUBLIC_RPM"]["value"] == 10


@pytest.mark.parametrize(("name", "value"), [
    ("THINKING_OUTPUT", "loud"),
    ("ACCOUNT_CONCURRENCY", "0"),
    ("SOURCES_FOOTER", "maybe"),
    ("RATE_LIMIT_COOLDOWN", "-1"),
    ("MODEL_ALIASES", "{not json"),
])
def test_bad_value_is_refused_with_the_environment_message(gw: Deployment, name: str, value: str) -> None:
    before = ok(gw.admin("GET", "/admin/settings"))
    error = error_of(gw.admin("PUT", "/admin/settings", json={"values": {name: value}}), 400)
    assert error["param"] == name
    assert error["message"] == env_message(name, value)
    assert ok(gw.admin("GET", "/admin/settings")) == before  # nothing was stored


def test_unknown_alias_target_is_refused_like_at_start_up(gw: Deployment) -> None:
    error = error_of(gw.admin("PUT", "/admin/settings", json={"values": {"MODEL_ALIASES": {ALIAS: "grok-99"}}}), 400)
    assert error["param"] == "MODEL_ALIASES" and "grok-99" in error["message"]


@pytest.mark.parametrize("name", ["ADMIN_PASSWORD", "REDIS_URL", "API_KEYS", "NOT_A_SETTING"])
def test_secrets_and_deployment_facts_are_not_runtime_settings(gw: Deployment, name: str) -> None:
    error = error_of(gw.admin("PUT", "/admin/settings", json={"values": {name: "x"}}), 400)
    assert error["param"] == name and "not a run-time setting" in error["message"]


def test_settings_need_admin(gw: Deployment) -> None:
    assert httpx.get(gw.url + "/admin/settings", timeout=10).status_code == 401
    response = httpx.put(gw.url + "/admin/settings", json={"values": {"THINKING_OUTPUT": "hidden"}},
                         headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert response.status_code == 401


def test_override_is_marked_store_and_null_goes_back_to_the_environment(gw: Deployment) -> None:
    assert model_status(gw, ALIAS) == 404
    view = ok(gw.admin("PUT", "/admin/settings", json={"values": {
        "MODEL_ALIASES": {ALIAS: "grok-4.5"}, "SSE_HEARTBEAT_INTERVAL": "7", "FILTER_TAGS": "a, b",
    }}))
    items = by_name(view)
    assert items["MODEL_ALIASES"] == {**items["MODEL_ALIASES"], "source": "store", "value": {ALIAS: "grok-4.5"},
                                      "env_value": {}}
    assert items["SSE_HEARTBEAT_INTERVAL"]["value"] == 7.0 and items["SSE_HEARTBEAT_INTERVAL"]["env_value"] == 5.0
    assert items["FILTER_TAGS"]["value"] == ["a", "b"]  # parsed exactly as the environment variable would be
    assert view["version"]
    assert model_status(gw, ALIAS) == 200  # in force on this instance at once

    view = ok(gw.admin("PUT", "/admin/settings", json={"values": {"MODEL_ALIASES": None, "FILTER_TAGS": None}}))
    items = by_name(view)
    assert items["MODEL_ALIASES"]["source"] == "default" and items["MODEL_ALIASES"]["value"] == {}
    assert items["FILTER_TAGS"]["value"] == list(Settings().filter_tags)
    assert items["SSE_HEARTBEAT_INTERVAL"]["source"] == "store"  # the other override stays
    assert model_status(gw, ALIAS) == 404
    ok(gw.admin("PUT", "/admin/settings", json={"values": {"SSE_HEARTBEAT_INTERVAL": None}}))
    assert by_name(ok(gw.admin("GET", "/admin/settings")))["SSE_HEARTBEAT_INTERVAL"]["source"] == "env"


def test_public_mode_reads_the_runtime_settings(gw: Deployment) -> None:
    assert ok(httpx.get(gw.url + "/admin/public", timeout=10)) == {"enabled": False, "key_required": False}
    ok(gw.admin("PUT", "/admin/settings", json={"values": {"PUBLIC_PLAYGROUND": True, "PUBLIC_KEY": "pk-demo"}}))
    try:
        assert ok(httpx.get(gw.url + "/admin/public", timeout=10)) == {"enabled": True, "key_required": True}
    finally:
        ok(gw.admin("PUT", "/admin/settings", json={"values": {"PUBLIC_PLAYGROUND": None, "PUBLIC_KEY": None}}))


def test_change_through_one_instance_is_in_force_on_another(deploy: Callable[..., Deployment]) -> None:
    """Two gateways, one store: B has served (so it holds a cached copy) when A changes a setting; B must apply
    it within SETTINGS_CACHE_TTL (plus one request's time), and not before A made it."""
    ttl = 1.0
    prefix = f"e2e-shared-{uuid.uuid4().hex[:8]}:"
    a = deploy(store_prefix=prefix, settings_cache_ttl=ttl)
    b = deploy(store_prefix=prefix, settings_cache_ttl=ttl)
    assert model_status(b, ALIAS) == 404  # B's cache is now warm, without the alias
    ok(a.admin("PUT", "/admin/settings", json={"values": {"MODEL_ALIASES": f"{ALIAS}=grok-4.5"}}))
    changed = time.monotonic()
    while model_status(b, ALIAS) != 200:
        assert time.monotonic() - changed < ttl + 1.0, "B did not apply A's change within SETTINGS_CACHE_TTL"
        time.sleep(0.05)
    assert by_name(ok(b.admin("GET", "/admin/settings")))["MODEL_ALIASES"]["source"] == "store"
    ok(b.admin("PUT", "/admin/settings", json={"values": {"MODEL_ALIASES": None}}))  # and back, the other way
    changed = time.monotonic()
    while model_status(a, ALIAS) != 404:
        assert time.monotonic() - changed < ttl + 1.0, "A did not apply B's reset within SETTINGS_CACHE_TTL"
        time.sleep(0.05)


async def test_freshness_costs_no_command_while_fresh(embedded_redis) -> None:
    """The budget, counted on the store: a cold check 1 command, a fresh cache 0, a stale unchanged one 1,
    a piggybacked unchanged version 0; and a change is swapped into every component of the gateway."""
    settings = Settings(redis_url=embedded_redis.url, store_prefix=f"e2e-rt-{uuid.uuid4().hex[:8]}:",
                        settings_cache_ttl=0.2)
    gateway = Gateway(settings, open_store(settings))
    try:
        store = gateway.store
        runtime_settings.attach(gateway)
        sent = store.commands_sent
        await runtime_settings.ensure_fresh(store)
        assert store.commands_sent - sent in (1, 2)  # cold: one EVALSHA (+ one EVAL if the server lacks the script)
        sent = store.commands_sent
        for _ in range(100):
            await runtime_settings.ensure_fresh(store)
        assert store.commands_sent == sent  # fresh: nothing
        await asyncio.sleep(0.25)
        await runtime_settings.ensure_fresh(store)
        assert store.commands_sent - sent == 1  # stale: one version check
        await asyncio.sleep(0.25)
        assert runtime_settings.note_version(runtime_settings.cached_version(store) or "", store) is False
        sent = store.commands_sent
        await runtime_settings.ensure_fresh(store)
        assert store.commands_sent == sent  # renewed by the piggybacked version

        view = await runtime_settings.write(store, {"ACCOUNT_CONCURRENCY": 3, "MODEL_ALIASES": {ALIAS: "grok-4.5"}})
        assert by_name(view)["ACCOUNT_CONCURRENCY"]["source"] == "store"
        live = gateway.settings
        assert live.account_concurrency == 3 and settings.account_concurrency == 1  # swapped, never mutated
        assert gateway.pool.settings is live and gateway.chat.settings is live and gateway.client.settings is live
        assert gateway.catalog.resolve(ALIAS).id == "grok-4.5"
        assert runtime_settings.note_version("some-other-version", store) is True
        sent = store.commands_sent
        await runtime_settings.ensure_fresh(store)
        assert store.commands_sent - sent == 1  # a changed version forces the next check
    finally:
        await gateway.aclose()
