"""Fixtures for the multi-instance tests: a simulator process and gateway processes sharing one real store.

``cluster(n, **env)`` starts ``n`` gateway processes (``python -m adapters.cli serve``) on the store the test is
parametrized with — redis-server over TCP, or Upstash REST through the compatible server (itself a separate
process in front of the same redis-server) — with a fresh ``STORE_PREFIX`` so runs never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.pool.tokens import account_id, mask
from simulator.client import SimControl
from tests.multi.procs import Proc, Processes, simulator_process
from tests.support.redis_server import RedisServer

API_KEY = "sk-multi-instance"
ADMIN_PASSWORD = "multi-admin-secret"
UPSTASH_TOKEN = "multi-upstash-token"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path) as processes:
        yield processes


@pytest.fixture
def sim(procs: Processes) -> Iterator[tuple[Proc, SimControl]]:
    with simulator_process(procs) as pair:
        yield pair


@pytest.fixture(params=["redis", "upstash"])
def store_env(request: pytest.FixtureRequest, redis_server: RedisServer, procs: Processes) -> dict[str, str]:
    """Environment selecting the store transport, and a fresh key prefix."""
    env = {"STORE_PREFIX": f"multi-{uuid.uuid4().hex[:8]}:"}
    if request.param == "redis":
        return {**env, "REDIS_URL": redis_server.url}
    upstash = procs.spawn(
        "upstash", ["-m", "tests.support.upstash_server", "--redis", redis_server.url, "--token", UPSTASH_TOKEN,
                    "--port", "{port}"],
    )
    return {**env, "UPSTASH_REDIS_REST_URL": upstash.url, "UPSTASH_REDIS_REST_TOKEN": UPSTASH_TOKEN}


@dataclass
class Cluster:
    gateways: list[Proc]
    sim: SimControl
    env: dict[str, str]
    spawn: Callable[[str, dict[str, str]], Proc] = field(repr=False)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def restart(self, index: int, **settings: str) -> Proc:
        """Start gateway ``index`` again (after ``kill()``) with the same environment plus ``settings``."""
        self.gateways[index] = self.spawn(f"gateway{index}-again", {**self.env, **settings})
        return self.gateways[index]

    def admin(self, method: str, path: str, *, via: int = 0, **kwargs: Any) -> Any:
        response = self.http.request(
            method, self.gateways[via].url + path, headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}, **kwargs
        )
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def accounts(self, via: int = 0) -> dict[str, dict[str, Any]]:
        """``/admin/tokens`` as ``{account id: account}``, every page."""
        out: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {"limit": 1000}
        while True:
            page = self.admin("GET", "/admin/tokens", via=via, params=params)
            out.update({a["id"]: a for a in page["data"]})
            if page["next_cursor"] is None:
                return out
            params["cursor"] = page["next_cursor"]

    def refresh_quotas(self, via: int = 0) -> None:
        """Refresh every account's quota now (the admin job, polled to the end)."""
        job = self.admin("POST", "/admin/tokens/refresh", via=via, json={})
        while job["status"] != "done":
            job = self.admin("GET", f"/admin/refresh/{job['job_id']}", via=via)
        assert job["errors"] == 0, job

    def import_tokens(self, tokens: list[str], via: int = 0) -> dict[str, str]:
        """Import through one instance's admin API; return ``{token: account id}``."""
        report = self.admin("POST", "/admin/tokens", via=via, json={"tokens": tokens})
        assert report["added"] == len(tokens), report
        ids = {entry["masked"]: entry["account_id"] for entry in report["details"]["added"]}
        exported = self.admin("GET", "/admin/tokens/export", via=via, params={"format": "json"})["tokens"]
        assert sorted(exported) == sorted(tokens)
        assert all(ids[mask(t)] == account_id(t) for t in tokens)
        return {t: account_id(t) for t in tokens}

    def chat(self, via: int, content: str, *, stream: bool = False, model: str = "grok-4.5-fast",
             timeout: float = 30) -> httpx.Response:
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}
        return self.http.post(self.gateways[via].url + "/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {API_KEY}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def cluster(
    procs: Processes, sim: tuple[Proc, SimControl], store_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []
    sim_proc, control = sim

    def make(count: int, **settings: str) -> Cluster:
        env = {
            **store_env,
            "API_KEYS": API_KEY,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GROK_BASE_URL": sim_proc.url,
            "GROK_ASSETS_URL": sim_proc.url + "/__assets",
            "GROK_WS_URL": f"ws://127.0.0.1:{sim_proc.port}/ws/mgw/",
            "DATA_DIR": str(tmp_path / "data"),
            **settings,
        }

        def spawn(name: str, environment: dict[str, str]) -> Proc:
            return procs.spawn(name, ["-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", "{port}"],
                               env=environment, ready="/health")

        gateways = [spawn(f"gateway{i}", env) for i in range(count)]
        made.append(Cluster(gateways, control, env, spawn))
        return made[-1]

    yield make
    for item in made:
        item.close()
