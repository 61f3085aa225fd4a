"""Request body limits as plain ASGI middleware: size (``MAX_REQUEST_BYTES``) and JSON nesting depth.

The body is read here, up to the limit, before the app sees it, so that

* a body over the limit is a 413 with the same JSON whether it declared a ``Content-Length`` or came chunked;
* a JSON body nested deeper than ``MAX_JSON_DEPTH`` is a 400 before ``json``/pydantic recurse into it (100,000
  nested ``[`` would otherwise end in a RecursionError). The scan is linear and runs in C: string literals are
  dropped by one regex, then the running bracket depth is computed over what remains.

Errors are rendered in the route's protocol (OpenAI, or Anthropic on ``/v1/messages*``). FastAPI reads JSON
bodies whole anyway, so buffering here costs no extra memory beyond one copy.
"""

from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, count

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._errors import anthropic_error_body, openai_error_body
from core.errors import GatewayError, InvalidRequest, PayloadTooLarge

# Deepest JSON nesting a request may use. Chat requests need a handful of levels; tool schemas a few dozen.
MAX_JSON_DEPTH = 64

# A JSON string literal (escapes included), as an unrolled loop so long base64 data URIs scan in one C pass.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# Opening brackets count 2 and closing 0, so the depth after the i-th bracket is (running sum) - i.
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(body: bytes) -> int:
    """Deepest bracket nesting in ``body`` outside string literals (linear; exact for valid JSON)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(map(operator.sub, accumulate(brackets.translate(_WEIGHTS)), count(1)))


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    if body.count(b"[") + body.count(b"{") <= limit:  # the common case: cannot be deeper than the brackets
        return False
    return json_depth(body) > limit


def _is_json(scope: Scope) -> bool:
    """JSON bodies, and bodies without a content type (FastAPI parses those as JSON too)."""
    content_type = dict(scope.get("headers") or ()).get(b"content-type", b"").lower()
    return not content_type or b"json" in content_type


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than {self.max_bytes} bytes", param="body")

    def too_nested(self) -> InvalidRequest:
        return InvalidRequest(
            f"request body nests JSON deeper than {self.max_depth} levels", param="body", code="json_too_deep"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            await _reject(scope, send, self.too_large())
            return
        body = await self._read(receive)
        if body is None:  # the client went away while sending: nobody to answer
            return
        if isinstance(body, GatewayError):
            await _reject(scope, send, body)
            return
        if body and _is_json(scope) and too_deep(body, self.max_depth):
            await _reject(scope, send, self.too_nested())
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | GatewayError | None:
        """The whole body, ``too_large()`` once it passes the limit, ``None`` on disconnect."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return self.too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body over as one message, then the real channel (streaming responses watch it for
    ``http.disconnect``)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reject(scope: Scope, send: Send, error: GatewayError) -> None:
    anthropic = scope.get("path", "").startswith("/v1/messages")
    payload = json.dumps(anthropic_error_body(error) if anthropic else openai_error_body(error)).encode()
    await send({
        "type": "http.response.start",
        "status": error.status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
    })
    await send({"type": "http.response.body", "body": payload})
