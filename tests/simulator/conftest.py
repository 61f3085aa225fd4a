"""One zero-delay simulator per session; every test starts from an empty state and the fast preset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

import httpx
import pytest

from simulator import SimConfig, SimulatorServer
from tests.simulator.helpers import TOKEN, cookies


@pytest.fixture(scope="session")
def _server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture
def sim(_server: SimulatorServer) -> SimulatorServer:
    _server.state.reset()
    fresh = SimConfig.fast()
    for f in fields(fresh):
        setattr(_server.config, f.name, getattr(fresh, f.name))
    return _server


@pytest.fixture
def account(sim: SimulatorServer):
    return sim.state.add_account(TOKEN, tier="super")


@pytest.fixture
def client(sim: SimulatorServer, account) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers={"cookie": cookies(TOKEN)}, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(sim: SimulatorServer, account):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"cookie": cookies(TOKEN)}, timeout=10,
                                 limits=limits) as c:
        yield c
