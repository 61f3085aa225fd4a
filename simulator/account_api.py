"""Account-level REST: rate limits, Imagine quota, modes, session identity, weekly credits, asset listing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from simulator import gates
from simulator.chat import read_json
from simulator.modes import MEDIA_QUOTAS, mode_from_model_name
from simulator.responses import edge_headers, json_response, not_found
from simulator.state import SimState

MODES_BODY: dict[str, Any] = {
    "modes": [
        {"id": "auto", "title": "Auto", "description": "Chooses Fast or Expert"},
        {"id": "fast", "title": "Fast", "description": "Quick responses · Grok 4.5"},
        {"id": "expert", "title": "Expert", "description": "Thinks hard · Grok 4.5"},
        {"id": "heavy", "title": "Heavy", "description": "Team of Experts · Grok 4.5",
         "availability": {"requiresUpgrade": {"minimumSubscriptionTier": "TIER_SUPERGROK_HEAVY"}}},
        {"id": "build", "title": "Build", "description": "Build apps and sites · Grok 4.5", "badgeText": "Beta",
         "availability": {"requiresUpgrade": {"minimumSubscriptionTier": "TIER_SUPERGROK_PLUS"}}},
    ],
    "defaultModeId": "auto",
}

# samples/chenyme_weekly_credits_grpcweb_captured.hex: 11 % used, 7-day period, trailer grpc-status:0.
WEEKLY_CREDITS = bytes.fromhex(
    "00000000630a610d0000304112001a00220c089abbccd2061080f2d1fc012a0c089ab0f1d2061080f2d1fc013a07080515000020"
    "413a070804150000803f3a020802421e0802120c089abbccd2061080f2d1fc011a0c089ab0f1d2061080f2d1fc01580162006801"
    "800000000f677270632d7374617475733a300d0a"
)


def _sim(request: Request) -> SimState:
    return request.app.state.sim


async def _quota_delay(state: SimState) -> None:
    if state.config.quota_delay > 0:
        await asyncio.sleep(state.config.quota_delay)


async def rate_limits(request: Request) -> Response:
    """Both body styles: ``{"requestKind":"DEFAULT","modelName":"grok-3"}`` and ``{"modelName":"fast"}``."""
    state = _sim(request)
    account = gates.check(state, request.headers, statsig=True)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    body = await read_json(request) or {}
    await _quota_delay(state)
    name = body.get("modelName") if isinstance(body.get("modelName"), str) else ""
    kind = body.get("requestKind") if isinstance(body.get("requestKind"), str) else ""
    window = state.quota(account.token, mode_from_model_name(name or "auto", kind))
    return json_response({
        "windowSizeSeconds": window.window,
        "remainingQueries": window.remaining,
        "totalQueries": window.total,
        "lowEffortRateLimits": None,
        "highEffortRateLimits": None,
    })


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def quota_info(request: Request) -> Response:
    """All five Imagine products; ``null`` when the tier has none, ``nextAvailableAt`` only when exhausted."""
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    await _quota_delay(state)
    body: dict[str, Any] = {}
    for product in MEDIA_QUOTAS:
        window = state.quota(account.token, product)
        if window.total <= 0:
            body[product] = None
            continue
        entry: dict[str, Any] = {"available": True, "remainingQueries": window.remaining,
                                 "windowSizeSeconds": window.window}
        resets = window.resets_at()
        if window.remaining <= 0 and resets is not None:
            entry["nextAvailableAt"] = _rfc3339(resets)
        body[product] = entry
    return json_response(body)


async def modes(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers, statsig=True)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    return json_response(MODES_BODY)


async def auth_session(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        if account.reason == "cloudflare":
            return account.response(request.url.path)
        status = "blocked" if account.reason == "blocked" else "unauthenticated"
        return json_response({"status": status})
    return json_response({
        "status": "authenticated",
        "session": {"userId": account.user_id, "email": account.email, "organizationId": ""},
    })


async def weekly_credits(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    if account.tier == "basic":
        body = bytes.fromhex("800000000f677270632d7374617475733a300d0a")  # no config for free accounts
    else:
        body = WEEKLY_CREDITS
    return Response(body, 200, {**edge_headers(), "grpc-status": "0"}, media_type="application/grpc-web+proto")


async def list_assets(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    files = [f for f in list(state.files.values()) if f.owner_uid == account.user_id]
    return json_response({
        "assets": [
            {"assetId": f.id, "name": f.name, "mimeType": f.mime, "sizeBytes": str(f.size), "key": f.uri}
            for f in files
        ],
        "nextPageToken": "",
    })


async def delete_asset(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    if not state.delete_file(account, request.path_params["asset_id"]):
        return not_found()
    return json_response({})
