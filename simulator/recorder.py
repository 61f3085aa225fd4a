"""ASGI middleware that logs every upstream-facing request (headers and final status) for assertions."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.state import RecordedRequest, SimState


class RequestRecorder:
    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.sim = state  # the live SimState, for callers holding only the ASGI app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith("/__sim"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_key, raw_value in scope["headers"]:
            key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        entry = RecordedRequest(
            time=self.sim.clock.now(),
            transport="ws" if scope["type"] == "websocket" else "http",
            method=scope.get("method", "GET"),
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
        )
        self.sim.record_request(entry)

        async def recording_send(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                entry.status = message["status"]
            elif kind == "websocket.accept":
                entry.status = 101
            elif kind == "websocket.close" and entry.status is None:
                entry.status = 403  # closed before accept: the server refuses the handshake
            await send(message)

        await self.app(scope, receive, recording_send)
