"""Admin API for the token pool (Bearer ADMIN_PASSWORD). Tokens only ever leave masked, except ``export``.

Long work (refreshing many accounts) is a job whose progress lives in the store: ``POST /admin/tokens/refresh``
starts it and works for a few seconds; each ``GET /admin/refresh/{job}`` works a few seconds more and reports, so a
polling client drives it to the end without any background task (serverless instances freeze between requests).
"""

from __future__ import annotations

import email.policy
import json
from dataclasses import asdict
from email.parser import BytesParser
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from api._deps import admin_auth, gateway
from core.cron import refresher
from core.errors import InvalidRequest, NotFound, UpstreamError
from core.gateway import Gateway
from core.pool import Account, import_report
from core.quota_sync import fetch_all_windows

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_auth)])
SLICE_SECONDS = 8.0  # work per admin refresh call: well inside any platform's request limit


class TokenImport(BaseModel):
    tokens: str | list[Any] = Field(description="Text (one per line, `sso=` prefixes ok) or a JSON list")
    tags: list[str] = []
    note: str = ""


class Ids(BaseModel):
    ids: list[str] = Field(min_length=1)


class AccountPatch(BaseModel):
    tags: list[str] | None = None
    note: str | None = Field(None, max_length=500)
    concurrency: int | None = Field(None, ge=0, le=64, description="0 = back to the global default")


class RefreshRequest(BaseModel):
    ids: list[str] | None = Field(None, description="accounts to refresh; omitted = every stale account")


def _account(account: Account) -> dict[str, Any]:
    return asdict(account)


async def _account_or_404(gw: Gateway, account_id: str) -> Account:
    account = await gw.pool.get(account_id)
    if account is None:
        raise NotFound(f"no account with id {account_id!r}", param="account_id")
    return account


async def _import_body(request: Request) -> TokenImport:
    """JSON (``{"tokens": ...}`` or a bare list) or a pasted / uploaded text body (one token per line)."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("no tokens given", param="tokens")
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        return _form_import(raw, content_type)
    if "json" not in content_type:
        return TokenImport(tokens=raw.decode("utf-8", "replace"))
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
    raise InvalidRequest('expected {"tokens": ...} or a JSON list of tokens', param="tokens")


def _form_import(raw: bytes, content_type: str) -> TokenImport:
    """A file uploaded as a form (``curl -F file=@tokens.txt``, a browser): the tokens are the text of its file
    parts (or of a ``tokens`` field), never the envelope — boundary lines look just like tokens."""
    form = BytesParser(policy=email.policy.default).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + raw
    )
    texts: list[str] = []
    fields: dict[str, str] = {}
    for part in form.iter_parts() if form.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        if part.get_filename() is not None or name == "tokens":
            texts.append(text)
        elif isinstance(name, str):
            fields[name] = text
    if not texts:
        raise InvalidRequest("no file in the form: upload the tokens as a file field", param="file")
    return TokenImport(tokens="\n".join(texts), tags=fields.get("tags", "").split(","), note=fields.get("note", ""))


@router.post("/tokens")
async def import_tokens(request: Request, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    body = await _import_body(request)
    report = await gw.pool.add(body.tokens, tags=body.tags, note=body.note)
    return import_report(report)


@router.get("/tokens")
async def list_tokens(
    tier: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    q: str | None = Query(None, max_length=200, description="search: part of the id, masked token, note or a tag"),
    quota: Literal["some", "none", "unknown"] | None = Query(
        None, description="chat quota left (summed over the modes): some, none, or unknown (never refreshed)"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page; omitted = first page"),
    limit: int = Query(100, ge=1, le=1000),
    gw: Gateway = Depends(gateway),
) -> dict[str, Any]:
    """One page of accounts in import order. ``next_cursor`` (null at the end) fetches the next; ``total`` counts
    the accounts matching the filter (null for a tag, search or quota filter, or tier + status together). The first page
    also carries the pool summary."""
    start = _cursor(cursor)
    page = await gw.pool.page(cursor=start, limit=limit, tier=tier, status=status, tag=tag, text=q, quota=quota)
    body: dict[str, Any] = {
        "object": "list",
        "data": [_account(a) for a in page.accounts],
        "total": page.total,
        "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
    }
    if start == 0:
        body["summary"] = asdict(await gw.pool.summary())
    return body


def _cursor(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isdecimal():
        raise InvalidRequest("cursor must be a next_cursor value from a previous page", param="cursor")
    return int(value)


@router.get("/tokens/export")
async def export_tokens(format: str = "text", gw: Gateway = Depends(gateway)) -> Any:
    tokens = await gw.pool.export()
    if format == "json":
        return {"tokens": tokens}
    return PlainTextResponse("\n".join(tokens) + ("\n" if tokens else ""))


@router.get("/tokens/{account_id}")
async def get_token(account_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return _account(await _account_or_404(gw, account_id))


@router.patch("/tokens/{account_id}")
async def patch_token(account_id: str, patch: AccountPatch, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    await _account_or_404(gw, account_id)
    if patch.tags is not None:
        await gw.pool.set_tags(account_id, patch.tags)
    if patch.note is not None:
        await gw.pool.set_note(account_id, patch.note)
    if patch.concurrency is not None:
        await gw.pool.set_concurrency(account_id, patch.concurrency or None)
    return _account(await _account_or_404(gw, account_id))


@router.delete("/tokens/{account_id}")
async def delete_token(account_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    deleted = await gw.pool.delete([account_id])
    if not deleted:
        raise NotFound(f"no account with id {account_id!r}", param="account_id")
    return {"deleted": deleted}


@router.post("/tokens/delete")
async def delete_tokens(body: Ids, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"deleted": await gw.pool.delete(body.ids)}


@router.post("/tokens/enable")
async def enable_tokens(body: Ids, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"updated": await gw.pool.set_enabled(body.ids, True)}


@router.post("/tokens/disable")
async def disable_tokens(body: Ids, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"updated": await gw.pool.set_enabled(body.ids, False)}


@router.post("/tokens/{account_id}/test")
async def test_token(account_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Ask grok.com for this account's quotas now: proves the token works and refreshes tier and quota."""
    await _account_or_404(gw, account_id)
    tokens = await gw.pool.tokens([account_id])
    try:
        windows, media = await fetch_all_windows(gw.client, account_id, tokens[account_id])
    except UpstreamError as exc:
        await gw.pool.record_failure(account_id, exc)
        return {"ok": False, "error": {"kind": exc.kind.value, "message": exc.message},
                "account": _account(await _account_or_404(gw, account_id))}
    await gw.pool.update_quota(account_id, windows, media)
    return {"ok": True, "account": _account(await _account_or_404(gw, account_id))}


