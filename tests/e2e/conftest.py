"""End-to-end fixtures: the official SDKs → the gateway over real HTTP → the grok.com simulator, with the
embedded Redis as the store. Every gateway gets its own key prefix, so pools never leak between tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest

from api._app import create_app
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from tests.support.asgi import ThreadedServer

API_KEY = "sk-e2e-test-key"
ADMIN_PASSWORD = "e2e-admin-secret"


@dataclass
class Deployment:
    url: str
    settings: Settings
    sim: SimulatorServer
    tokens: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=API_KEY, max_retries=0, **kwargs)

    def async_client(self, **kwargs: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=API_KEY, max_retries=0, **kwargs)

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_PASSWORD}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def add_accounts(self, count: int = 1, *, tier: str = "super", **account: object) -> list[str]:
        tokens = [f"e2e-{uuid.uuid4().hex}" for _ in range(count)]
        for token in tokens:
            self.sim.state.add_account(token, tier=tier, **account)
        response = self.admin("POST", "/admin/tokens", json={"tokens": tokens})
        assert response.status_code == 200, response.text
        assert response.json()["added"] == count
        self.tokens += tokens
        return tokens


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture(scope="session")
def deploy(sim: SimulatorServer, embedded_redis) -> Iterator[Callable[..., Deployment]]:
    """``deploy(**settings)`` → a running gateway pointed at the simulator, with an empty pool."""
    servers: list[ThreadedServer] = []

    def make(**overrides: object) -> Deployment:
        values: dict[str, object] = {
            "api_keys": (API_KEY,),
            "admin_password": ADMIN_PASSWORD,
            "redis_url": embedded_redis.url,
            "store_prefix": f"e2e-{uuid.uuid4().hex[:10]}:",
            "grok_base_url": sim.base_url,
            "grok_assets_url": sim.assets_url,
            "grok_ws_url": sim.ws_url,
            "allow_private_urls": True,
            "first_byte_timeout": 10.0,
            "stream_idle_timeout": 5.0,
            "heartbeat_interval": 5.0,
        }
        values.update(overrides)
        settings = Settings(**values)
        server = ThreadedServer(create_app(settings)).start()
        servers.append(server)
        return Deployment(server.url, settings, sim)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module", params=["rest", "mgw"])
def gateway(request: pytest.FixtureRequest, deploy: Callable[..., Deployment]) -> Deployment:
    """A gateway per chat transport with two super accounts of ample quota."""
    deployment = deploy(chat_transport=request.param)
    deployment.add_accounts(2, tier="heavy")
    return deployment
