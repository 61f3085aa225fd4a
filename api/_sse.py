"""Server-sent events plumbing: the heartbeat comment, ``data:`` framing, and a response that notices at once when
the client hangs up. (The heartbeat timing itself is ``core.aio.with_heartbeats``.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from core.answer_run import AnswerRun
from core.errors import GatewayError

log = logging.getLogger("grok2api")
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


def data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def settled(
    run: AnswerRun, frames: AsyncIterator[bytes], error_event: Callable[[GatewayError], bytes]
) -> AsyncIterator[bytes]:
    """A protocol's ``frames`` for one answer, then the run settled exactly once. A failure ends the stream with
    the protocol's ``error_event``: never silently, never with a traceback."""
    failure: GatewayError | None = None
    try:
        async for frame in frames:
            yield frame
    except GatewayError as exc:
        failure = exc
        yield error_event(exc)
    except Exception as exc:
        failure = GatewayError("internal error while streaming; the gateway logged the details")
        log.exception("stream failed: %s", exc)
        yield error_event(failure)
    finally:
        await run.close(failure)
