"""The pool's scripts and reply shapes on every store transport (embedded, redis-server, Upstash REST)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from core.errors import FailureKind, NoAccountAvailable, UpstreamError
from core.pool import Outcome, QuotaWindow, TokenPool
from core.pool.refresh import QuotaRefresher
from core.settings import Settings
from core.store import Store
from core.store.embedded import EmbeddedTransport
from core.store.redis_transport import RedisTransport
from core.store.upstash_transport import UpstashTransport
from tests.pool.conftest import Clock, fake_token
from tests.pool.helpers import TIER_WINDOWS
from tests.support.fixtures import UPSTASH_TOKEN


@pytest.fixture(params=["embedded", "redis", "upstash"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "embedded":
        transport = EmbeddedTransport(request.getfixturevalue("embedded_redis"))
    elif request.param == "redis":
        transport = RedisTransport.from_url(request.getfixturevalue("redis_server").url)
    else:
        transport = UpstashTransport.from_url(request.getfixturevalue("upstash_server").url, UPSTASH_TOKEN)
    store = Store(transport, prefix=f"pooltransport:{uuid.uuid4().hex[:10]}:")
    yield store
    await store.close()


async def test_pool_round_trip(any_store: Store, clock: Clock) -> None:
    pool = TokenPool(any_store, Settings(encryption_key="k"), clock=clock)
    report = await pool.add([fake_token(1), fake_token(2), "junk"], tags=["t"])
    assert report.counts == {"added": 2, "skipped": 1}
    a, b = (entry.account_id or "" for entry in report.added)
    await pool.update_quota(a, TIER_WINDOWS["heavy"], {"video": QuotaWindow(0, 2, 86400, clock.now + 60)})

    before = any_store.commands_sent
    lease = await pool.lease(mode="fast", min_tier="basic", sticky_key="conv")
    await pool.settle(
        lease, Outcome.success("grok-4.5-fast", prompt_tokens=3, completion_tokens=4, latency_ms=5.5)
    )
    assert any_store.commands_sent - before <= 4  # 2, plus one EVAL each the first time a script is seen
    assert (lease.account_id, lease.token, lease.remaining) == (a, fake_token(1), 399)

    lease = await pool.lease(mode="heavy", min_tier="heavy", sticky_key="conv")
    await pool.settle(
        lease, Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "limit", quota_exhausted=True))
    )
    with pytest.raises(NoAccountAvailable, match=r"1 out of heavy quota until .*, 1 already tried"):
        await pool.lease(mode="heavy", min_tier="heavy", exclude=[b])  # b: tier not detected, so eligible

    accounts = {acc.id: acc for acc in await pool.list()}
    assert accounts[a].tier == "heavy" and accounts[a].quota["fast"].remaining == 399
    assert accounts[a].media["video"].resets_at == clock.now + 60
    assert accounts[b].tier == "unknown" and accounts[b].tags == ("t",)
    summary = await pool.summary()
    assert summary.total == 2 and summary.plaintext_accounts == 0
    assert (await pool.usage())["models"]["grok-4.5-fast"]["ms"] == 5.5
    counters, next_cursor = await pool.usage_page(limit=1000)
    assert counters == await pool.usage() and next_cursor is None
    page = await pool.page(limit=1)
    assert page.total == 2 and len(page.accounts) == 1 and page.next_cursor is not None
    assert await pool.reclaim_instance() == 0 and await pool.reindex() == 2

    async def fetch(account: str, token: str):
        return TIER_WINDOWS["basic"], None

    progress = await QuotaRefresher(pool, fetch).run(budget=5)
    assert progress.finished and progress.done == 1  # only b was stale
    assert (await pool.get(b)).tier == "basic"  # type: ignore[union-attr]
    assert sorted(await pool.export()) == sorted([fake_token(1), fake_token(2)])
    assert await pool.delete([a, b]) == 2
