"""Admin API for store-managed client API keys (docs/admin-api.md, "API keys"). The secret leaves only in the
answers to create and rotate."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from api._admin_ledger import MAX_TIME
from api._deps import admin_auth, gateway
from core.apikeys import SCOPES, ApiKey, KeyQuota, KeySpec
from core.errors import InvalidRequest, NotFound
from core.gateway import Gateway

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_auth)], tags=["admin"])


class QuotaBody(BaseModel):
    kind: Literal["requests", "tokens"]
    limit: int = Field(ge=1, le=10**12)
    period: Literal["day", "week", "month", "total"]


class KeyBody(BaseModel):
    """Create: ``name`` required. Edit: only the fields given change (null clears a limit)."""

    model_config = {"extra": "forbid"}

    name: str | None = Field(None, min_length=1, max_length=100)
    note: str | None = Field(None, max_length=500)
    enabled: bool | None = None
    expires_at: float | None = Field(None, ge=0, le=MAX_TIME, description="epoch seconds; null = never")
    models: list[str] | None = Field(None, max_length=200, description="allowed models ([] = all; `*` globs)")
    scopes: list[Literal["chat", "images", "video"]] | None = Field(None, min_length=1)
    rpm: int | None = Field(None, ge=0, le=10**7, description="requests per minute (null/0 = unlimited)")
    rpd: int | None = Field(None, ge=0, le=10**9, description="requests per day (null/0 = unlimited)")
    concurrency: int | None = Field(None, ge=0, le=10**4, description="requests in flight (null/0 = unlimited)")
    quota: QuotaBody | None = None

    @field_validator("models")
    @classmethod
    def _clean_models(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [m.strip() for m in value if m.strip()]
        if any("\n" in m or len(m) > 200 or m.count("*") > 2 for m in cleaned):
            raise ValueError("a model pattern is one line of at most 200 characters with at most two `*`")
        return cleaned


def _apply(spec: KeySpec, body: KeyBody) -> KeySpec:
    given = body.model_fields_set
    for name in ("name", "note", "enabled", "expires_at", "rpm", "rpd", "concurrency"):
        if name in given:
            value = getattr(body, name)
            if name in ("name", "enabled") and value is None:
                raise InvalidRequest(f"`{name}` cannot be null", param=name)
            if name in ("rpm", "rpd", "concurrency") and value == 0:
                value = None
            setattr(spec, name, value if value is not None or name not in ("note",) else "")
    if "models" in given:
        spec.models = tuple(body.models or ())
    if "scopes" in given:
        spec.scopes = tuple(body.scopes or SCOPES)
    if "quota" in given:
        q = body.quota
        spec.quota = None if q is None else KeyQuota(q.kind, q.limit, q.period)
    return spec


_KEY_ID = re.compile(r"^[0-9a-f]{12}$")


def _check_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise NotFound(f"no API key with id {key_id[:40]!r}", param="key_id")
    return key_id


async def _key_or_404(gw: Gateway, key_id: str) -> ApiKey:
    key = await gw.keys.get(_check_id(key_id))
    if key is None:
        raise NotFound(f"no API key with id {key_id!r}", param="key_id")
    return key


@router.post("/keys", status_code=201)
async def create_key(body: KeyBody, gw: Gateway = Depends(gateway)) -> JSONResponse:
    if not body.name:
        raise InvalidRequest("`name` is required", param="name")
    if body.expires_at is not None and body.expires_at <= time.time():
        raise InvalidRequest("`expires_at` is in the past", param="expires_at")
    key, secret = await gw.keys.create(_apply(KeySpec(name=body.name), body))
    return JSONResponse({"key": key.public(), "secret": secret}, status_code=201)


@router.get("/keys")
async def list_keys(
    cursor: str | None = Query(None, max_length=10, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=500),
    q: str = Query("", max_length=100, description="name contains (case-insensitive)"),
    gw: Gateway = Depends(gateway),
) -> dict[str, Any]:
    offset = int(cursor) if cursor and cursor.isdecimal() else 0
    keys, next_offset, total = await gw.keys.page(offset=offset, limit=limit, name=q)
    return {"data": [k.public() for k in keys], "next_cursor": str(next_offset) if next_offset else None,
            "total": total}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return (await _key_or_404(gw, key_id)).public()


@router.patch("/keys/{key_id}")
async def edit_key(key_id: str, body: KeyBody, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    key = await _key_or_404(gw, key_id)
    spec = _apply(key.spec, body)
    if not await gw.keys.update(key_id, spec):
        raise NotFound(f"no API key with id {key_id!r}", param="key_id")
    return (await _key_or_404(gw, key_id)).public()


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    secret = await gw.keys.rotate(_check_id(key_id))
    if secret is None:
        raise NotFound(f"no API key with id {key_id!r}", param="key_id")
    return {"key": (await _key_or_404(gw, key_id)).public(), "secret": secret}


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    if not await gw.keys.delete(_check_id(key_id)):
        raise NotFound(f"no API key with id {key_id!r}", param="key_id")
    return {"id": key_id, "deleted": True}
