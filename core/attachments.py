"""Turning image references from a chat request into bytes ready for upload.

``load_images`` handles all of one request's images under fixed limits, so no request can stall the process:

* at most ``max_images_per_request`` references (data URIs count too), checked before any work: more is a 400;
* each image at most ``max_image_bytes``; all of a request's images together at most
  ``REQUEST_BYTES_FACTOR`` × ``max_image_bytes`` (decoded data URIs plus fetched bodies);
* URLs go through the SSRF-checked fetcher (``core.fetch``), at most ``image_fetch_concurrency`` at once, all
  under ONE deadline ``image_fetch_deadline``; the same reference is loaded once;
* the loads run in a TaskGroup: the first failure, the deadline or the caller's cancellation (client gone)
  cancels every other load, closing its connection;
* base64 decoding (in 64 KiB slices) and hashing of anything over ``INLINE_CPU_BYTES`` run in one worker thread
  shared by all requests, not on the loop.

Only images grok.com accepts (JPEG, PNG, WebP, GIF — sniffed from the bytes, not trusted from the declared type)
pass. Errors: a data URI gets a precise 400 (malformed, not an image) or 413 (too large) — it is the client's own
bytes, nothing leaks. A URL gets the fetcher's uniform 400 ``<param #i>: the image could not be fetched`` whatever
the cause (also for a non-image or too-large body: saying so would tell a prober the host answered); the cause
goes to the server log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from core.errors import GatewayError, InvalidRequest, PayloadTooLarge
from core.fetch import ByteBudget, FetchFailed, fetch_url
from core.settings import Settings

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
REQUEST_BYTES_FACTOR = 3  # one request's images together: at most 3 × max_image_bytes
INLINE_CPU_BYTES = 64 * 1024  # bigger payloads are decoded/hashed in a worker thread (~0.3 ms per 64 KiB)
B64_CHUNK = 64 * 1024  # base64 characters per decode call (~0.3 ms): between calls the worker yields the GIL
# One worker thread for all image CPU work: base64 decoding holds the GIL (threads would not run it in parallel
# anyway), and one worker is one GIL contender, so the loop waits at most a switch interval (5 ms) for the GIL.
_CPU_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-cpu")
DEFAULT_PARAM = "messages[].content[image_url]"

log = logging.getLogger("grok2api")
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    mime: str
    data: bytes


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def check_data_uri(uri: str, *, max_bytes: int, param: str) -> int:
    """The cheap checks of a data URI (header, size bound) without decoding it; returns where the payload starts."""
    comma = uri.find(",", 0, 512)
    if comma < 0 or not uri.startswith("data:"):
        raise InvalidRequest(f"{param}: malformed data URI", param=param)
    if ";base64" not in uri[:comma]:
        raise InvalidRequest(f"{param}: data URIs must be base64-encoded", param=param)
    if data_uri_size(uri) > max_bytes:
        raise PayloadTooLarge(f"{param}: image is larger than {max_bytes} bytes", param=param)
    return comma + 1


def data_uri_size(uri: str) -> int:
    """Upper bound of a data URI's decoded size, without decoding it."""
    return (len(uri) - uri.find(",") - 1) * 3 // 4


def _b64decode(payload: str) -> bytes:
    """Strict base64 decoding in slices: one C call holds the GIL, so a worker thread must not make one 4 MB call."""
    if len(payload) <= B64_CHUNK:
        return base64.b64decode(payload, validate=True)
    if payload.find("=", 0, len(payload) - 2) >= 0:  # padding only at the very end, as for one call
        raise binascii.Error("padding inside the data")
    slices = (payload[i : i + B64_CHUNK] for i in range(0, len(payload), B64_CHUNK))
    return b"".join(base64.b64decode(piece, validate=True) for piece in slices)


def decode_data_uri(uri: str, *, max_bytes: int, param: str) -> bytes:
    start = check_data_uri(uri, max_bytes=max_bytes, param=param)
    try:
        return _b64decode(uri[start:].strip())
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{param}: data URI is not valid base64", param=param) from None


def _attachment(data: bytes, *, param: str, remote: bool) -> Attachment:
    mime = sniff_image(data)
    if mime is None:
        why = "image is empty" if not data else "not a JPEG, PNG, WebP or GIF image"
        if remote:
            raise FetchFailed(param, why)
        raise InvalidRequest(f"{param}: {why}", param=param)
    digest = hashlib.sha256(data).hexdigest()[:12]
    return Attachment(name=f"image-{digest}.{EXTENSIONS[mime]}", mime=mime, data=data)


def _from_data_uri(uri: str, *, max_bytes: int, param: str) -> Attachment:
    return _attachment(decode_data_uri(uri, max_bytes=max_bytes, param=param), param=param, remote=False)


