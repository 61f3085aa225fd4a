"""Request body limits as plain ASGI middleware: size (``MAX_REQUEST_BYTES``) and JSON nesting depth.

The body is read here, up to the limit, before the app sees it, so that

* a body over the limit is a 413 with the same JSON whether it declared a ``Content-Length`` or came chunked;
* a JSON body nested deeper than ``MAX_JSON_DEPTH`` is a 400 before ``json``/pydantic recurse into it (100,000
  nested ``[`` would otherwise end in a RecursionError), and so is one holding more than ``MAX_JSON_CONTAINERS``
  objects and arrays (parsing and validating them would hold the event loop for up to half a second). The scan is
  linear, mostly in C (one regex drops string literals, then the running bracket depth is computed over what
  remains), and works slice by slice, yielding to the event loop in between.

Errors are rendered in the route's protocol (OpenAI, or Anthropic on ``/v1/messages*``). FastAPI reads JSON
bodies whole anyway, so buffering here costs no extra memory beyond one copy.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
from dataclasses import dataclass
from itertools import accumulate, count

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._errors import anthropic_error_body, openai_error_body
from core.errors import GatewayError, InvalidRequest, PayloadTooLarge

# Deepest JSON nesting a request may use. Chat requests need a handful of levels; tool schemas a few dozen.
MAX_JSON_DEPTH = 64
# Most objects + arrays a request may hold. Parsing and validating costs about 2 µs per container; at this cap a
# body parses in ~30 ms, so no request can hold the event loop much longer (4 MB of tiny objects would be 100,000+
# containers and ~0.5 s). Long agent sessions with big tool lists stay far below it.
MAX_JSON_CONTAINERS = 20_000
# The structure scan works on slices this large and yields to the event loop between them.
_SCAN_SLICE = 256 * 1024

# A JSON string literal (escapes included), as an unrolled loop so long base64 data URIs scan in one C pass.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# The rest of a string literal that began in an earlier slice: up to and including its closing quote.
_STRING_TAIL = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# Opening brackets count 2 and closing 0, so the depth after the i-th bracket is (running sum) - i.
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


@dataclass(slots=True)
class Structure:
    depth: int = 0  # deepest nesting seen
    containers: int = 0  # objects + arrays


class StructureScan:
    """Bracket depth and container count outside string literals, fed slice by slice (exact for valid JSON).

    The string state carries across slices, so the body can be scanned a slice at a time with the event loop
    running in between: a 4 MB body of tiny strings costs tens of milliseconds of regex work in all.
    """

    def __init__(self) -> None:
        self.result = Structure()
        self._level = 0
        self._in_string = False

    def feed(self, data: bytes) -> Structure:
        if self._in_string:
            end = _STRING_TAIL.match(data)
            if end is None:  # the whole slice is inside one string
                return self.result
            data, self._in_string = data[end.end():], False
        outside = _STRING.sub(b"", data)
        quote = outside.find(b'"')
        if quote >= 0:  # a string starts here and ends in a later slice
            outside, self._in_string = outside[:quote], True
        brackets = outside.translate(None, _NOT_BRACKETS)
        if brackets:
            opens = brackets.count(b"[") + brackets.count(b"{")
            if opens:
                # Depth after the i-th bracket of this slice is (running sum of weights) - i, on top of the level
                # the slice started at.
                peak = max(map(operator.sub, accumulate(brackets.translate(_WEIGHTS)), count(1)))
                self.result.depth = max(self.result.depth, self._level + peak)
                self.result.containers += opens
            self._level += 2 * opens - len(brackets)
        return self.result


async def json_structure(body: bytes, *, slice_size: int = _SCAN_SLICE) -> Structure:
    """``StructureScan`` over ``body`` a slice at a time, yielding to the event loop between slices."""
    scan = StructureScan()
    start = 0
    while start < len(body):
        end = start + slice_size
        while end < len(body) and body[end - 1:end] == b"\\":  # never split an escape from what it escapes
            end += 1
        scan.feed(body[start:end])
        start = end
        if start < len(body):
            await asyncio.sleep(0)
    return scan.result


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
    def __init__(
        self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_JSON_DEPTH,
        max_containers: int = MAX_JSON_CONTAINERS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_containers = max_containers

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than {self.max_bytes} bytes", param="body")

    def too_nested(self) -> InvalidRequest:
        return InvalidRequest(
            f"request body nests JSON deeper than {self.max_depth} levels", param="body", code="json_too_deep"
        )

    def too_many(self) -> InvalidRequest:
        return InvalidRequest(
            f"request body holds more than {self.max_containers} JSON objects and arrays", param="body",
            code="json_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:  # bytes: ASCII digits only
            await _reject(scope, send, self.too_large())
            return
        body = await self._read(receive)
        if body is None:  # the client went away while sending: nobody to answer
            return
        if isinstance(body, GatewayError):
            await _reject(scope, send, body)
            return
        if body and _is_json(scope) and body.count(b"[") + body.count(b"{") > self.max_depth:
            shape = await json_structure(body)
            if shape.depth > self.max_depth:
                await _reject(scope, send, self.too_nested())
                return
            if shape.containers > self.max_containers:
                await _reject(scope, send, self.too_many())
                return
            await asyncio.sleep(0)  # the scan and the parse that follows are separate stretches on the loop
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
