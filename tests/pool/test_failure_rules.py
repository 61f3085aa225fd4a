"""Every failure rule as a state transition, driven through lease + settle on a real redis-server."""

from __future__ import annotations

import pytest

from core.errors import FailureKind, NoAccountAvailable, UpstreamError
from core.pool import Account, Outcome, QuotaWindow, TokenPool
from tests.pool.conftest import Clock
from tests.pool.helpers import add_accounts, set_quota


async def fail(
    pool: TokenPool, kind: FailureKind, message: str = "boom", mode: str = "fast", **kw: object
) -> None:
    lease = await pool.lease(mode=mode, min_tier="basic")
    await pool.settle(lease, Outcome.failed(UpstreamError(kind, message, **kw), "grok-4.5-fast"))  # type: ignore[arg-type]


async def succeed(pool: TokenPool, mode: str = "fast") -> None:
    await pool.settle(await pool.lease(mode=mode, min_tier="basic"), Outcome.success("grok-4.5-fast"))


async def state(pool: TokenPool, account: str) -> Account:
    got = await pool.get(account)
    assert got is not None
    return got


@pytest.fixture
async def account(pool: TokenPool) -> str:
    (account,) = await add_accounts(pool, 1)
    await set_quota(pool, account, "fast", 10, 10)
    await set_quota(pool, account, "auto", 10, 10)
    return account


async def test_429_with_quota_left_cools_briefly(pool: TokenPool, account: str, clock: Clock) -> None:
    await fail(pool, FailureKind.RATE_LIMITED, "Too many requests")
    got = await state(pool, account)
    assert got.status.state == "cooling" and got.status.until == clock.now + 60
    assert got.status.reason == "rate limited: Too many requests"
    with pytest.raises(NoAccountAvailable):
        await pool.lease(mode="auto", min_tier="basic")  # the whole account rests
    clock.advance(60.5)
    assert (await state(pool, account)).status.state == "active"
    lease = await pool.lease(mode="fast", min_tier="basic")  # revived by the lease script itself
    assert lease.account_id == account


async def test_429_honours_retry_after(pool: TokenPool, account: str, clock: Clock) -> None:
    await fail(pool, FailureKind.RATE_LIMITED, "Grok is under heavy usage right now", retry_after=17)
    assert (await state(pool, account)).status.until == clock.now + 17


async def test_429_quota_exhausted_skips_the_mode_until_reset(
    pool: TokenPool, account: str, clock: Clock
) -> None:
    await fail(pool, FailureKind.RATE_LIMITED, "usage limit", quota_exhausted=True)
    got = await state(pool, account)
    assert got.status.state == "active"  # other modes keep working
    assert got.quota["fast"].remaining == 0 and got.quota["fast"].resets_at == clock.now + 3600
    assert (await pool.lease(mode="auto", min_tier="basic")).account_id == account
    with pytest.raises(NoAccountAvailable, match="out of fast quota until 09:00:00Z") as exc:
        await pool.lease(mode="fast", min_tier="basic")
    assert exc.value.retry_after == 3600


async def test_429_when_remaining_hits_zero_is_exhaustion(
    pool: TokenPool, account: str, clock: Clock
) -> None:
    await set_quota(pool, account, "fast", 1, 30)
    await fail(pool, FailureKind.RATE_LIMITED, "Too many requests", retry_after=600)
    got = await state(pool, account)
    assert got.status.state == "active"
    assert got.quota["fast"].remaining == 0 and got.quota["fast"].resets_at == clock.now + 600


async def test_exhausted_mode_comes_back_when_the_window_resets(
    pool: TokenPool, account: str, clock: Clock
) -> None:
    await fail(pool, FailureKind.RATE_LIMITED, "usage limit", quota_exhausted=True, retry_after=120)
    clock.advance(121)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.account_id == account and lease.needs_refresh
    assert lease.remaining == 9  # assumed full again (total 10), one reserved; flagged for refresh


