"""Import, leasing and settling on a real redis-server: selection, reservation, slots, command budget."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import FailureKind, NoAccountAvailable, UpstreamError
from core.pool import Outcome, QuotaWindow, TokenPool
from tests.pool.conftest import Clock, fake_token
from tests.pool.helpers import add_accounts, set_quota, set_tier


async def test_add_reports_added_and_skipped(pool: TokenPool) -> None:
    await pool.add([fake_token(1)])
    text = f"{fake_token(1)}\nsso={fake_token(2)}\n{fake_token(2)}\ngarbage\n{fake_token(3)}"
    report = await pool.add(text, tags=["team-a"], note="imported")
    assert [e.masked for e in report.added] == [f"{fake_token(n)[:4]}…{fake_token(n)[-4:]}" for n in (2, 3)]
    reasons = sorted(e.reason for e in report.skipped)
    assert reasons[0] == "already in the pool"
    assert reasons[1] == "duplicate within this import"
    assert "too short" in reasons[2]
    assert report.counts == {"added": 2, "skipped": 3}
    assert report.encrypted is False
    account = await pool.get(report.added[0].account_id or "")
    assert account and account.tags == ("team-a",) and account.note == "imported"
    assert account.tier == "unknown" and account.status.state == "active" and not account.encrypted
    listed = [a.id for a in await pool.list()]
    assert listed[1:] == [e.account_id for e in report.added]  # import order


async def test_lease_and_settle_are_one_command_each(pool: TokenPool) -> None:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    # The first call of each script after a Redis (re)start costs one more (EVALSHA → NOSCRIPT → EVAL): warm up.
    await pool.settle(await pool.lease(mode="fast", min_tier="basic", sticky_key="c"), Outcome.success())
    await pool.settle(await pool.lease(mode="fast", min_tier="basic"), Outcome.cancelled())
    for outcome in (
        Outcome.success("grok-4.5-fast", prompt_tokens=12, completion_tokens=30, latency_ms=420.0),
        Outcome.failed(UpstreamError(FailureKind.SERVER, "502"), "grok-4.5-fast"),
        Outcome.failed(UpstreamError(FailureKind.CLOUDFLARE, "just a moment"), "grok-4.5-fast"),
        Outcome.cancelled(),
    ):
        await pool.set_enabled([account], True)  # clear any cooldown from the previous round
        before = pool.store.commands_sent
        lease = await pool.lease(mode="fast", min_tier="basic", sticky_key="conversation-1")
        assert pool.store.commands_sent == before + 1
        await pool.settle(lease, outcome)
        assert pool.store.commands_sent == before + 2


async def test_unknown_quota_is_usable_and_flagged(pool: TokenPool) -> None:
    (account,) = await add_accounts(pool, 1)
    lease = await pool.lease(mode="expert", min_tier="super")
    assert (
        lease.account_id == account
        and lease.needs_refresh
        and lease.remaining is None
        and lease.reserved == 0
    )
    assert lease.token == fake_token(0) and fake_token(0) not in repr(lease)
    await pool.settle(lease, Outcome.success("grok-4.5-expert", quota={"expert": QuotaWindow(49, 50, 7200)}))
    account_after = await pool.get(account)
    assert account_after and account_after.quota["expert"].remaining == 49
    assert account_after.tier == "super"  # detected from the windows passed to settle
    lease = await pool.lease(mode="expert", min_tier="super")
    assert not lease.needs_refresh and lease.remaining == 48


async def test_reservation_is_trued_up_on_settle(pool: TokenPool) -> None:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)

    async def remaining() -> int | None:
        got = await pool.get(account)
        assert got
        return got.quota["fast"].remaining

    lease = await pool.lease(mode="fast", min_tier="basic", cost=3)
    assert (lease.reserved, lease.remaining, await remaining()) == (3, 7, 7)
    await pool.settle(lease, Outcome.success(charged=1))  # upstream charged less than reserved
    assert await remaining() == 9

    lease = await pool.lease(mode="fast", min_tier="basic", cost=2)
    await pool.settle(lease, Outcome.success())  # default: charged = cost
    assert await remaining() == 7

    lease = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(lease, Outcome.failed(UpstreamError(FailureKind.NETWORK, "connect refused")))
    assert await remaining() == 7  # failed before upstream accepted it: refunded

    await pool.set_enabled([account], True)
    lease = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(lease, Outcome.failed(UpstreamError(FailureKind.STREAM, "stream ended early")))
    assert await remaining() == 6  # accepted, then failed mid-stream: upstream charged it


async def test_quota_refreshed_during_a_lease_is_not_adjusted(pool: TokenPool, clock: Clock) -> None:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    lease = await pool.lease(mode="fast", min_tier="basic", cost=4)
    clock.advance(1)
    await set_quota(pool, account, "fast", 8, 10)  # upstream's own number already reflects this request
    await pool.settle(lease, Outcome.success(charged=0))
    got = await pool.get(account)
    assert got and got.quota["fast"].remaining == 8


async def test_most_remaining_first(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 3)
    for account, rem in zip(accounts, (5, 9, 7), strict=True):
        await set_quota(pool, account, "fast", rem, 10)
    leases = [await pool.lease(mode="fast", min_tier="basic") for _ in range(3)]  # cap 1: each takes one
    assert [lease.account_id for lease in leases] == [accounts[1], accounts[2], accounts[0]]


async def test_equal_accounts_are_picked_at_random(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 4)
    for account in accounts:
        await set_quota(pool, account, "fast", 10, 10)
    picks: Counter[str] = Counter()
    for _ in range(60):
        lease = await pool.lease(mode="fast", min_tier="basic")
        picks[lease.account_id] += 1
        await pool.settle(lease, Outcome.cancelled())  # refunds: quotas stay equal
    assert set(picks) == set(accounts)


async def test_sticky_conversation_keeps_its_account_while_eligible(pool: TokenPool) -> None:
    low, high = await add_accounts(pool, 2)
    await set_quota(pool, low, "fast", 3, 10)
    await set_quota(pool, high, "fast", 9, 10)
    await pool.set_concurrency(low, 2)
    await pool.set_concurrency(high, 2)

    first = await pool.lease(mode="fast", min_tier="basic", sticky_key="conv-A", exclude=[high])
    assert first.account_id == low
    await pool.settle(first, Outcome.success())
    again = await pool.lease(mode="fast", min_tier="basic", sticky_key="conv-A")
    assert again.account_id == low  # preferred although `high` has more quota
    other = await pool.lease(mode="fast", min_tier="basic", sticky_key="conv-B")
    assert other.account_id == high  # an unknown key spreads as usual

    await pool.settle(again, Outcome.success())
    await pool.set_enabled([low], False)
    moved = await pool.lease(mode="fast", min_tier="basic", sticky_key="conv-A")
    assert moved.account_id == high  # the sticky account is no longer eligible


async def test_tier_gating(pool: TokenPool) -> None:
    basic, super_, heavy = await add_accounts(pool, 3)
    for account, tier in ((basic, "basic"), (super_, "super"), (heavy, "heavy")):
        await set_tier(pool, account, tier)
    assert (await pool.lease(mode="heavy", min_tier="heavy")).account_id == heavy
    got = await pool.lease(mode="auto", min_tier="super")
    assert got.account_id == super_  # heavy is busy (cap 1); basic is never eligible
    with pytest.raises(NoAccountAvailable) as exc:
        await pool.lease(mode="auto", min_tier="super", model="grok-4.5")
    assert "busy" in exc.value.message and exc.value.retry_after == 1.0

    await pool.delete([heavy])
    with pytest.raises(NoAccountAvailable, match="no account with tier ≥ heavy"):
        await pool.lease(mode="heavy", min_tier="heavy", model="grok-4.5-heavy")


async def test_undetected_tier_is_tried_last_and_flagged(pool: TokenPool) -> None:
    known, unknown = await add_accounts(pool, 2)
    await set_tier(pool, known, "super")
    first = await pool.lease(mode="auto", min_tier="super")
    second = await pool.lease(mode="auto", min_tier="super")
    assert (first.account_id, first.needs_refresh) == (known, False)
    assert (second.account_id, second.needs_refresh) == (unknown, True)


async def test_expired_lease_frees_its_slot_by_itself(make_pool, clock: Clock) -> None:
    pool: TokenPool = make_pool(lease_ttl=30)
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    dead = await pool.lease(mode="fast", min_tier="basic", cost=2)  # this instance then dies
    with pytest.raises(NoAccountAvailable, match="busy"):
        await pool.lease(mode="fast", min_tier="basic")
    assert await pool.lease_count(account) == 1
    clock.advance(31)
    assert await pool.lease_count(account) == 0
    fresh = await pool.lease(mode="fast", min_tier="basic")
    assert fresh.account_id == account
    assert fresh.remaining == 7  # the dead lease's 2 units stay spent: upstream may have charged them
    await pool.settle(dead, Outcome.success(charged=0))  # a late settle neither refunds nor frees a slot
    assert await pool.lease_count(account) == 1
    got = await pool.get(account)
    assert got and got.quota["fast"].remaining == 7


async def test_per_account_concurrency_override(pool: TokenPool) -> None:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account)
    await pool.set_concurrency(account, 3)
    leases = [await pool.lease(mode="fast", min_tier="basic") for _ in range(3)]
    assert {lease.account_id for lease in leases} == {account}
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(leases[0], Outcome.success())
    assert (await pool.lease(mode="fast", min_tier="basic")).account_id == account


async def test_exclude_skips_accounts_already_tried(pool: TokenPool) -> None:
    a, b = await add_accounts(pool, 2)
    lease = await pool.lease(mode="fast", min_tier="basic", exclude=[a])
    assert lease.account_id == b
    await pool.settle(lease, Outcome.cancelled())
    with pytest.raises(NoAccountAvailable, match="already tried") as exc:
        await pool.lease(mode="fast", min_tier="basic", exclude=[a, b], model="grok-4.5-fast")
    assert exc.value.retry_after is None


async def test_no_account_messages(pool: TokenPool, clock: Clock) -> None:
    with pytest.raises(NoAccountAvailable, match="pool is empty"):
        await pool.lease(mode="fast", min_tier="basic")

    accounts = await add_accounts(pool, 3)
    for _ in accounts:
        lease = await pool.lease(mode="expert", min_tier="super")
        await pool.settle(lease, Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "Too many requests")))
    with pytest.raises(NoAccountAvailable) as exc:
        await pool.lease(mode="expert", min_tier="super", model="grok-4.5-expert")
    assert exc.value.message == (
        "all 3 accounts able to serve `grok-4.5-expert` are cooling until 08:01:00Z (rate limited)"
    )
    assert exc.value.retry_after == 60.0
    assert exc.value.status == 429

    await pool.set_enabled(accounts[:2], False)
    await pool.set_enabled([accounts[2]], True)
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic"),
        Outcome.failed(UpstreamError(FailureKind.BLOCKED, "User is blocked")),
    )
    with pytest.raises(
        NoAccountAvailable, match=r"all 3 accounts are disabled or invalid \(1 invalid, 2 disabled\)"
    ):
        await pool.lease(mode="fast", min_tier="basic")


async def test_undecryptable_token_releases_the_lease(make_pool, store) -> None:
    writer: TokenPool = make_pool(store, encryption_key="old key")
    (account,) = await add_accounts(writer, 1)
    await set_quota(writer, account, "fast", 10, 10)
    reader: TokenPool = make_pool(store, encryption_key="new key")
    from core.pool import TokenDecryptError

    with pytest.raises(TokenDecryptError, match="cannot be decrypted"):
        await reader.lease(mode="fast", min_tier="basic")
    assert await reader.lease_count(account) == 0
    got = await reader.get(account)
    assert got and got.quota["fast"].remaining == 10


async def test_a_quota_refresh_has_the_account_to_itself(make_pool, clock) -> None:
    """Refreshed windows are stored as the truth at settle, so no other request may be in flight beside the
    refreshing one — otherwise two refreshes reading the same N would both store N - 1 (a lost charge)."""
    pool = make_pool(quota_stale_after=10.0)  # stale well before a lease expires (LEASE_TTL 30 s)
    (account,) = await add_accounts(pool, 1)
    await pool.set_concurrency(account, 2)
    refreshing = await pool.lease(mode="fast", min_tier="basic")
    assert refreshing.needs_refresh
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="fast", min_tier="basic")  # quota unknown and being refreshed: busy
    fresh = {"fast": QuotaWindow(9, 10, 86400)}
    await pool.settle(refreshing, Outcome.success(quota=fresh))
    first = await pool.lease(mode="fast", min_tier="basic")
    second = await pool.lease(mode="fast", min_tier="basic")
    assert not first.needs_refresh and not second.needs_refresh  # known quota: shared up to the cap
    await pool.settle(first, Outcome.success())

    clock.advance(pool.settings.quota_stale_after + 1)  # the quota is stale now, `second` still in flight
    beside = await pool.lease(mode="fast", min_tier="basic")
    assert not beside.needs_refresh  # busy account: no refresh, the known quota is reserved as usual
    await pool.settle(second, Outcome.success())
    await pool.settle(beside, Outcome.success())
    idle = await pool.lease(mode="fast", min_tier="basic")
    assert idle.needs_refresh  # idle again: this request refreshes it, and has it to itself meanwhile
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(idle, Outcome.cancelled())
