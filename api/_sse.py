"""Server-sent events plumbing: heartbeats while the upstream is silent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")
HEARTBEAT = b": keep-alive\n\n"


async def with_heartbeats(source: AsyncIterator[T], interval: float) -> AsyncIterator[T | None]:
    """Yield items from ``source``; yield ``None`` every ``interval`` seconds of silence.

    The pending ``anext`` survives a heartbeat (it is awaited again), so no item is lost or reordered.
    """
    iterator = aiter(source)
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except StopAsyncIteration:
                return
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):
                pass


def data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
