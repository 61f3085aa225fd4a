"""Periodic work, run from cron entry points (Vercel Cron, EventBridge, Render cron) — never in the background.

One invocation does a bounded slice: the quota refresh job resumes where the previous invocation stopped, so a
large pool is covered over several ticks, and each tick fits the platform's time limit.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from core.gateway import Gateway
from core.pool.refresh import QuotaRefresher
from core.quota_sync import fetch_all_windows


def refresher(gateway: Gateway) -> QuotaRefresher:
    return QuotaRefresher(
        gateway.pool, lambda account_id, token: fetch_all_windows(gateway.client, account_id, token)
    )


async def run_cron(gateway: Gateway, *, budget: float = 20.0) -> dict[str, Any]:
    """Run one slice of the periodic work within ``budget`` seconds; report what was done."""
    progress = await refresher(gateway).run(budget=budget)
    return {"quota_refresh": asdict(progress)}
