"""Who a ``/v1`` request is, and whether it may go on: the client authentication dependency.

In order: a key from ``API_KEYS`` (compared in memory, no store command); a store-managed ``sk-g2a-`` key
(checked and counted against its limits in one store command, core/apikeys); the console's session cookie with
its CSRF header (the playground); the public playground key when that mode is on (its own per-address rate
limit); else, with no ``API_KEYS`` in development only, anyone. What it learns goes into the request's ledger
record (key id and name, the concurrency slot to free, the token-quota counter).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from api._auth import digest, matches_any, presented_key
from api._deps import gateway, keys
from api._session import client_address, console_session
from core import ledger
from core.apikeys import looks_like_store_key, well_formed
from core.errors import AuthenticationFailed, GatewayError, InvalidRequest
from core.gateway import Gateway

# Routes that only read (a model list, a video poll, a stored response) or count nothing upstream: the key is
# checked, not counted against its request limits.
_UNCOUNTED = re.compile(r"/(count_tokens|input_tokens)$")
MAX_MODEL_NAME = 200  # longer is a 400 before admission: it would be matched against globs and logged
_PART_NAME = re.compile(rb'\bname=(?:"([^"\r\n]{0,100})"|([^;\s]{0,100}))', re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary="?([^";]{1,200})"?', re.IGNORECASE)


async def client_auth(request: Request) -> None:
    record = ledger.current()
    checker = keys(request)
    presented = presented_key(request)
    if presented is not None and checker.api_digests and matches_any(presented, checker.api_digests):
        _identify(record, "env", "API_KEYS")
        return
    if presented is not None and looks_like_store_key(presented):
        if not well_formed(presented):  # cannot exist: refused without a store command
            raise AuthenticationFailed("Incorrect API key provided.")
        gw = await gateway(request)
        scope, model, counted = await _target(request, gw)
        try:
            admission = await gw.keys.admit(presented, scope=scope, model=model, counted=counted)
        except GatewayError as exc:
            known = getattr(exc, "key", None)  # a real key refused (disabled, expired, over a limit): logged as it;
            if known is not None:  # an unknown key is nobody's request, and must not spend store commands
                _identify(record, *known)
            raise
        if record is not None:
            _identify(record, admission.key_id, admission.name)
            record.key_slot, record.quota_key, record.quota_ttl = (
                admission.slot, admission.quota_key, admission.quota_ttl,
            )
        return
    if request.cookies and await console_session(request) is not None:
        _identify(record, "console", "console")
        return
    gw = await gateway(request)
    settings = gw.settings
    if settings.public_playground and _public_credential(request, presented, settings.public_key):
        address = client_address(request)
        await gw.keys.admit_public(address, rpm=settings.public_rpm)
        _identify(record, "public", "public playground")
        if record is not None:
            record.client = address  # public clients share one "key": their video jobs are told apart by this
        return
    if checker.open_access and not settings.is_production:  # no API_KEYS: development only
        _identify(record, "", "")
        return
    if presented is None:
        raise AuthenticationFailed(
            "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`.", code="missing_api_key"
        )
    raise AuthenticationFailed("Incorrect API key provided.")


def _identify(record: ledger.RequestRecord | None, key_id: str, name: str) -> None:
    """Name who is asking; from here on the request is logged if it can reach upstream (a POST other than the
    token counters, which an agent may call before every turn)."""
    if record is not None:
        record.key_id, record.key_name = key_id, name
        record.logged = record.route.startswith("POST ") and not _UNCOUNTED.search(record.route)


def _public_credential(request: Request, presented: str | None, public_key: str | None) -> bool:
    if public_key:
        return presented is not None and matches_any(presented, (digest(public_key),))
    return presented is None and request.headers.get("x-g2a-playground") == "1"


async def _target(request: Request, gw: Gateway) -> tuple[str, str | None, bool]:
    """(scope, model, counted) of the request: the API it uses, the model its body names, whether it calls
    upstream (then it counts against the key's limits). A read (a listing, a poll) needs no scope."""
    path = request.url.path
    counted = request.method == "POST" and not _UNCOUNTED.search(path)
    if request.method != "POST":
        return "", None, False
    scope = "images" if path.startswith("/v1/images") else "video" if path.startswith("/v1/videos") else "chat"
    model = await _body_model(request)
    if model is not None and len(model) > MAX_MODEL_NAME:
        raise InvalidRequest(f"`model` is longer than {MAX_MODEL_NAME} characters", param="model")
    if scope == "chat" and model is not None and gw.catalog.find_video(model) is not None:
        scope = "video"  # a video model through chat completions uses the video API's scope
    record = ledger.current()
    if record is not None and model:
        record.model = model
    return scope, model, counted


async def _body_model(request: Request) -> str | None:
    """The ``model`` the body names, read the way the routes read it: the last ``model`` part of a multipart
    form, else the body as JSON whatever its content type says (FastAPI has already parsed and cached it for the
    routes that declare a body model). Linear in the body; None when there is no model or no readable body."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/"):
        boundary = _BOUNDARY.search(request.headers.get("content-type", ""))
        return _multipart_model(await request.body(), boundary.group(1).encode()) if boundary else None
    try:
        body: Any = await request.json() if "json" in content_type else json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):  # not JSON: the route reports it
        return None
    value = body.get("model") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _multipart_model(raw: bytes, boundary: bytes) -> str | None:
    found = None
    for part in raw.split(b"--" + boundary):
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep or len(head) > 2000:
            continue
        name = _PART_NAME.search(head)
        if name is not None and (name.group(1) or name.group(2) or b"").lower() == b"model":
            found = value[: MAX_MODEL_NAME + 3].rstrip(b"\r\n-").decode("utf-8", "replace").strip()
    return found
