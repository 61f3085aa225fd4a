"""Client and admin authentication with constant-time comparison.

Clients send ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (what the OpenAI and Anthropic SDKs send).
Keys are compared as SHA-256 digests with ``hmac.compare_digest`` so neither content nor length leaks by timing.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from api._session import console_session
from core.errors import AuthenticationFailed, PermissionDenied


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def matches_any(presented: str, digests: tuple[bytes, ...]) -> bool:
    candidate = digest(presented)
    found = False
    for stored in digests:  # no early exit: time does not depend on which key matched
        found |= hmac.compare_digest(candidate, stored)
    return found


class KeyChecker:
    """Holds digests of the configured secrets only."""

    def __init__(self, api_keys: tuple[str, ...], admin_password: str | None, cron_secret: str | None) -> None:
        self.api_digests = tuple(digest(k) for k in api_keys)
        self.admin_digests = (digest(admin_password),) if admin_password else ()
        self.cron_digests = (digest(cron_secret),) if cron_secret else ()

    @property
    def open_access(self) -> bool:
        """No API keys configured: a development gateway then accepts any client; production never does (its
        clients need a store-managed key)."""
        return not self.api_digests

    async def admin(self, request: Request) -> None:
        """Bearer ADMIN_PASSWORD (scripts; no CSRF needed), or, when no key is sent, the console's session cookie
        (its CSRF token required on state-changing methods: 403 ``csrf_failed``)."""
        if not self.admin_digests:
            raise PermissionDenied("The admin API is disabled: set ADMIN_PASSWORD to enable it.", code="admin_disabled")
        key = presented_key(request)
        if key is not None and matches_any(key, self.admin_digests):
            return
        if key is None and await console_session(request) is not None:
            return
        raise AuthenticationFailed(
            "Admin authentication required (Bearer ADMIN_PASSWORD or a console session).", code="invalid_admin_key"
        )

    def cron(self, request: Request) -> None:
        """Vercel Cron sends ``Authorization: Bearer $CRON_SECRET``; the admin secret works too."""
        key = presented_key(request)
        if key is None or not (matches_any(key, self.cron_digests) or matches_any(key, self.admin_digests)):
            raise AuthenticationFailed("Cron authentication required (Bearer CRON_SECRET).", code="invalid_cron_key")