@router.post("/tokens/refresh")
async def refresh_tokens(body: RefreshRequest | None = None, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    job = refresher(gw)
    started = await job.start(body.ids if body else None)
    progress = await job.run(started.job_id, budget=SLICE_SECONDS)
    return asdict(progress)


@router.get("/refresh/{job_id}")
async def refresh_progress(job_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    job = refresher(gw)
    progress = await job.progress(job_id)
    if progress is None:
        raise NotFound(f"no refresh job {job_id!r}", param="job_id")
    if not progress.finished:
        try:
            progress = await job.run(job_id, budget=SLICE_SECONDS)
        except LookupError:
            raise NotFound(f"no refresh job {job_id!r}", param="job_id") from None
    return asdict(progress)


@router.get("/pool")
async def pool_summary(gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return asdict(await gw.pool.summary())


@router.get("/usage")
async def usage(
    day: str | None = None,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int | None = Query(None, ge=1, le=10_000, description="counters per page; omitted = all of them"),
    gw: Gateway = Depends(gateway),
) -> dict[str, Any]:
    """The day's counters. With ``limit`` or ``cursor``: one page (``next_cursor`` null at the end; an account's
    counters may be split over two pages), for pools too big to send in one answer."""
    if day is not None and not (len(day) == 8 and day.isdecimal()):
        raise InvalidRequest("day must be YYYYMMDD", param="day")
    if limit is None and cursor is None:
        return {"day": day, "usage": await gw.pool.usage(day), "store_commands": gw.store.commands_sent}
    counters, next_cursor = await gw.pool.usage_page(day, cursor=_cursor(cursor), limit=limit or 500)
    return {
        "day": day,
        "usage": counters,
        "next_cursor": str(next_cursor) if next_cursor is not None else None,
        "store_commands": gw.store.commands_sent,
    }



