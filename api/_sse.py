"""Server-sent events plumbing: heartbeats while the upstream is silent, and a response that notices at once when
the client hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")
HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingResponse):
    """``text/event-stream`` that stops producing as soon as the client disconnects.

    Starlette only watches for ``http.disconnect`` on servers older than ASGI 2.4; on newer ones it waits for a
    write to fail, which while upstream is silent can be a heartbeat interval away. All that time the account's
    slot stays taken and upstream keeps generating. Watching ``receive`` always ends the body iterator (its
    ``finally`` settles the lease and closes upstream) the moment the client is gone.
    """

    def __init__(self, content: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(content, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def produce() -> None:
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the client went away mid-write: the watcher below ends too
                group.cancel_scope.cancel()

            group.start_soon(produce)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


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


def data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
