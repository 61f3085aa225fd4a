"""The load generator's HTTP/1.1 clients: a small raw-asyncio one (default) and httpx (for comparison).

Both keep one keep-alive connection per worker, so ``c`` workers hold ``c`` connections — a keep-alive pool of
size ``c``. Every request is timed the same way whatever the target (simulator, gateway, bare FastAPI):

* ``total``  — from just before the request bytes are written to the last byte of the body;
* ``first``  — to the first *content* in the body, judged by a ``FirstMark`` (the first non-empty ``token``
  NDJSON line from grok.com, the first non-empty ``content`` delta of an OpenAI SSE stream); ``None`` if the
  body never had one.

The raw client exists because the load generator shares two cores with the simulator and the gateway: every
CPU microsecond it spends is taken from them, equally for both paths but still noise. ``python -m bench
--client httpx`` runs the same plan over httpx; the report shows the client's CPU per request either way.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

FirstMark = Callable[[bytes], bool]  # one complete body line → is this the first content?


@dataclass(slots=True)
class Result:
    status: int
    total: float  # seconds
    first: float | None  # seconds to the first content line, when a FirstMark was given
    size: int  # decoded body bytes
    body: bytes  # first 2 KiB of the decoded body, for checks


def ndjson_token(line: bytes) -> bool:
    """grok.com NDJSON: a ``result.response.token`` line with text (not the empty soft-stop token)."""
    if b'"token"' not in line:
        return False
    try:
        response = json.loads(line)["result"]["response"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(response.get("token")) and not response.get("isThinking")


def sse_content(line: bytes) -> bool:
    """OpenAI SSE: a ``data:`` chunk whose first choice's delta has non-empty ``content``."""
    if not line.startswith(b"data: {") or b'"content"' not in line:
        return False
    try:
        choices = json.loads(line[6:])["choices"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(choices) and bool(choices[0].get("delta", {}).get("content"))


class _LineScanner:
    """Feeds decoded body bytes; records the time the first marked line completes."""

    __slots__ = ("buffer", "done", "mark", "when")

    def __init__(self, mark: FirstMark | None) -> None:
        self.mark = mark
        self.done = mark is None
        self.buffer = b""
        self.when: float | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        while not self.done:
            cut = self.buffer.find(b"\n")
            if cut < 0:
                return
            line, self.buffer = self.buffer[:cut].rstrip(b"\r"), self.buffer[cut + 1 :]
            if line and self.mark is not None and self.mark(line):
                self.when = time.perf_counter()
                self.done = True
                self.buffer = b""


class RawConnection:
    """One HTTP/1.1 keep-alive connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (OSError, ConnectionError):
                pass
        self.reader = self.writer = None

    async def send(self, request: bytes, mark: FirstMark | None) -> Result:
        if self.writer is None:
            await self._connect()
        try:
            return await self._exchange(request, mark)
        except (ConnectionError, asyncio.IncompleteReadError):
            # A keep-alive connection the server dropped between requests: retry once on a fresh one.
            await self.close()
            await self._connect()
            return await self._exchange(request, mark)

    async def _exchange(self, request: bytes, mark: FirstMark | None) -> Result:
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        chunked = gzip = close = False
        for raw in lines[1:]:
            name, _, value = raw.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"content-encoding":
                gzip = value == b"gzip"
            elif name == b"connection":
                close = value == b"close"
        scanner = _LineScanner(mark)
        inflate = zlib.decompressobj(31) if gzip else None
        size = 0
        kept = bytearray()

        def take(data: bytes) -> None:
            nonlocal size
            if inflate is not None:
                data = inflate.decompress(data)
            size += len(data)
            if len(kept) < 2048:
                kept.extend(data[: 2048 - len(kept)])
            scanner.feed(data)

        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                n = int(size_line.split(b";", 1)[0], 16)
                if n == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                        pass
                    break
                chunk = await reader.readexactly(n + 2)
                take(chunk[:-2])
        elif length is not None:
            if length:
                take(await reader.readexactly(length))
        else:  # body until close
            take(await reader.read())
            close = True
        if inflate is not None:
            scanner.feed(inflate.flush())
        scanner.feed(b"\n")  # a last line without a newline still counts
        ended = time.perf_counter()
        if close:
            await self.close()
        first = None if scanner.when is None else scanner.when - started
        return Result(status, ended - started, first, size, bytes(kept))


def build_request(
    method: str, host: str, port: int, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """Pre-render a request once; every worker sends the same bytes (no per-request client work)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Target:
    """What one worker sends: the same request again and again (per-worker variants allowed)."""

    host: str
    port: int
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def raw(self) -> bytes:
        return build_request(self.method, self.host, self.port, self.path, body=self.body, headers=dict(self.headers))


class RawClient:
    name = "raw-asyncio"

    def __init__(self, target: Target) -> None:
        self.target = target
        self.request = target.raw()
        self.connection = RawConnection(target.host, target.port)

    async def send(self, mark: FirstMark | None) -> Result:
        return await self.connection.send(self.request, mark)

    async def close(self) -> None:
        await self.connection.close()


class HttpxClient:
    """The same interface over ``httpx.AsyncClient`` (one connection per worker, keep-alive)."""

    name = "httpx"

    def __init__(self, target: Target) -> None:
        import httpx

        self.target = target
        self.url = f"http://{target.host}:{target.port}{target.path}"
        self.headers = dict(target.headers)
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=60.0
        )

    async def send(self, mark: FirstMark | None) -> Result:
        scanner = _LineScanner(mark)
        kept = bytearray()
        size = 0
        started = time.perf_counter()
        async with self.client.stream(
            self.target.method, self.url, content=self.target.body or None, headers=self.headers
        ) as response:
            async for data in response.aiter_bytes():  # decoded (gzip) by httpx
                size += len(data)
                if len(kept) < 2048:
                    kept.extend(data[: 2048 - len(kept)])
                scanner.feed(data)
            scanner.feed(b"\n")
            ended = time.perf_counter()
        first = None if scanner.when is None else scanner.when - started
        return Result(response.status_code, ended - started, first, size, bytes(kept))

    async def close(self) -> None:
        await self.client.aclose()


CLIENTS = {"raw": RawClient, "httpx": HttpxClient}