async def test_known_reset_time_is_used_without_retry_after(
    pool: TokenPool, account: str, clock: Clock
) -> None:
    resets = clock.now + 900
    await pool.update_quota(account, {}, {"video": QuotaWindow(1, None, 86400, resets)})
    await set_quota(pool, account, "video", 1, 1)
    await fail(pool, FailureKind.RATE_LIMITED, "limit", mode="video", quota_exhausted=True)
    got = await state(pool, account)
    assert got.media["video"].resets_at == clock.now + 3600  # reset cleared when quota was > 0: fallback
    await pool.update_quota(account, {}, {"video": QuotaWindow(0, 1, 86400, resets)})
    await pool.record_failure(
        account, UpstreamError(FailureKind.RATE_LIMITED, "limit", quota_exhausted=True), mode="video"
    )
    assert (await state(pool, account)).media["video"].resets_at == resets


async def test_refreshed_quota_revives_an_exhausted_mode(pool: TokenPool, account: str) -> None:
    await fail(pool, FailureKind.RATE_LIMITED, "usage limit", quota_exhausted=True)
    assert await pool.update_quota(account, {"fast": QuotaWindow(25, 30, 86400)})
    got = await state(pool, account)
    assert got.quota["fast"].remaining == 25 and got.quota["fast"].resets_at is None
    assert (await pool.lease(mode="fast", min_tier="basic")).remaining == 24


async def test_401_strikes_then_invalid(pool: TokenPool, account: str) -> None:
    await fail(pool, FailureKind.UNAUTHORIZED, "not logged in")
    await fail(pool, FailureKind.UNAUTHORIZED, "not logged in")
    got = await state(pool, account)
    assert (got.strikes, got.status.state) == (2, "active")
    await succeed(pool)  # a success in between clears the strikes
    assert (await state(pool, account)).strikes == 0
    for _ in range(3):
        await fail(pool, FailureKind.UNAUTHORIZED, "not logged in")
    got = await state(pool, account)
    assert got.status.state == "invalid" and got.strikes == 3
    assert got.status.reason == "session rejected (401): not logged in"
    with pytest.raises(NoAccountAvailable, match="1 invalid"):
        await pool.lease(mode="fast", min_tier="basic")


async def test_blocked_account_is_invalid_at_once(pool: TokenPool, account: str) -> None:
    await fail(pool, FailureKind.BLOCKED, "User is blocked [WKE=unauthorized:blocked-user]")
    got = await state(pool, account)
    assert got.status.state == "invalid"
    assert got.status.reason == "account blocked (403): User is blocked [WKE=unauthorized:blocked-user]"


async def test_strike_limits_come_from_settings(make_pool) -> None:
    pool: TokenPool = make_pool(invalid_after_unauthorized=1, invalid_after_blocked=2)
    a, b = await add_accounts(pool, 2)
    await pool.record_failure(a, UpstreamError(FailureKind.UNAUTHORIZED, "401"))
    await pool.record_failure(b, UpstreamError(FailureKind.BLOCKED, "blocked"))
    assert (await state(pool, a)).status.state == "invalid"
    assert (await state(pool, b)).status.state == "active"


@pytest.mark.parametrize("kind", [FailureKind.CLOUDFLARE, FailureKind.ANTI_BOT])
async def test_egress_failures_leave_the_account_alone(
    pool: TokenPool, account: str, kind: FailureKind
) -> None:
    before = await state(pool, account)
    await fail(pool, kind, "Request rejected by anti-bot rules.")
    after = await state(pool, account)
    assert after.status == before.status
    assert (after.strikes, after.failures, after.requests, after.last_error) == (0, 0, 0, "")
    assert after.quota["fast"].remaining == 10  # rejected before it counted: refunded
    egress = await pool.egress()
    assert getattr(egress, kind.value) == 1 and egress.last_kind == kind.value
    assert egress.last_message == "Request rejected by anti-bot rules."
    assert (await pool.summary()).egress == egress


