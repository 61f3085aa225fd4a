"""The assets host (``/__assets`` ≙ assets.grok.com) and imagine-public (``/__imagine-public``) (§8.4).

Private assets need the owner's cookies — that is why gateways proxy media. Range requests are honoured.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from simulator import gates
from simulator.responses import asset_forbidden, asset_not_found, cf_ray
from simulator.state import Asset, SimState

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _sim(request: Request) -> SimState:
    return request.app.state.sim


async def private_asset(request: Request) -> Response:
    state = _sim(request)
    path = request.path_params["path"]
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        if account.reason == "cloudflare":
            return account.response(request.url.path)
        return asset_forbidden()
    if not path.startswith(f"users/{account.user_id}/"):
        return asset_forbidden()
    asset = state.asset(path)
    if asset is None:
        return asset_not_found()
    return serve(request, asset)


async def public_asset(request: Request) -> Response:
    asset = _sim(request).public_assets.get(request.path_params["path"])
    if asset is None:
        return asset_not_found()
    return serve(request, asset)


def serve(request: Request, asset: Asset) -> Response:
    data = asset.body()
    headers = {"server": "cloudflare", "cf-ray": cf_ray(), "accept-ranges": "bytes",
               "cache-control": "private, max-age=86400"}
    header = request.headers.get("range")
    if header:
        match = _RANGE_RE.match(header.strip())
        size = len(data)
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(size - int(last), 0), size - 1
            if start <= end < size:
                headers["content-range"] = f"bytes {start}-{end}/{size}"
                return Response(data[start : end + 1], 206, headers, media_type=asset.content_type)
        headers["content-range"] = f"bytes */{size}"
        return Response(b"", 416, headers)
    return Response(data, 200, headers, media_type=asset.content_type)
