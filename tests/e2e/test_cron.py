"""``/cron/tick``: the periodic quota refresh as Vercel Cron (or EventBridge, Render cron) calls it.

It needs ``Authorization: Bearer $CRON_SECRET``; it refreshes the accounts whose quota is stale (numbers and tier,
straight from the simulated grok.com); and it works inside a time budget, so a pool too large for one invocation
is covered by several ticks that resume the same job where the last one stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api._app import create_app
from core.pool.tokens import account_id
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment
from tests.support.asgi import ThreadedServer

CRON_SECRET = "cron-e2e-secret"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    """This module's own simulator: the tests slow its quota answers down."""
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture(scope="module")
def make(sim: SimulatorServer, embedded_redis) -> Iterator[Callable[..., Deployment]]:
    servers: list[ThreadedServer] = []

    def build(**overrides: Any) -> Deployment:
        settings = Settings(**{
            "api_keys": (API_KEY,), "admin_password": ADMIN_PASSWORD, "cron_secret": CRON_SECRET,
            "redis_url": embedded_redis.url, "store_prefix": f"cron-{uuid.uuid4().hex[:10]}:",
            "grok_base_url": sim.base_url, "grok_assets_url": sim.assets_url, "grok_ws_url": sim.ws_url,
            **overrides,
        })
        server = ThreadedServer(create_app(settings)).start()
        servers.append(server)
        return Deployment(server.url, settings, sim)

    yield build
    for server in servers:
        server.server.should_exit = True  # all at once, then wait: teardown stays quick
    for server in servers:
        server.stop()


def tick(gw: Deployment, secret: str | None = CRON_SECRET, *, method: str = "GET", budget: float | None = None
         ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    params = {"budget": budget} if budget is not None else None
    return httpx.request(method, gw.url + "/cron/tick", headers=headers, params=params, timeout=60)


def progress_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["quota_refresh"]


def accounts(gw: Deployment) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in gw.admin("GET", "/admin/tokens").json()["data"]}


def test_tick_requires_the_cron_secret(make: Callable[..., Deployment]) -> None:
    gw = make()
    for secret in (None, "wrong", API_KEY):
        for method in ("GET", "POST"):
            response = tick(gw, secret, method=method)
            assert response.status_code == 401, (secret, method)
            assert response.json()["error"]["code"] == "invalid_cron_key"
    response = httpx.get(gw.url + "/cron/tick", headers={"Authorization": CRON_SECRET})  # no "Bearer"
    assert response.status_code == 401
    for method in ("GET", "POST"):  # Vercel Cron sends GET; schedulers often POST
        assert progress_of(tick(gw, method=method))["status"] == "done"
    assert progress_of(tick(gw, ADMIN_PASSWORD))["status"] == "done"  # the admin may run it by hand

    no_secret = make(cron_secret=None)  # without CRON_SECRET only the admin secret opens it
    assert tick(no_secret, CRON_SECRET).status_code == 401
    assert tick(no_secret, ADMIN_PASSWORD).status_code == 200


def test_tick_refreshes_stale_quotas_and_detects_tiers(make: Callable[..., Deployment], sim) -> None:
    gw = make(quota_stale_after=1.5)
    tiers = {}
    for tier in ("basic", "super", "heavy"):
        for token in gw.add_accounts(2, tier=tier):
            tiers[account_id(token)] = (token, tier)
    assert {a["tier"] for a in accounts(gw).values()} == {"unknown"}

    progress = progress_of(tick(gw))
    assert progress["status"] == "done" and progress["total"] == progress["done"] == 6 and progress["errors"] == 0
    for aid, acc in accounts(gw).items():
        token, tier = tiers[aid]
        assert acc["tier"] == tier
        for mode in ("auto", "fast", "expert", "heavy"):
            assert acc["quota"][mode]["remaining"] == sim.state.quota(token, mode).remaining
        assert acc["media"]["image"]["remaining"] == sim.state.quota(token, "image").remaining

    assert progress_of(tick(gw))["total"] == 0  # everything is fresh: nothing to do, nothing asked upstream

    token, _ = tiers[next(iter(tiers))]
    sim.state.set_quota(token, "fast", remaining=3)  # the owner chatted in the browser meanwhile
    time.sleep(1.6)  # ... and the pool's numbers went stale
    progress = progress_of(tick(gw))
    assert progress["total"] == progress["done"] == 6
    assert accounts(gw)[account_id(token)]["quota"]["fast"]["remaining"] == 3


@pytest.fixture
def slow_quota(sim: SimulatorServer) -> Iterator[float]:
    """grok.com takes half a second per quota answer (every account costs ≥ 0.5 s, 8 at a time)."""
    sim.config.quota_delay = 0.5
    try:
        yield sim.config.quota_delay
    finally:
        sim.config.quota_delay = 0.0


def test_large_pool_is_covered_by_several_ticks_within_budget(make: Callable[..., Deployment], slow_quota) -> None:
    gw = make()
    dead = f"cron-dead-{uuid.uuid4().hex}"  # grok.com does not know it: an error, not a stop
    gw.admin("POST", "/admin/tokens", json={"tokens": [dead]})  # first in line: in every interrupted batch
    tokens = gw.add_accounts(40, tier="super")
    budget = 1.0

    ticks: list[dict[str, Any]] = []
    while not ticks or ticks[-1]["status"] != "done":
        started = time.monotonic()
        ticks.append(progress_of(tick(gw, budget=budget)))
        took = time.monotonic() - started
        assert took < budget + 1.5, f"tick {len(ticks)} took {took:.1f}s with a {budget:g}s budget"
        assert len(ticks) < 20, ticks[-1]
    print(f"\n41 accounts, {budget:g}s budget: {len(ticks)} ticks, done after each: {[t['done'] for t in ticks]}")

    assert len(ticks) >= 3  # 40 accounts × 0.5 s, 8 at a time, cannot fit in fewer one-second slices
    assert len({t["job_id"] for t in ticks}) == 1  # every tick resumed the same job
    done = [t["done"] for t in ticks]
    assert done == sorted(done) and 0 < done[0] < 40
    assert [t["errors"] for t in ticks] == [1] * len(ticks), [t["last_error"] for t in ticks]  # once per job
    final = ticks[-1]
    assert final["total"] == 41 and final["done"] == 40 and final["errors"] == 1
    assert account_id(dead) in final["last_error"] and "unauthorized" in final["last_error"]

    refreshed = accounts(gw)
    for token in tokens:
        acc = refreshed[account_id(token)]
        assert acc["tier"] == "super" and acc["quota"]["fast"]["remaining"] == 140, acc
    assert refreshed[account_id(dead)]["strikes"] == 1 and refreshed[account_id(dead)]["tier"] == "unknown"
    assert refreshed[account_id(dead)]["status"]["state"] == "active"  # one 401 is one strike, not three

    again = progress_of(tick(gw, budget=budget))  # a new job: only the dead account is still stale
    assert again["job_id"] != final["job_id"] and again["total"] == 1 and again["errors"] == 1
