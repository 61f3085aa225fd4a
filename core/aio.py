"""Small asyncio helpers the engine shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


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
            if not await _done_within(pending, interval):
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


async def _done_within(task: asyncio.Future[T], timeout: float) -> bool:
    """``asyncio.wait({task}, timeout=timeout)`` for one task, minus its set bookkeeping (runs once per SSE event):
    True once ``task`` is done, False after ``timeout`` seconds; the task itself is never cancelled."""
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout, wake)
    task.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()
