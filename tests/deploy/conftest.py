"""Deployment fixtures: the grok.com simulator, the embedded store, settings pointing at both (each test's
gateway gets its own key prefix), and the same settings as environment variables for entry points that read
the environment (Vercel's runtime, the Lambda module, the CLI)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields

import pytest

from core.settings import ENV_NAMES, Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer

API_KEY = "sk-deploy-test-key"
ADMIN_PASSWORD = "deploy-admin-secret"
CRON_SECRET = "deploy-cron-secret"


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture
def fresh_sim(sim: SimulatorServer) -> Iterator[SimulatorServer]:
    """The session simulator, with its timing put back to the fast preset afterwards."""
    yield sim
    fast = SimConfig.fast()
    for f in fields(fast):
        setattr(sim.config, f.name, getattr(fast, f.name))


@pytest.fixture(scope="session")
def make_settings(sim: SimulatorServer, embedded_redis) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "api_keys": (API_KEY,),
            "admin_password": ADMIN_PASSWORD,
            "cron_secret": CRON_SECRET,
            "redis_url": embedded_redis.url,
            "store_prefix": f"deploy-{uuid.uuid4().hex[:10]}:",
            "grok_base_url": sim.base_url,
            "grok_assets_url": sim.assets_url,
            "grok_ws_url": sim.ws_url,
            "allow_private_urls": True,
            "first_byte_timeout": 10.0,
            "stream_idle_timeout": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that make ``Settings.from_env()`` build ``settings`` (non-defaults only)."""
    env: dict[str, str] = {}
    defaults = Settings()
    for field, names in ENV_NAMES.items():
        value = getattr(settings, field)
        if value == getattr(defaults, field) or value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[names[0]] = str(value)
    return env