@pytest.mark.parametrize(
    "kind", [FailureKind.SERVER, FailureKind.NETWORK, FailureKind.TIMEOUT, FailureKind.STREAM]
)
async def test_transient_failures_back_off_exponentially(make_pool, clock: Clock, kind: FailureKind) -> None:
    pool: TokenPool = make_pool(failure_backoff_base=5, failure_backoff_max=30)
    (account,) = await add_accounts(pool, 1)
    delays = []
    for _ in range(5):
        await fail(pool, kind, "upstream 502")
        got = await state(pool, account)
        assert got.status.state == "cooling" and got.status.reason.startswith(f"backoff: {kind.value}:")
        assert got.status.until is not None
        delays.append(got.status.until - clock.now)
        clock.advance(delays[-1])
    assert delays == [5, 10, 20, 30, 30]
    await succeed(pool)
    got = await state(pool, account)
    assert (got.consecutive_failures, got.status.state) == (0, "active")
    await fail(pool, kind, "again")
    assert (await state(pool, account)).status.until == clock.now + 5  # the backoff starts over


async def test_success_ends_a_backoff_cooldown_early(pool: TokenPool, account: str, clock: Clock) -> None:
    await set_quota(pool, account)  # a known quota: an account is only shared once it is not being refreshed
    lease = await pool.lease(mode="fast", min_tier="basic")
    await pool.set_concurrency(account, 2)
    other = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(lease, Outcome.failed(UpstreamError(FailureKind.SERVER, "503")))
    assert (await state(pool, account)).status.state == "cooling"
    await pool.settle(other, Outcome.success())  # a request in flight on the same account succeeded
    assert (await state(pool, account)).status.state == "active"


async def test_a_longer_cooldown_is_not_shortened(pool: TokenPool, account: str, clock: Clock) -> None:
    await set_quota(pool, account)
    await pool.set_concurrency(account, 2)
    first = await pool.lease(mode="fast", min_tier="basic")
    second = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(
        first, Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "slow down", retry_after=300))
    )
    await pool.settle(second, Outcome.failed(UpstreamError(FailureKind.SERVER, "502")))
    assert (await state(pool, account)).status.until == clock.now + 300


async def test_bad_request_is_not_the_accounts_fault(pool: TokenPool, account: str) -> None:
    await fail(pool, FailureKind.BAD_REQUEST, "Invalid source post id")
    got = await state(pool, account)
    assert (got.status.state, got.strikes, got.consecutive_failures) == ("active", 0, 0)
    assert got.failures == 1 and got.last_error == "bad_request: Invalid source post id"


async def test_failure_messages_never_carry_the_token(pool: TokenPool, account: str) -> None:
    lease = await pool.lease(mode="fast", min_tier="basic")
    message = f"403 for cookie sso={lease.token}; sso-rw={lease.token}"
    await pool.settle(lease, Outcome.failed(UpstreamError(FailureKind.BAD_REQUEST, message)))
    got = await state(pool, account)
    assert lease.token not in got.last_error and "…" in got.last_error


async def test_usage_counters(pool: TokenPool, account: str) -> None:
    lease = await pool.lease(mode="fast", min_tier="basic")
    await pool.settle(
        lease, Outcome.success("grok-4.5-fast", prompt_tokens=10, completion_tokens=20, latency_ms=300)
    )
    await fail(pool, FailureKind.SERVER, "502")
    usage = await pool.usage()
    assert usage["models"]["grok-4.5-fast"] == {"req": 2, "ok": 1, "fail": 1, "pt": 10, "ct": 20, "ms": 300}
    assert usage["accounts"][account]["req"] == 2


async def test_429_with_quota_left_marks_our_number_stale(pool: TokenPool, account: str, clock: Clock) -> None:
    """A 429 while we believed quota was left means our number may be wrong: the next lease refreshes it."""
    await set_quota(pool, account, "fast", remaining=7, total=30)
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic"),
        Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "Too many requests"), "grok-4.5-fast"),
    )
    clock.advance(61)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.needs_refresh
