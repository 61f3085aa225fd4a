"""Admin media routes for the console (docs/admin-api.md, "Media"): list what the media store keeps, delete one
item (object and record together), run the cron's cleanup once.

``GET /admin/media`` is one store command a page (``MediaRecords.page``: index walk, records and totals in one
script); totals are of the whole store, or of one kind with ``kind``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from api._deps import admin_auth, gateway
from api._media import public_base
from core.cron import media_cleanup
from core.errors import InvalidRequest, NotFound
from core.gateway import Gateway
from core.media import MediaItem, is_media_id

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_auth)], tags=["admin"])
MAX_LIMIT = 100


def _entry(gw: Gateway, item: MediaItem, base: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": item.id, "kind": item.kind, "mime": item.mime, "bytes": item.size, "created_at": item.created,
        "account": item.account_id, "source": item.source, "prompt": item.prompt,
        "url": gw.media.url(item, base_url=base),
    }
    if item.poster:
        entry["poster_url"] = f"{base}/media/{item.poster}"
    return entry


@router.get("/media")
async def list_media(
    request: Request,
    gw: Gateway = Depends(gateway),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page; omitted = first page"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    kind: Literal["image", "video"] | None = None,
) -> dict[str, Any]:
    """Newest first. ``count`` and ``bytes`` total what is kept (of ``kind`` when given)."""
    try:
        page = await gw.media.records.page(cursor=cursor or None, limit=limit, kind=kind)
    except ValueError:
        raise InvalidRequest("cursor must be a next_cursor value from a previous page", param="cursor") from None
    base = public_base(request, gw.settings)
    return {"data": [_entry(gw, item, base) for item in page.items], "next_cursor": page.next_cursor,
            "count": page.count, "bytes": page.bytes}


@router.delete("/media/{media_id}")
async def delete_media(media_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    media_id = media_id.partition(".")[0]  # the id as linked (``<id>.mp4``) or bare
    if not is_media_id(media_id) or not await gw.media.delete(media_id):
        raise NotFound(f"no media '{media_id}'", param="id", code="media_not_found")
    return {"id": media_id, "deleted": True}


@router.post("/media/cleanup")
async def cleanup_media(gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    """One run of the cron tick's cleanup (MEDIA_RETENTION_DAYS, MEDIA_TOTAL_BYTES), bounded like a tick."""
    return await media_cleanup(gw, budget=10.0)
