"""A request can keep a value (a stored Responses answer) in the same settle command: no extra round trip."""

from __future__ import annotations

from core.pool import Outcome, TokenPool
from tests.pool.helpers import add_accounts, set_quota


async def test_settle_stores_what_the_request_keeps_in_the_same_command(pool: TokenPool) -> None:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    warm = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(warm, Outcome.success("m"))  # the scripts are loaded now: counts below are steady state
    key = pool.store.key("resp", "r1")

    lease = await pool.lease(mode="fast", min_tier="basic")
    before = pool.store.commands_sent
    await pool.settle(lease, Outcome(ok=True, model="m", keep=(key, '{"id": "r1"}', 120)))
    assert pool.store.commands_sent == before + 1
    assert await pool.store.call("GET", key) == '{"id": "r1"}'
    assert 110 <= int(await pool.store.call("TTL", key)) <= 120

    # Without keep nothing is written.
    lease = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(lease, Outcome(ok=True, model="m"))
    assert int(await pool.store.call("EXISTS", pool.store.key("resp", "r2"))) == 0
