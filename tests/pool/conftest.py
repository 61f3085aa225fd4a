"""Pool tests run on a real redis-server (``redis_server`` from tests/support), one key prefix per test."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from core.pool import TokenPool
from core.settings import Settings
from core.store import Store
from core.store.redis_transport import RedisTransport

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    """A clock the test moves by hand; every pool in a test shares it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fake_token(n: int) -> str:
    """A JWT-shaped session token (HS256 header, ``{"session_id": ...}`` payload), distinct per ``n``."""
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    session = f'{{"session_id":"{uuid.UUID(int=n)}"}}'.encode()
    payload = base64.urlsafe_b64encode(session).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(hashlib.sha256(session).digest()).decode().rstrip("=")
    return f"{header}.{payload}.{signature}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prefix() -> str:
    return f"pooltest:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def open_store(redis_server, prefix: str) -> AsyncIterator[Callable[[], Store]]:
    """Opens separate Store/transport objects on the same Redis and prefix: separate "instances"."""
    stores: list[Store] = []

    def make() -> Store:
        store = Store(RedisTransport.from_url(redis_server.url), prefix=prefix)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


@pytest.fixture
def make_pool(open_store: Callable[[], Store], clock: Clock) -> Callable[..., TokenPool]:
    """``make_pool(**settings)``: a pool on a fresh Store (its own connection), sharing the test clock.
    ``lease_wait`` defaults to 0 here (refuse at once when busy); the waiting tests set it."""

    def make(store: Store | None = None, **settings: object) -> TokenPool:
        return TokenPool(store or open_store(), Settings(**{"lease_wait": 0, **settings}), clock=clock)

    return make


@pytest.fixture
def pool(store: Store, make_pool: Callable[..., TokenPool]) -> TokenPool:
    return make_pool(store)
