"""Admin API over the request ledger: the log, charts, pool history and the dashboard's one-call summary
(docs/admin-api.md). Every page or chart is one store command; the summary a handful."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from api._deps import admin_auth, gateway
from core.errors import GatewayError, InvalidRequest, NotFound
from core.gateway import Gateway
from core.ledger.reader import LedgerReader, LogFilter, pool_point

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_auth)], tags=["admin"])
MAX_TIME = 4102444800.0  # 2100-01-01: log filters beyond it are a 400, not an overflow
_ENTRY_ID = re.compile(r"^[0-9]{1,15}-[0-9]{1,15}$")
log = logging.getLogger("grok2api")


@router.get("/logs")
async def logs(
    since: float | None = Query(None, ge=0, le=MAX_TIME, description="epoch seconds"),
    until: float | None = Query(None, ge=0, le=MAX_TIME, description="epoch seconds"),
    key: str = Query("", max_length=100), model: str = Query("", max_length=200),
    status: str = Query("", max_length=5, pattern=r"^(|ok|error|[1-5]xx|[1-5][0-9][0-9])$"),
    account: str = Query("", max_length=100), route: str = Query("", max_length=200),
    cursor: str | None = Query(None, max_length=32, pattern=r"^[0-9]{1,15}-[0-9]{1,15}$"),
    limit: int = Query(50, ge=1, le=500),
    gw: Gateway = Depends(gateway),
) -> dict[str, Any]:
    flt = LogFilter(since=since, until=until, key=key, model=model, status=status, account=account, route=route)
    entries, next_cursor = await LedgerReader(gw.ledger).logs(flt, cursor=cursor or "", limit=limit)
    return {"data": entries, "next_cursor": next_cursor}


@router.get("/logs/{entry_id}")
async def log_entry(entry_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    if not _ENTRY_ID.match(entry_id):
        raise InvalidRequest("a log entry id looks like `1764633600000-0`", param="entry_id")
    entry = await LedgerReader(gw.ledger).log_entry(entry_id)
    if entry is None:
        raise NotFound(f"no log entry {entry_id!r} (it may have been trimmed)", param="entry_id")
    return entry


@router.get("/stats")
async def stats(range: Literal["24h", "30d"] = "24h", gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return await LedgerReader(gw.ledger).stats(range)


@router.get("/pool/history")
async def pool_history(range: Literal["24h", "30d"] = "24h", gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"range": range, "points": await LedgerReader(gw.ledger).pool_history(range)}


@router.get("/summary")
async def summary(gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The dashboard in one round trip: pool, today's totals, the last 24 hours, keys and media counts. Takes a
    pool-history snapshot when the last one is older than five minutes."""
    reader = LedgerReader(gw.ledger)
    pool = await gw.pool.summary()
    try:
        await reader.snapshot(pool_point(pool))
    except GatewayError as exc:
        log.warning("pool snapshot: %s", exc.message)
    last_24h = await reader.stats("24h")
    total, enabled = await gw.keys.count()
    media = await _media_totals(gw)
    return {"pool": asdict(pool), "today": await reader.today(), "last_24h": last_24h,
            "keys": {"total": total, "enabled": enabled}, "media": media}


async def _media_totals(gw: Gateway) -> dict[str, int] | None:
    totals = getattr(gw.media, "totals", None)
    if totals is None:
        return None
    try:
        count, size = await totals()
    except GatewayError:
        return None
    return {"count": count, "bytes": size}
