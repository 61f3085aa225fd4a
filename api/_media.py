"""``GET|HEAD /media/{id}[.ext]``: stored media, no client key (ids are unguessable capabilities).

S3 backend: a redirect (302) to ``MEDIA_PUBLIC_BASE_URL/<prefix><id>.<ext>`` or a presigned URL, so no object
ever passes through the function (Vercel 4.5 MB / Lambda 6 MB buffered limits). Local backend (laptop, Render,
a container with a disk): the file is streamed with ``ETag``, immutable caching and single-range requests.
The local backend is refused on Vercel/Lambda (``core/media/store.py``), so there it always redirects.

``public_base`` and ``chat_media`` are the helpers other routes use for absolute links.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from core.errors import NotFound
from core.media import MediaItem, MediaUnavailable
from core.media.chat import ChatMedia
from core.media.store import LocalBackend, S3Backend
from core.settings import Settings

router = APIRouter(tags=["media"])
IMMUTABLE = "public, max-age=31536000, immutable"
CHUNK = 256 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def public_base(request: Request, settings: Settings) -> str:
    """This gateway's absolute base URL: ``PUBLIC_BASE_URL``, else what the client reached (forwarded headers
    from a proxy first, then ``Host``), so a link never says 127.0.0.1 to someone outside."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    headers = request.headers
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host") or request.url.netloc
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{proto}://{host}{root}"


async def chat_media(request: Request) -> ChatMedia:
    """Dependency for chat routes: how images in their answers are kept and linked (no store I/O)."""
    gw = await request.app.state.gateway.get()
    settings = gw.settings
    return ChatMedia(gw.media, gw.client, public_base(request, settings), settings.image_format,
                     settings.grok_assets_url)


def _not_found(name: str) -> NotFound:
    return NotFound(f"no media '{name}'", param="id", code="media_not_found")


@router.api_route("/media/{name}", methods=["GET", "HEAD"], include_in_schema=True, response_model=None)
async def serve_media(name: str, request: Request) -> Response:
    media_id, _, ext = name.partition(".")
    gw = await request.app.state.gateway.get()
    item = await gw.media.get(media_id)
    if item is None or (ext and "." + ext.lower() != item.ext):
        raise _not_found(name)
    backend = gw.media.backend
    if isinstance(backend, S3Backend):
        url, public = await backend.link(item.filename, method="HEAD" if request.method == "HEAD" else "GET")
        cache = IMMUTABLE if public else f"private, max-age={max(0, int(backend.presign_ttl) // 2)}"
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": cache})
    if isinstance(backend, LocalBackend):
        return await _local(request, item, backend.path(item.filename))
    raise MediaUnavailable(getattr(backend, "message", "media store unavailable"))


async def _local(request: Request, item: MediaItem, path: Path) -> Response:
    try:
        stat = await asyncio.to_thread(path.stat)
    except FileNotFoundError:
        raise _not_found(item.filename) from None
    size, etag = stat.st_size, f'"{item.id}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (not if_range or if_range.strip() == etag):
        parsed = _parse_range(wanted, size)
        if parsed is None:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if parsed != ():
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=item.mime)
    return StreamingResponse(_read(path, start, end - start + 1), status_code=status, headers=headers,
                             media_type=item.mime)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _parse_range(header: str, size: int) -> tuple[int, int] | tuple[()] | None:
    """(start, end) inclusive; () = serve the whole file (a multi-range or non-bytes header); None = 416."""
    if "," in header or not header.strip().startswith("bytes"):
        return ()
    match = _RANGE.match(header)
    if match is None:
        return ()
    first, last = match.groups()
    if not first and not last:
        return ()
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return None
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return ()  # not a valid range: ignored (RFC 9110 §14.2)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        return None
    return start, end


async def _read(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
