"""A raw ASGI streaming response that sends pre-rendered lines with the configured pacing.

Why not ``StreamingResponse``: we need per-line gzip sync-flushes, scripted stalls, a way to drop the connection
mid-body (``Abort``), and a guaranteed ``on_close`` (releasing the in-flight slot) even when the client goes
away during a sleep — so a watcher task cancels the send loop as soon as the client disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterable

from starlette.types import Message, Receive, Scope, Send

from simulator.config import SimConfig, sample
from simulator.rest import Item
from simulator.steps import Abort, End, Stall


class SimulatedDisconnect(Exception):
    """Raised inside the ASGI app to make the server drop the connection without finishing the body."""


_QUIET_MESSAGES = (
    # uvicorn's sans-io WebSocket protocol logs this after a (valid) denial response.
    "ASGI callable returned without completing handshake.",
)


class _QuietSimulatedDisconnect(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # Scripted disconnects, and streams cut short when the server stops, are expected.
        if isinstance(exc, SimulatedDisconnect | asyncio.CancelledError):
            return False
        message = record.getMessage()
        return message not in _QUIET_MESSAGES and "timeout graceful shutdown exceeded" not in message


def install_log_filter() -> None:
    """Keep intentional disconnects and handshake denials out of uvicorn's error log (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietSimulatedDisconnect) for f in logger.filters):
        logger.addFilter(_QuietSimulatedDisconnect())


def delay_for(kind: str, config: SimConfig) -> float:
    if kind == "none":
        return 0.0
    if kind == "token":
        return sample(config.token_delay)
    if kind == "first":
        return sample(config.first_token_delay)
    if kind == "user":
        return config.user_response_delay
    if kind == "video":
        return config.video_duration / 10
    if kind == "image":
        return config.imagine_latency / 4
    return 0.0


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when ``Accept-Encoding`` allows gzip (a q of 0 refuses it)."""
    for part in (accept_encoding or "").lower().split(","):
        name, *params = (p.strip() for p in part.split(";"))
        if name not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


class ScriptedStream:
    def __init__(
        self,
        items: Iterable[Item],
        config: SimConfig,
        *,
        headers: dict[str, str],
        gzip: bool,
        on_close: Callable[[], None] | None = None,
        status: int = 200,
    ) -> None:
        self.items = items
        self.config = config
        self.gzip = gzip
        self.status = status
        self.on_close = on_close
        raw = {"content-type": "application/json", **headers}
        if gzip:
            raw["content-encoding"] = "gzip"
        self.raw_headers = [(k.encode(), v.encode()) for k, v in raw.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"disconnected": False, "finished": False}

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["finished"]:
                        state["disconnected"] = True
                        task.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers})
            await self._send_body(send, state)
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            task.uncancel()  # our own cancellation: the client left, nothing more to do
        finally:
            watcher.cancel()
            if self.on_close is not None:
                self.on_close()

    async def _send_body(self, send: Send, state: dict[str, bool]) -> None:
        """Send each line as soon as it is due. Lines due at the same instant (no delay between them) go out in
        one write and one gzip sync-flush — indistinguishable on the wire, and it keeps zero-delay runs cheap."""
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if self.gzip else None
        config = self.config
        pending: list[bytes] = []

        async def flush(last: bool = False) -> None:
            data = b"".join(pending)
            pending.clear()
            if compressor is not None:
                data = compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
            if last:
                state["finished"] = True
            if data or last:
                await send({"type": "http.response.body", "body": data, "more_body": not last})

        for kind, payload in self.items:
            delay = delay_for(kind, config)
            if delay > 0:
                if pending:
                    await flush()
                await asyncio.sleep(delay)
            if isinstance(payload, Stall):
                if pending:
                    await flush()
                await asyncio.sleep(payload.seconds)
                continue
            if isinstance(payload, Abort):
                if pending:
                    await flush()
                raise SimulatedDisconnect
            if isinstance(payload, End):
                break
            pending.append(payload() if callable(payload) else payload)
        await flush(last=True)
