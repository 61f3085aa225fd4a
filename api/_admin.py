"""Admin API for the token pool (Bearer ADMIN_PASSWORD). Tokens only ever leave masked, except ``export``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api._deps import admin_auth, gateway
from core.errors import InvalidRequest, NotFound
from core.gateway import Gateway

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_auth)])


class TokenImport(BaseModel):
    tokens: str | list[Any] = Field(description="Text (one per line, `sso=` prefixes ok) or a JSON list")
    tags: list[str] = []
    note: str = ""


async def _import_body(request: Request) -> TokenImport:
    """Accept JSON (``{"tokens": ...}`` or a bare list) or a pasted/uploaded text body."""
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("no tokens given", param="tokens")
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidRequest("request body is not valid JSON", param="body") from None
        if isinstance(data, list):
            return TokenImport(tokens=data)
        if isinstance(data, dict) and "tokens" in data:
            try:
                return TokenImport.model_validate(data)
            except ValueError as exc:
                raise InvalidRequest(f"invalid token import: {exc}", param="tokens") from None
        raise InvalidRequest("expected {\"tokens\": ...} or a JSON list of tokens", param="tokens")
    return TokenImport(tokens=raw.decode("utf-8", "replace"))


@router.post("/tokens")
async def import_tokens(request: Request, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    body = await _import_body(request)
    report = await gw.pool.add(body.tokens, tags=body.tags, note=body.note)
    return {**report.counts, **asdict(report)}


@router.get("/tokens")
async def list_tokens(
    tier: str | None = None, status: str | None = None, tag: str | None = None, gw: Gateway = Depends(gateway)
) -> dict[str, Any]:
    accounts = await gw.pool.list(tier=tier, status=status, tag=tag)
    return {"object": "list", "data": [asdict(a) for a in accounts]}


@router.get("/tokens/{account_id}")
async def get_token(account_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    account = await gw.pool.get(account_id)
    if account is None:
        raise NotFound(f"no account {account_id}", param="account_id")
    return asdict(account)


@router.get("/pool")
async def pool_summary(gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return asdict(await gw.pool.summary())
