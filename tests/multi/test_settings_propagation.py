"""A run-time settings change made through one gateway process is in force on the others (same store, separate
processes, each with a warm cache) within SETTINGS_CACHE_TTL — over redis-server and over Upstash REST."""

from __future__ import annotations

import time

from tests.multi.conftest import API_KEY, Cluster

TTL = 1.0
ALIAS = "multi-office-model"


def _model_status(c: Cluster, via: int) -> int:
    response = c.http.get(c.gateways[via].url + f"/v1/models/{ALIAS}", headers={"Authorization": f"Bearer {API_KEY}"})
    return response.status_code


def _wait_all(c: Cluster, status: int, since: float) -> float:
    """Seconds until every instance answers ``status`` for the alias; fails past TTL plus a second of slack."""
    pending = set(range(len(c.gateways)))
    while pending:
        pending = {i for i in pending if _model_status(c, i) != status}
        elapsed = time.monotonic() - since
        assert elapsed < TTL + 1.0, f"instances {sorted(pending)} still answer the old setting after {elapsed:.2f}s"
        time.sleep(0.05)
    return time.monotonic() - since


def test_a_change_reaches_every_instance_within_the_cache_ttl(cluster) -> None:
    c: Cluster = cluster(3, SETTINGS_CACHE_TTL=str(TTL))
    assert all(_model_status(c, i) == 404 for i in range(3))  # every cache warm, without the alias

    c.admin("PUT", "/admin/settings", via=0, json={"values": {"MODEL_ALIASES": {ALIAS: "grok-4.5"}}})
    took = _wait_all(c, 200, time.monotonic())
    for i in range(3):
        item = {s["name"]: s for s in c.admin("GET", "/admin/settings", via=i)["data"]}["MODEL_ALIASES"]
        assert item["source"] == "store" and item["value"] == {ALIAS: "grok-4.5"}

    c.admin("PUT", "/admin/settings", via=2, json={"values": {"MODEL_ALIASES": None}})
    took_back = _wait_all(c, 404, time.monotonic())
    print(f"\nin force everywhere after {took:.2f}s and {took_back:.2f}s (SETTINGS_CACHE_TTL={TTL}s)")
