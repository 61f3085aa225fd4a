"""Stale-account scans and the resumable, time-boxed bulk quota refresh."""

from __future__ import annotations

import asyncio

from core.errors import FailureKind, UpstreamError
from core.pool import QuotaWindow, TokenPool, account_id
from core.pool.refresh import QuotaRefresher
from tests.pool.conftest import Clock
from tests.pool.helpers import TIER_WINDOWS, add_accounts, set_quota


async def test_stale_accounts_scan_is_resumable_and_bounded(pool: TokenPool, clock: Clock) -> None:
    accounts = await add_accounts(pool, 7)
    await set_quota(pool, accounts[1], "fast", 5, 10)  # fresh: not stale
    await pool.set_enabled([accounts[2]], False)  # disabled: never refreshed

    seen, cursor, calls = [], 0, 0
    while True:
        ids, cursor = await pool.stale_accounts(limit=2, cursor=cursor)
        seen += ids
        calls += 1
        if cursor == 0:
            break
    assert seen == [accounts[0], *accounts[3:]]
    assert calls == 3

    ids, cursor = await pool.stale_accounts(limit=10, scan=2)  # looks at no more than 2 accounts
    assert ids == [accounts[0]] and cursor != 0

    clock.advance(pool.settings.quota_stale_after)
    ids, _ = await pool.stale_accounts(limit=10)
    assert accounts[1] in ids  # refreshed too long ago


def fake_upstream(calls: list[str], *, delay: float = 0.0, fail: dict[str, UpstreamError] | None = None):
    async def fetch(account: str, token: str):
        assert account_id(token) == account  # the refresher hands over the decrypted token
        calls.append(account)
        if delay:
            await asyncio.sleep(delay)
        if fail and account in fail:
            raise fail[account]
        return TIER_WINDOWS["super"], {"image_pro": QuotaWindow(2, None, 86400)}

    return fetch


async def test_refresh_job_updates_every_stale_account(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 5)
    calls: list[str] = []
    broken = accounts[3]
    refresher = QuotaRefresher(
        pool,
        fake_upstream(calls, fail={broken: UpstreamError(FailureKind.UNAUTHORIZED, "not logged in")}),
        batch=2,
    )
    progress = await refresher.run(budget=10)
    assert progress.finished and progress.total == 5
    assert (progress.done, progress.errors) == (4, 1)
    assert progress.last_error == f"{broken}: unauthorized: not logged in"
    assert sorted(calls) == sorted(accounts)
    for account in await pool.list():
        if account.id == broken:
            assert account.strikes == 1 and account.tier == "unknown"  # the failure rule applied
        else:
            assert account.tier == "super" and account.quota["fast"].remaining == 140
            assert account.media["image_pro"].remaining == 2
    assert await refresher.progress(progress.job_id) == progress

    again = await refresher.run(budget=10)  # the finished job is not reused: a new one finds only `broken`
    assert again.job_id != progress.job_id and again.total == 1


async def test_refresh_stops_at_its_budget_and_the_next_run_resumes(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 10)
    calls: list[str] = []
    refresher = QuotaRefresher(pool, fake_upstream(calls, delay=0.05), concurrency=2, batch=4)
    first = await refresher.run(budget=0.12)
    assert first.status == "running" and 0 < first.done < 10

    second = await refresher.run(budget=10)  # next invocation: same job, carries on
    assert second.job_id == first.job_id and second.finished
    assert second.done == 10 and second.errors == 0
    assert set(calls) == set(accounts)
    assert all(a.quota_refreshed_at is not None for a in await pool.list())


async def test_explicit_job_and_a_second_invocation_does_not_double_up(pool: TokenPool) -> None:
    accounts = await add_accounts(pool, 4)
    await set_quota(pool, accounts[0], "fast", 1, 30)  # fresh, but asked for explicitly
    calls: list[str] = []
    refresher = QuotaRefresher(pool, fake_upstream(calls, delay=0.05), batch=10)
    job = await refresher.start(accounts[:2])
    assert job.total == 2 and job.status == "running"
    first, second = await asyncio.gather(
        refresher.run(job.job_id, budget=5), refresher.run(job.job_id, budget=5)
    )
    assert sorted(calls) == sorted(accounts[:2])  # only one of the two invocations did the work
    finished = await refresher.progress(job.job_id)
    assert finished and finished.finished and finished.done == 2
    assert {first.status, second.status} <= {"running", "done"}
