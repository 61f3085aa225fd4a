"""The lease lifecycle: short leases that renew, orphans that expire and are counted, an instance reclaiming its
previous run's leases, waiting for a busy slot, the stale-and-empty probe, and old data being indexed lazily."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import FailureKind, NoAccountAvailable, UpstreamError
from core.pool import Outcome, QuotaWindow, TokenPool
from tests.pool.conftest import Clock, fake_token
from tests.pool.helpers import add_accounts, set_quota


async def _account_usage(pool: TokenPool, account: str) -> dict[str, float]:
    return (await pool.usage())["accounts"].get(account, {})


# -- renew ----------------------------------------------------------------------------------------------------


async def test_renew_keeps_a_long_lease_alive(make_pool, clock: Clock) -> None:
    pool: TokenPool = make_pool(lease_ttl=30)
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.expires_at == clock.now + 30 and lease.renew_at == clock.now + 15
    assert await pool.renew(lease)  # the script's first run on this server costs an extra EVAL

    for _ in range(4):  # two minutes of streaming, renewed every 20 s
        clock.advance(20)
        before = pool.store.commands_sent
        assert await pool.renew(lease)
        assert pool.store.commands_sent == before + 1
        assert lease.expires_at == clock.now + 30 and lease.renew_at == clock.now + 15
        with pytest.raises(NoAccountAvailable, match="busy"):
            await pool.lease(mode="fast", min_tier="basic")
    assert await pool.lease_count(account) == 1

    clock.advance(31)  # the stream stopped renewing (its instance died): the lease goes
    assert not await pool.renew(lease)
    again = await pool.lease(mode="fast", min_tier="basic")
    assert again.account_id == account
    assert not await pool.renew(lease)  # dropped for good: never resurrected


# -- orphans --------------------------------------------------------------------------------------------------


async def test_an_expired_lease_is_dropped_counted_and_keeps_its_quota(make_pool, clock: Clock) -> None:
    pool: TokenPool = make_pool(lease_ttl=30)
    a, b = await add_accounts(pool, 2)
    await set_quota(pool, a, "fast", 10, 10)
    await set_quota(pool, b, "fast", 5, 10)
    dead = await pool.lease(mode="fast", min_tier="basic", cost=2, model="grok-4.5-fast")  # on a: most left
    assert dead.account_id == a
    clock.advance(31)
    lease = await pool.lease(mode="fast", min_tier="basic")  # this lease's script drops the orphan first
    assert lease.account_id == a and lease.remaining == 7  # the orphan's 2 units stay spent
    usage = await pool.usage()
    assert usage["accounts"][a] == {"req": 1, "fail": 1, "lost": 1}
    assert usage["models"]["grok-4.5-fast"]["lost"] == 1
    got = await pool.get(a)
    assert got and got.requests == 1 and got.in_flight == 1
    await pool.settle(dead, Outcome.success("grok-4.5-fast"))  # far too late: counts nothing twice
    assert (await pool.usage())["accounts"][a]["req"] == 1
    assert (await pool.get(a)).requests == 1  # type: ignore[union-attr]
    assert await pool.lease_count(a) == 1


async def test_reclaim_frees_the_previous_runs_leases_at_once(make_pool, store, clock: Clock) -> None:
    first_run: TokenPool = make_pool(store, instance_id="gw-1", lease_ttl=30)
    other: TokenPool = make_pool(store, instance_id="gw-2", lease_ttl=30)
    accounts = await add_accounts(first_run, 4)
    for account in accounts:
        await set_quota(first_run, account, "fast", 10, 10)
    mine = [await first_run.lease(mode="fast", min_tier="basic") for _ in range(3)]
    theirs = await other.lease(mode="fast", min_tier="basic")
    assert all(lease.lease_id.startswith("gw-1/") for lease in mine)
    with pytest.raises(NoAccountAvailable, match="busy"):
        await other.lease(mode="fast", min_tier="basic")

    # gw-1 is killed and starts again: its new run frees what the old one held, before any TTL passes
    second_run: TokenPool = make_pool(store, instance_id="gw-1", lease_ttl=30)
    before = second_run.store.commands_sent
    assert await second_run.reclaim_instance() == 3
    assert second_run.store.commands_sent - before <= 2  # one EVALSHA (+ one EVAL, the script being new)
    assert await second_run.reclaim_instance() == 0
    leased = {(await second_run.lease(mode="fast", min_tier="basic")).account_id for _ in range(3)}
    assert leased == {lease.account_id for lease in mine}
    assert await other.lease_count(theirs.account_id) == 1  # another instance's lease is not touched
    for lease in mine:
        assert await _account_usage(second_run, lease.account_id) == {"req": 1, "fail": 1, "lost": 1}
        got = await second_run.get(lease.account_id)
        assert got and got.quota["fast"].remaining == 8  # reclaimed reservation kept, plus the new lease
    assert await make_pool(store).reclaim_instance() == 0  # no instance id: nothing to reclaim


# -- waiting for a slot ---------------------------------------------------------------------------------------


async def test_a_request_waits_for_a_busy_slot_and_gets_it(make_pool) -> None:
    pool: TokenPool = make_pool(account_concurrency=1, lease_wait=10)
    waiter: TokenPool = make_pool(account_concurrency=1, lease_wait=10)  # another instance, its own counter
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    await waiter.settle(await waiter.lease(mode="fast", min_tier="basic"), Outcome.cancelled())  # load scripts
    first = await pool.lease(mode="fast", min_tier="basic")

    async def release_later() -> None:
        await asyncio.sleep(0.6)
        await pool.settle(first, Outcome.success())

    before, started = waiter.store.commands_sent, time.monotonic()
    second, _ = await asyncio.gather(waiter.lease(mode="fast", min_tier="basic"), release_later())
    waited, commands = time.monotonic() - started, waiter.store.commands_sent - before
    assert second.account_id == account
    assert 0.5 < waited < 3.0
    # backoff 50 ms doubling (jittered): about 5 polls for 0.6 s, never a busy loop
    assert 2 <= commands <= 8, commands


async def test_waiting_gives_up_after_lease_wait_with_retry_after(make_pool) -> None:
    pool: TokenPool = make_pool(lease_wait=0.4)
    await add_accounts(pool, 1)
    await pool.lease(mode="fast", min_tier="basic")
    started = time.monotonic()
    with pytest.raises(NoAccountAvailable, match="busy") as exc:
        await pool.lease(mode="fast", min_tier="basic")
    assert 0.35 < time.monotonic() - started < 2.0
    assert exc.value.retry_after == 1.0
    started = time.monotonic()
    with pytest.raises(NoAccountAvailable, match="busy"):
        await pool.lease(mode="fast", min_tier="basic", wait=0)  # the per-call override
    assert time.monotonic() - started < 0.3


async def test_cooling_exhausted_and_invalid_accounts_are_not_waited_for(make_pool) -> None:
    pool: TokenPool = make_pool(lease_wait=5)
    cooling, empty, bad = await add_accounts(pool, 3)
    await set_quota(pool, cooling, "fast", 10, 10)
    await set_quota(pool, empty, "fast", 0, 10)
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic", exclude=[empty, bad]),
        Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "slow down")),
    )
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic", exclude=[empty]),
        Outcome.failed(UpstreamError(FailureKind.BLOCKED, "blocked")),
    )
    started = time.monotonic()
    with pytest.raises(NoAccountAvailable) as exc:
        await pool.lease(mode="fast", min_tier="basic")
    assert time.monotonic() - started < 0.5  # nothing to wait for: refused at once
    assert "cooling" in exc.value.message and "out of fast quota" in exc.value.message
    assert "busy" not in exc.value.message


# -- the stale probe (a planted bug once slipped through here) ------------------------------------------------


async def test_a_stale_empty_account_without_reset_time_is_probed(make_pool, clock: Clock) -> None:
    """Fresh and empty: refused. Once the reading is stale and no reset time is known, the account must be leased
    again, flagged for refresh — otherwise an account that was refilled would never be used again."""
    pool: TokenPool = make_pool(quota_stale_after=900)
    (account,) = await add_accounts(pool, 1)
    await pool.update_quota(account, {"fast": QuotaWindow(0, 30, 86400)})  # empty, no reset time
    with pytest.raises(NoAccountAvailable, match="out of fast quota") as exc:
        await pool.lease(mode="fast", min_tier="basic")
    assert exc.value.retry_after == 900  # when the reading turns stale
    clock.advance(901)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.account_id == account and lease.needs_refresh
    assert (lease.reserved, lease.remaining) == (0, 0)
    await pool.settle(lease, Outcome.success(quota={"fast": QuotaWindow(29, 30, 86400)}))
    assert (await pool.lease(mode="fast", min_tier="basic")).remaining == 28  # the refill, minus this one


async def test_stale_probe_among_many_accounts(make_pool, clock: Clock) -> None:
    """Same rule when the index holds many fresh-but-empty accounts: the stale ones come back, in order."""
    pool: TokenPool = make_pool(quota_stale_after=900)
    accounts = await add_accounts(pool, 40)
    for account in accounts[:20]:
        await pool.update_quota(account, {"fast": QuotaWindow(0, 30, 86400)})
    clock.advance(500)
    for account in accounts[20:]:
        await pool.update_quota(account, {"fast": QuotaWindow(0, 30, 86400)})
    with pytest.raises(NoAccountAvailable, match=r"all 40 accounts .* out of fast quota"):
        await pool.lease(mode="fast", min_tier="basic")
    clock.advance(401)  # the first twenty are stale now, the others not
    leased = set()
    for _ in range(20):
        lease = await pool.lease(mode="fast", min_tier="basic")
        assert lease.needs_refresh
        leased.add(lease.account_id)
    assert leased == set(accounts[:20])
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="fast", min_tier="basic")


# -- index: order, old data -----------------------------------------------------------------------------------


async def test_index_order_matches_the_rules(make_pool, clock: Clock) -> None:
    """Fresh quota first (most remaining first), then needs-refresh: unknown quota first, then stale by
    remaining; never one below the tier, never a disabled one."""
    pool: TokenPool = make_pool(quota_stale_after=900)
    ids = await add_accounts(pool, 9)
    unknown, stale_hi, stale_lo, basic, off = ids[:5]
    fresh = ids[5:]
    for account, rem in ((stale_hi, 20), (stale_lo, 3)):
        await pool.update_quota(account, {"auto": QuotaWindow(rem, 50, 7200)})  # super (auto 50), 2 h window
    clock.advance(1000)
    for account, rem in zip(fresh, (5, 40, 12, 7), strict=True):
        await pool.update_quota(account, {"auto": QuotaWindow(rem, 50, 7200)})
    await pool.update_quota(basic, {"auto": QuotaWindow(20, 20, 86400)})  # basic tier: below `super`
    await pool.update_quota(off, {"auto": QuotaWindow(49, 50, 7200)})
    await pool.set_enabled([off], False)
    order = [await pool.lease(mode="auto", min_tier="super") for _ in range(7)]
    assert [lease.account_id for lease in order] == [fresh[1], fresh[2], fresh[3], fresh[0], unknown, stale_hi,
                                                    stale_lo]
    assert [lease.needs_refresh for lease in order] == [False] * 4 + [True] * 3
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="auto", min_tier="super")


async def test_a_pool_written_before_the_index_is_reindexed_on_first_lease(pool: TokenPool, clock: Clock) -> None:
    accounts = await add_accounts(pool, 3)
    await set_quota(pool, accounts[0], "fast", 10, 10)
    held = await pool.lease(mode="fast", min_tier="basic")  # a lease taken "by the old scripts"
    # What the old scripts left: hashes, pool:ids, per-account leases; no index, no pool:leases.
    for key in await pool.store.call("KEYS", pool.keys.pool_prefix + "*"):
        if key not in (pool.keys.ids, pool.keys.seq):
            await pool.store.call("DEL", key)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.account_id in accounts[1:]
    assert await pool.store.call("EXISTS", pool.keys.index_version) == 1
    assert await pool.store.call("ZCARD", pool.keys.all_leases) == 2  # the old lease was carried over
    clock.advance(pool.settings.lease_ttl + 1)
    await pool.lease(mode="fast", min_tier="basic")  # ... so it expires like any other
    assert await _account_usage(pool, held.account_id) == {"req": 1, "fail": 1, "lost": 1}
    assert await pool.reindex() == 3  # a repair run on an indexed pool changes nothing
    assert len({(await pool.lease(mode="fast", min_tier="basic")).account_id for _ in range(1)}) == 1


# -- paging ---------------------------------------------------------------------------------------------------


async def test_listing_is_paged_with_filters_and_totals(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 25, tags=["eu"])
    await pool.set_enabled(accounts[:4], False)
    await pool.set_tags(accounts[7], ["us"])
    seen, cursor, pages = [], 0, 0
    while True:
        page = await pool.page(cursor=cursor, limit=10)
        assert page.total == 25
        seen += [a.id for a in page.accounts]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == accounts and pages == 3
    disabled = await pool.page(status="disabled", limit=3)
    assert [a.id for a in disabled.accounts] == accounts[:3] and disabled.total == 4
    rest = await pool.page(status="disabled", limit=3, cursor=disabled.next_cursor or 0)
    assert [a.id for a in rest.accounts] == accounts[3:4]
    assert (await pool.page(status="active")).total == 21
    assert (await pool.page(tier="unknown")).total == 25
    tagged = await pool.page(tag="us")
    assert [a.id for a in tagged.accounts] == [accounts[7]] and tagged.total is None
    # A search reaches past the first page: the one match is the 23rd account; pages before it come back empty
    # with a cursor (the scan budget is 10 x limit), and the match is found by following them.
    await pool.set_note(accounts[22], "Night-Shift spare")
    found, cursor = [], 0
    for _ in range(30):
        page = await pool.page(cursor=cursor, limit=1, text="night-SHIFT")
        found += [a.id for a in page.accounts]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert found == [accounts[22]] and page.total is None
    assert [a.id for a in (await pool.page(text=accounts[5][-8:])).accounts] == [accounts[5]]
    # Not only ASCII: a note and a tag in Chinese (tags are JSON text with \u escapes in the store), and é
    await pool.set_note(accounts[11], "备用账号 Équipe")
    await pool.set_tags(accounts[12], ["eu", "夜班"])
    assert [a.id for a in (await pool.page(text="备用")).accounts] == [accounts[11]]
    assert [a.id for a in (await pool.page(text="Équipe")).accounts] == [accounts[11]]
    assert [a.id for a in (await pool.page(text="équipe")).accounts] == []  # case folds for ASCII only (Lua)
    assert [a.id for a in (await pool.page(text="夜班")).accounts] == [accounts[12]]
    assert [a.id for a in await pool.list(status="active", tag="eu")] == accounts[4:7] + accounts[8:]
    assert len(await pool.list()) == 25
    await pool.add([fake_token(99)])
    assert (await pool.page()).total == 26


async def test_usage_counters_are_paged(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 120)  # 600 counters: past what Redis keeps in one listpack (HSCAN pages)
    for account in accounts:
        await set_quota(pool, account, "fast", 10, 10)
    for _ in accounts:
        await pool.settle(await pool.lease(mode="fast", min_tier="basic"), Outcome.success("grok-4.5-fast"))
    merged: dict[str, dict[str, float]] = {}
    cursor: int | None = 0
    pages = 0
    while cursor is not None:
        counters, cursor = await pool.usage_page(cursor=cursor, limit=100)
        for account, values in counters["accounts"].items():
            merged.setdefault(account, {}).update(values)
        pages += 1
    assert pages > 1
    assert merged == (await pool.usage())["accounts"]
    assert sorted(merged) == sorted(accounts) and all(v["req"] == 1 for v in merged.values())
