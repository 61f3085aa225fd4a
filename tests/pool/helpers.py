"""Small helpers shared by the pool tests."""

from __future__ import annotations

from core.pool import QuotaWindow, TokenPool
from tests.pool.conftest import fake_token

# windows whose totals prove each tier (§6.1)
TIER_WINDOWS = {
    "basic": {"auto": QuotaWindow(20, 20, 86400), "fast": QuotaWindow(30, 30, 86400)},
    "super": {"auto": QuotaWindow(50, 50, 7200), "fast": QuotaWindow(140, 140, 7200)},
    "heavy": {"auto": QuotaWindow(150, 150, 7200), "fast": QuotaWindow(400, 400, 7200)},
}


async def add_accounts(pool: TokenPool, count: int, *, start: int = 0, **kwargs: object) -> list[str]:
    report = await pool.add([fake_token(start + i) for i in range(count)], **kwargs)  # type: ignore[arg-type]
    assert len(report.added) == count, report
    return [entry.account_id for entry in report.added if entry.account_id]


async def set_quota(
    pool: TokenPool,
    account: str,
    mode: str = "fast",
    remaining: int = 10,
    total: int = 10,
    window: int = 86400,
) -> None:
    assert await pool.update_quota(account, {mode: QuotaWindow(remaining, total, window)})


async def set_tier(pool: TokenPool, account: str, tier: str) -> None:
    assert await pool.update_quota(account, TIER_WINDOWS[tier])
