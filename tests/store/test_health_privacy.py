"""``/health`` and store errors tell clients which kind of store and whether it answers, never where it is."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from api._app import create_app
from core.settings import Settings
from tests.support.asgi import ThreadedServer
from tests.support.net import free_port

SECRET = "hunter2-store-secret"
API_KEY = "sk-privacy"


def refused_port() -> int:
    return free_port()  # nothing listens there: connections are refused at once


STORES = {
    "redis": lambda port: {"redis_url": f"redis://admin:{SECRET}@127.0.0.1:{port}/0"},
    "upstash": lambda port: {"upstash_url": f"http://127.0.0.1:{port}", "upstash_token": SECRET},
}


@pytest.fixture(params=sorted(STORES))
def gateway(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, int]]:
    port = refused_port()
    settings = Settings(api_keys=(API_KEY,), data_dir=str(tmp_path), store_timeout=1.0,
                        **STORES[request.param](port))
    with ThreadedServer(create_app(settings)) as server:
        yield server.url, port


def assert_no_address(text: str, port: int) -> None:
    for leak in (SECRET, "127.0.0.1", f":{port}", "://", "admin:"):
        assert leak not in text, f"{leak!r} in {text}"


def test_health_names_the_kind_of_store_not_its_address(gateway: tuple[str, int], caplog) -> None:
    url, port = gateway
    with caplog.at_level(logging.WARNING, logger="grok2api"):
        response = httpx.get(url + "/health", timeout=10)
    assert response.status_code == 503
    store = response.json()["store"]
    assert store["ok"] is False and store["transport"] in STORES and "target" not in store
    assert store["error"].endswith(("connection refused", "could not connect")), store["error"]
    assert_no_address(response.text, port)
    assert f"127.0.0.1:{port}" in caplog.text  # the operator still finds the address in the log
    assert SECRET not in caplog.text


def test_store_outage_503_names_no_address(gateway: tuple[str, int]) -> None:
    url, port = gateway
    body = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"
    assert_no_address(response.text, port)
