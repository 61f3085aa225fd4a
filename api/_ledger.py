"""The request log's ASGI middleware: every ``/v1`` request gets a ledger record, written once when it ends.

A chat answer's record is written by its final settle (core/chat, no extra store command); anything else —
an error before or instead of an answer, an image or video request — is written here after the response has been
sent, in one command. Only authenticated POST requests are logged (listings, polls, downloads and deletes reach
no account, and a client's poll loop would otherwise fill the log and spend the store's budget). Requests refused for want of a valid key are not written: an anonymous client must not be able
to spend the store's command budget.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import ledger
from core.errors import GatewayError

log = logging.getLogger("grok2api")
RETRY_DELAY = 0.2  # seconds before the one retry of a failed record write


class RequestLedger:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        record, token = ledger.begin(f'{scope["method"]} {scope["path"]}'[:200])
        # Nothing is written until client auth knows who is asking (api/_access.py: it then logs POST requests):
        # a body refused before auth (too large, not JSON) must not let an anonymous client spend store commands.
        record.logged = False
        seen: list[int] = []

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            ledger.end(token)
            await self._finish(scope, record, seen[0] if seen else 500)

    async def _finish(self, scope: Scope, record: ledger.RequestRecord, status: int) -> None:
        if record.written or not record.logged:
            return
        if not record.status:
            record.status = status
        if record.status >= 400 and not record.error_kind:
            record.error_kind = f"http_{record.status}"
        # The record also releases a store key's concurrency slot: one retry rides out a store blip, else the
        # slot waits for its TTL. The write is idempotent (a timed-out first try may have run). On buffered
        # platforms (Mangum, Vercel) the response leaves after this, so a retry delays it by RETRY_DELAY.
        for attempt in (1, 2):
            try:
                gateway = await scope["app"].state.gateway.get()
                await gateway.ledger.write(record)
                return
            except (GatewayError, OSError) as exc:  # the answer is out; a lost log line must not become an error
                if attempt == 1:
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                log.warning("request log: could not write %s: %s", record.route, getattr(exc, "message", exc))
            except Exception:
                log.exception("request log: could not write %s", record.route)
                return
