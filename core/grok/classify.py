"""Turn an upstream failure (status, headers, body) into an ``UpstreamError`` with the right ``FailureKind``.

The rules follow how mature gateways classify grok.com answers (protocol reference §5): Cloudflare challenges and
anti-bot rejections are egress/configuration problems, not the account's fault; "blocked-user" 403s and 401s are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from core.errors import FailureKind, UpstreamError

CLOUDFLARE_MARKERS = ("just a moment", "challenge-platform", "__cf_chl", "cf-chl-", "_cf_chl_opt")
BLOCKED_MARKERS = ("blocked-user", "user is blocked")
AUTH_MARKERS = ("unauthenticated", "unauthorized", "not logged in", "bad-credentials")


def error_message(body: str) -> str:
    """Best human-readable message in a JSON error body (several shapes exist), else a short excerpt."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(data.get("message"), str):
            return data["message"]
    return body.strip()[:200]


def is_cloudflare(status: int, headers: Mapping[str, str], body: str) -> bool:
    lowered = body[:4096].lower()
    if any(marker in lowered for marker in CLOUDFLARE_MARKERS):
        return True
    content_type = headers.get("content-type", "")
    return status == 403 and "cloudflare" in headers.get("server", "").lower() and "json" not in content_type


def classify(status: int, headers: Mapping[str, str], body: str, *, what: str = "chat") -> UpstreamError:
    headers = {k.lower(): v for k, v in headers.items()}
    message = error_message(body)
    lowered = body[:4096].lower()
    retry_after = _retry_after(headers)

    if status in (401, 403) and is_cloudflare(status, headers, body):
        return UpstreamError(
            FailureKind.CLOUDFLARE,
            f"grok.com answered {what} with a Cloudflare challenge ({status}): the egress IP, cf_clearance or "
            "user agent is not accepted. This is a configuration problem, not the account's.",
            upstream_status=status,
        )
    if status == 403 and any(marker in lowered for marker in BLOCKED_MARKERS):
        return UpstreamError(FailureKind.BLOCKED, f"account is blocked by grok.com: {message}", upstream_status=403)
    if "anti-bot" in lowered:
        return UpstreamError(
            FailureKind.ANTI_BOT,
            f"grok.com rejected {what} by its anti-bot rules ({status}): set GROK_STATSIG_ID / GROK_CF_CLEARANCE "
            "from your own browser.",
            upstream_status=status,
        )
    if status == 401:
        return UpstreamError(FailureKind.UNAUTHORIZED, f"session token rejected: {message}", upstream_status=401)
    if status == 429:
        return UpstreamError(
            FailureKind.RATE_LIMITED,
            f"account rate limited by grok.com: {message}",
            upstream_status=429,
            retry_after=retry_after,
        )
    if status >= 500:
        return UpstreamError(FailureKind.SERVER, f"grok.com server error {status}: {message}", upstream_status=status)
    if status == 413:
        return UpstreamError(FailureKind.BAD_REQUEST, f"grok.com: payload too large: {message}", upstream_status=413)
    return UpstreamError(FailureKind.BAD_REQUEST, f"grok.com refused {what} ({status}): {message}", upstream_status=status)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