async def _off_loop_if_big(size: int, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    if size > INLINE_CPU_BYTES:
        return await asyncio.get_running_loop().run_in_executor(_CPU_POOL, functools.partial(func, *args, **kwargs))
    return func(*args, **kwargs)


async def _load_data_uri(uri: str, *, max_bytes: int, param: str) -> Attachment:
    return await _off_loop_if_big(len(uri), _from_data_uri, uri, max_bytes=max_bytes, param=param)


async def _load_url(
    url: str, *, settings: Settings, param: str, gate: asyncio.Semaphore, budget: ByteBudget | None
) -> Attachment:
    async with gate:
        fetched = await fetch_url(
            url, max_bytes=settings.max_image_bytes, allow_private=settings.allow_private_urls, param=param,
            budget=budget,
        )
    return await _off_loop_if_big(len(fetched.data), _attachment, fetched.data, param=param, remote=True)


def label(param: str, index: int) -> str:
    """``messages[].content[image_url]``, 3 → ``messages[].content[image_url #3]`` (0-based, request order)."""
    return f"{param[:-1]} #{index}]" if param.endswith("]") else f"{param} #{index}"


def _precheck(refs: Sequence[str], settings: Settings, param: str) -> dict[str, str]:
    """Cheap checks before any work; returns each distinct reference with the label of its first use."""
    cap = settings.max_images_per_request
    if len(refs) > cap:
        raise InvalidRequest(
            f"{param}: at most {cap} images per request (max_images_per_request), got {len(refs)}", param=param
        )
    labels: dict[str, str] = {}
    for index, ref in enumerate(refs):
        labels.setdefault(ref, label(param, index))
    total_cap = REQUEST_BYTES_FACTOR * settings.max_image_bytes
    inline = 0
    for ref, name in labels.items():
        if ref.startswith("data:"):
            check_data_uri(ref, max_bytes=settings.max_image_bytes, param=name)
            inline += data_uri_size(ref)
        elif not ref.startswith(("http://", "https://")):
            raise InvalidRequest(f"{name}: expected a data: URI or an http(s) URL", param=name)
    if inline > total_cap:
        raise PayloadTooLarge(f"{param}: the request's images total more than {total_cap} bytes", param=param)
    return labels


def _first_error(group: BaseExceptionGroup, order: list[str]) -> BaseException:
    """The error to report from a TaskGroup's failures: a gateway error of the earliest image, else the first."""
    errors = list(group.exceptions)
    gateway = [e for e in errors if isinstance(e, GatewayError)]
    if not gateway:
        return errors[0]
    return min(gateway, key=lambda e: order.index(e.param) if e.param in order else len(order))


async def load_images(
    refs: Sequence[str], settings: Settings, *, param: str = DEFAULT_PARAM
) -> list[Attachment]:
    """Load one request's images (data URIs and http(s) URLs), one ``Attachment`` per reference, in order.

    A reference repeated is loaded once and its ``Attachment`` repeated (same ``name``: upload it once).
    Raises ``InvalidRequest`` (400: too many images, malformed reference, or the uniform ``FetchFailed`` for any
    URL that cannot be fetched, including the deadline) or ``PayloadTooLarge`` (413: data URIs too large).
    """
    labels = _precheck(refs, settings, param)
    if not labels:
        return []
    inline = sum(data_uri_size(ref) for ref in labels if ref.startswith("data:"))
    budget = ByteBudget(REQUEST_BYTES_FACTOR * settings.max_image_bytes - inline)
    gate = asyncio.Semaphore(settings.image_fetch_concurrency)
    tasks: dict[str, asyncio.Task[Attachment]] = {}
    try:
        async with asyncio.timeout(settings.image_fetch_deadline), asyncio.TaskGroup() as group:
            for ref, name in labels.items():
                load = (
                    _load_data_uri(ref, max_bytes=settings.max_image_bytes, param=name)
                    if ref.startswith("data:")
                    else _load_url(ref, settings=settings, param=name, gate=gate, budget=budget)
                )
                tasks[ref] = group.create_task(load)
    except TimeoutError:
        late = next((labels[ref] for ref, task in tasks.items() if task.cancelled()), param)
        log.info("image fetch: %s: deadline of %gs passed", late, settings.image_fetch_deadline)
        raise FetchFailed(late, "deadline") from None
    except BaseExceptionGroup as group:
        error = _first_error(group, list(labels.values()))
        if isinstance(error, FetchFailed):
            log.info("image fetch: %s: %s", error.param, error.reason)
        raise error from None
    return [tasks[ref].result() for ref in refs]


async def load_image(ref: str, *, max_bytes: int, allow_private: bool, param: str) -> Attachment:
    """One image without the per-request limits. Superseded by ``load_images``; kept for old callers."""
    if ref.startswith("data:"):
        return await _load_data_uri(ref, max_bytes=max_bytes, param=param)
    if not ref.startswith(("http://", "https://")):
        raise InvalidRequest(f"{param}: expected a data: URI or an http(s) URL", param=param)
    try:
        fetched = await fetch_url(ref, max_bytes=max_bytes, allow_private=allow_private, param=param)
        return await _off_loop_if_big(len(fetched.data), _attachment, fetched.data, param=param, remote=True)
    except FetchFailed as error:
        log.info("image fetch: %s: %s", param, error.reason)
        raise
