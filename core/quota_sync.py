"""Reading an account's quota from grok.com: the glue between the upstream client and the pool's types.

Used lazily on the request path (chat windows only, when a lease says the numbers are stale) and in bulk by
cron and the admin "refresh" action (chat windows plus the media quotas of ``quota_info``).
"""

from __future__ import annotations

import asyncio

from core.catalog import MODES
from core.errors import FailureKind, UpstreamError
from core.grok.client import Credentials, GrokClient
from core.pool import QuotaWindow, parse_quota_info, parse_rate_limits

# Failures that condemn the account (or our egress) rather than one mode's answer: they abort the refresh.
ACCOUNT_FATAL = (FailureKind.UNAUTHORIZED, FailureKind.BLOCKED, FailureKind.CLOUDFLARE, FailureKind.ANTI_BOT)


async def fetch_chat_windows(client: GrokClient, creds: Credentials) -> dict[str, QuotaWindow]:
    """``/rest/rate-limits`` for every chat mode, concurrently. A mode whose answer fails is left out."""
    bodies = await asyncio.gather(*(client.rate_limits(creds, mode) for mode in MODES), return_exceptions=True)
    windows: dict[str, QuotaWindow] = {}
    for mode, body in zip(MODES, bodies, strict=True):
        if isinstance(body, UpstreamError) and body.kind in ACCOUNT_FATAL:
            raise body
        if isinstance(body, dict):
            windows[mode] = parse_rate_limits(body)
    if not windows:
        failures = [b for b in bodies if isinstance(b, BaseException)]
        raise failures[0] if failures and isinstance(failures[0], UpstreamError) else UpstreamError(
            FailureKind.SERVER, "grok.com answered no rate-limits query"
        )
    return windows


async def fetch_all_windows(
    client: GrokClient, account_id: str, token: str
) -> tuple[dict[str, QuotaWindow], dict[str, QuotaWindow] | None]:
    """Chat windows and media quotas of one account (the ``fetch`` a ``QuotaRefresher`` needs)."""
    creds = Credentials(token=token, account_id=account_id)
    chat, media = await asyncio.gather(
        fetch_chat_windows(client, creds), client.quota_info(creds), return_exceptions=True
    )
    if isinstance(chat, BaseException):
        raise chat
    return chat, parse_quota_info(media) if isinstance(media, dict) else None
