"""Periodic work, run from cron entry points (Vercel Cron, EventBridge, Render cron) — never in the background.

One invocation does a bounded slice: the quota refresh job resumes where the previous invocation stopped, so a
large pool is covered over several ticks, and each tick fits the platform's time limit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from core.errors import GatewayError
from core.gateway import Gateway
from core.ledger.reader import LedgerReader, pool_point
from core.media.cleanup import cleanup
from core.pool.refresh import QuotaRefresher
from core.quota_sync import fetch_all_windows


def refresher(gateway: Gateway) -> QuotaRefresher:
    return QuotaRefresher(
        gateway.pool, lambda account_id, token: fetch_all_windows(gateway.client, account_id, token)
    )


async def run_cron(gateway: Gateway, *, budget: float = 20.0) -> dict[str, Any]:
    """Run one slice of the periodic work within ``budget`` seconds; report what was done. Media cleanup goes
    first with at most a quarter of the budget (bounded batches; the rest resumes next tick)."""
    started = time.monotonic()
    media = await media_cleanup(gateway, budget=max(1.0, budget / 4))
    ledger = await ledger_upkeep(gateway)
    progress = await refresher(gateway).run(budget=max(1.0, budget - (time.monotonic() - started)))
    return {"quota_refresh": asdict(progress), "media_cleanup": media, "ledger": ledger}


async def ledger_upkeep(gateway: Gateway) -> dict[str, Any]:
    """Drop log entries past ``LOG_RETENTION_DAYS`` and take a pool-history snapshot (at most one per five
    minutes); never fails the tick."""
    reader = LedgerReader(gateway.ledger)
    try:
        trimmed = await reader.trim()
        snapshot = await reader.snapshot(pool_point(await gateway.pool.summary()))
    except Exception as exc:  # GatewayError, or a store refusal: the rest of the tick must still run
        message = getattr(exc, "message", None) or str(exc)
        logging.getLogger("grok2api").warning("ledger upkeep: %s", message)
        return {"trimmed": 0, "snapshot": False, "error": message}
    return {"trimmed": trimmed, "snapshot": snapshot}


async def media_cleanup(gateway: Gateway, *, budget: float) -> dict[str, Any]:
    """Media past ``MEDIA_RETENTION_DAYS`` or beyond ``MEDIA_TOTAL_BYTES`` (oldest first); never fails the tick."""
    settings = gateway.settings
    try:
        return await cleanup(gateway.media, retention_days=settings.media_retention_days,
                             max_total_bytes=settings.media_total_bytes, budget=budget)
    except GatewayError as exc:
        logging.getLogger("grok2api").warning("media cleanup: %s", exc.message)
        return {"deleted": 0, "freed_bytes": 0, "batches": 0, "done": False, "error": exc.message}
