"""Grok Imagine: the image WebSocket (``/ws/imagine/listen``, protocol §9) and the image edit dialect (§8.2).

``generate`` opens the Imagine WebSocket with the account's cookies (like the mgw chat socket: Origin, User-Agent,
``sso``/``sso-rw``/Cloudflare cookies, ``x-userid``; no statsig), sends the reset and request frames and reads the
interleaved frames of every job into typed events: ``Partial`` previews, ``Final`` images (bytes: the 100 % frame's
base64 blob, else the image fetched from the frame's URL), ``Moderated`` jobs. Parsing is lenient: unknown frames
and fields are skipped. Every wait is bounded (handshake, idle silence, one overall deadline).

``edit`` uploads nothing itself: it takes ``fileMetadataId``s (``upload``: v2 multipart with the Imagine
``file_source``) and streams ``conversations/new`` with ``modelName: imagine-image-edit`` and
``mediaGenInput.imageToImage``; results come back as the chat parser's ``ImageProgress`` / ``FinalMessage``.

Both raise ``UpstreamError`` before anything was accepted when grok.com refuses, so callers can fail over; the
``accepted`` flag of the ``Progress`` they are given says whether upstream took (and so charged) the request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from curl_cffi import CurlMime, CurlWsFlag
from curl_cffi.curl import CurlError
from curl_cffi.requests.exceptions import RequestException

from core.attachments import sniff_image
from core.errors import FailureKind, UpstreamError
from core.grok.classify import classify
from core.grok.client import (
    ChatCall,
    Credentials,
    GrokClient,
    UploadedFile,
    _json_body,
    _network_error,
    _plain,
    _read_capped,
    ndjson_events,
)
from core.grok.events import Event, StreamError

IMAGINE_FILE_SOURCE = "IMAGINE_SELF_UPLOAD_FILE_SOURCE"
OVERALL_CAP = 180.0  # seconds: gateways give up on an Imagine request after 60–180 s (§9)


@dataclass(slots=True)
class Progress:
    """Shared with the caller: whether upstream accepted (and so charged) the request, and what it produced."""

    accepted: bool = False


@dataclass(frozen=True, slots=True)
class Partial:
    """A preview of job ``index`` (``percentage`` < 100), base64 JPEG as upstream sent it."""

    index: int
    job_id: str
    b64: str
    percentage: float


@dataclass(frozen=True, slots=True)
class Final:
    index: int
    job_id: str
    data: bytes
    mime: str
    width: int | None = None
    height: int | None = None
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Moderated:
    index: int
    job_id: str


ImagineEvent = Partial | Final | Moderated


@dataclass(slots=True)
class _Job:
    index: int
    final: bytes | None = None
    url: str | None = None
    done: bool = False
    moderated: bool = False
    width: int | None = None
    height: int | None = None
    prompt: str | None = None
    emitted: bool = False


@dataclass(slots=True)
class ImagineRequest:
    prompt: str
    count: int
    aspect_ratio: str | None = None
    pro: bool = False
    nsfw: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        properties: dict[str, Any] = {
            "section_count": 0,
            "is_kids_mode": False,
            "enable_nsfw": self.nsfw,
            "skip_upsampler": False,
            "enable_side_by_side": True,
            "is_initial": False,
            "aspect_ratio": self.aspect_ratio or "1:1",
            "enable_pro": self.pro,
            "num_generations": self.count,
        }
        reset = {"type": "conversation.item.create", "timestamp": now,
                 "item": {"type": "message", "content": [{"type": "reset"}]}}
        request = {"type": "conversation.item.create", "timestamp": now, "item": {"type": "message", "content": [{
            "requestId": str(uuid.uuid4()), "text": self.prompt, "type": "input_text", "properties": properties,
        }]}}
        return [reset, request]


async def generate(
    client: GrokClient, creds: Credentials, request: ImagineRequest, progress: Progress
) -> AsyncIterator[ImagineEvent]:
    """One Imagine WebSocket request: yields ``Partial`` previews as they arrive, then each job's ``Final`` or
    ``Moderated`` as it completes; returns when every requested job has finished. Jobs still unfinished when the
    socket falls silent for ``stream_idle_timeout`` are dropped if at least one image arrived, else it is a
    timeout (after upstream accepted: charged)."""
    settings = client.settings
    try:
        user_id: str | None = await client.user_id(creds)
    except UpstreamError as exc:
        if exc.kind in (FailureKind.UNAUTHORIZED, FailureKind.BLOCKED, FailureKind.CLOUDFLARE):
            raise
        user_id = None  # x-userid is a courtesy on this socket; the handshake gates on sso
    creds_uid = replace(creds, user_id=user_id) if user_id else creds
    try:
        ws = await client.open_ws(creds_uid, settings.grok_imagine_ws_url, what="Imagine")
    except UpstreamError as error:
        if error.kind is not FailureKind.CLOUDFLARE:
            raise
        raise await _account_or_egress(client, creds, error) from None

    jobs: dict[str, _Job] = {}
    finished = 0
    try:
        for frame in request.frames():
            await ws.send_str(json.dumps(frame))
        deadline = time.monotonic() + min(settings.request_timeout, OVERALL_CAP)
        while finished < request.count:
            remaining = min(settings.stream_idle_timeout, deadline - time.monotonic())
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    raw, flags = await ws.recv()
            except TimeoutError:
                if any(job.emitted for job in jobs.values()):
                    return  # the rest went silent ("blocked" previews): keep what arrived
                what = "stalled" if remaining > 0 else "ran past the time limit"
                raise UpstreamError(FailureKind.TIMEOUT, f"Imagine WebSocket {what} before any image") from None
            except CurlError as exc:
                if any(job.emitted for job in jobs.values()):
                    return
                raise UpstreamError(FailureKind.STREAM, _plain(exc, "Imagine WebSocket", mid_answer=True)) from None
            if flags & CurlWsFlag.CLOSE:
                if any(job.emitted for job in jobs.values()):
                    return
                raise UpstreamError(FailureKind.STREAM, "grok.com closed the Imagine WebSocket before any image")
            if not flags & (CurlWsFlag.TEXT | CurlWsFlag.BINARY):
                continue
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind == "error":
                raise _frame_error(frame, progress)
            job_id = _str(frame.get("job_id")) or _str(frame.get("image_id"))
            if kind not in ("json", "image") or not job_id:
                continue  # session, input_scroll acks, anything new
            progress.accepted = True
            job = jobs.get(job_id)
            if job is None:
                if len(jobs) >= request.count:
                    continue  # more jobs than asked for: not ours to deliver
                job = jobs[job_id] = _Job(index=len(jobs))
            if job.done:
                continue
            job.width = _int(frame.get("width")) or job.width
            job.height = _int(frame.get("height")) or job.height
            if isinstance(frame.get("full_prompt"), str):
                job.prompt = frame["full_prompt"]
            if isinstance(frame.get("url"), str) and frame["url"]:
                job.url = frame["url"]
            blob = frame.get("blob")
            percentage = _float(frame.get("percentage_complete"))
            if kind == "image" and isinstance(blob, str) and blob:
                if percentage is None or percentage >= 100:
                    job.final = _b64(blob)
                else:
                    yield Partial(job.index, job_id, blob, percentage)
            if kind == "json" and frame.get("current_status") == "completed":
                job.done = True
                finished += 1
                if frame.get("moderated") is True:
                    job.moderated = True
                    job.emitted = True
                    yield Moderated(job.index, job_id)
                    continue
                if isinstance(blob, str) and blob and job.final is None:
                    job.final = _b64(blob)
                data = job.final
                if not data and job.url:
                    data = await fetch_image(client, creds, job.url)
                if not data or sniff_image(data) is None:
                    job.emitted = True
                    continue  # completed without a usable image: dropped like a moderated one
                job.emitted = True
                yield Final(job.index, job_id, data, sniff_image(data) or "image/jpeg", job.width, job.height,
                            job.prompt)
    finally:
        try:
            await ws.close(timeout=1.0)
        except Exception:  # closing a dead socket must not mask the real outcome
            pass


async def _account_or_egress(client: GrokClient, creds: Credentials, error: UpstreamError) -> UpstreamError:
    """A 403 handshake is a Cloudflare challenge or a blocked account, and the socket does not say which: ask
    the session endpoint once (uncached). A blocked or logged-out account is then the account's failure (fail
    over); otherwise it stays an egress problem."""
    try:
        response = await client._request(
            "GET", client.url("/api/auth/session"), what="auth session",
            headers=client.headers(creds, content_type=None, statsig=False),
            limit=client.settings.connect_timeout + 10,
        )
        status = str(_json_body(response, "auth session").get("status", "")).lower()
    except UpstreamError as probe:
        return probe if probe.kind in (FailureKind.BLOCKED, FailureKind.UNAUTHORIZED) else error
    if status == "blocked":
        return UpstreamError(FailureKind.BLOCKED, "grok.com session is blocked", upstream_status=403)
    if status == "unauthenticated":
        return UpstreamError(FailureKind.UNAUTHORIZED, "grok.com session is unauthenticated", upstream_status=401)
    return error


async def fetch_image(client: GrokClient, creds: Credentials, url: str) -> bytes | None:
    """An image a frame links to: grok.com's own hosts with the account's cookies (direct links 403), any other
    https host (imagine-public) without them. Relative paths are on the assets host. None when it fails."""
    settings = client.settings
    if not url.startswith(("http://", "https://")):
        url = settings.grok_assets_url.rstrip("/") + "/" + url.lstrip("/")
    own = {urlsplit(settings.grok_base_url).netloc, urlsplit(settings.grok_assets_url).netloc}
    host = urlsplit(url).netloc
    headers = client.headers(creds, content_type=None, statsig=False) if host in own else {
        "User-Agent": creds.user_agent or settings.user_agent, "Accept": "image/*"}
    try:
        response = await client._request("GET", url, what="image download", headers=headers,
                                         limit=settings.connect_timeout + 30)
    except UpstreamError:
        return None
    return response.content or None


# -- image edit (§8.2, Aug 2026 dialect) ---------------------------------------------------------------------------


async def upload(client: GrokClient, creds: Credentials, *, name: str, mime: str, data: bytes) -> UploadedFile:
    """v2 multipart upload marked as an Imagine upload (``file_source``, Referer ``/imagine``); the edit needs the
    ``fileMetadataId``."""
    part = CurlMime()
    part.addpart(name="file", filename=name, content_type=mime, data=data)
    part.addpart(name="file_source", data=IMAGINE_FILE_SOURCE.encode())
    try:
        response = await client._request(
            "POST", client.url("/http/upload-file-v2/direct"), what="upload",
            headers=client.headers(creds, referer="/imagine", content_type=None, request_id=False),
            multipart=part, limit=client.settings.connect_timeout + 60,
        )
    finally:
        part.close()
    body = _json_body(response, "upload")
    if body.get("terminalError"):
        raise UpstreamError(FailureKind.BAD_REQUEST, f"grok.com rejected the upload: {body['terminalError']}")
    meta = body.get("fileMetadata") if isinstance(body.get("fileMetadata"), dict) else body
    file_id = meta.get("fileMetadataId") or meta.get("fileId")
    if not file_id:
        raise UpstreamError(FailureKind.SERVER, "grok.com upload answer carries no fileMetadataId")
    return UploadedFile(file_id=str(file_id), uri=str(meta.get("fileUri", "")))


def edit_payload(prompt: str, file_ids: list[str], aspect_ratio: str | None) -> dict[str, Any]:
    image_to_image: dict[str, Any] = {"prompt": prompt, "inputAssets": list(file_ids)}
    if aspect_ratio:
        image_to_image["aspectRatio"] = aspect_ratio
    return {
        "modelName": "imagine-image-edit",
        "message": prompt,
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "mediaGenInput": {"imageToImage": image_to_image},
    }


def chat_image_payload(client: GrokClient, prompt: str, count: int) -> dict[str, Any]:
    """The in-chat image dialect (§8.2, D1–D4): a plain ``conversations/new`` turn in mode fast with image
    generation on, ``imageGenerationCount`` (at most 2 per call) and ``toolOverrides.imageGen``."""
    payload = client.rest_payload(ChatCall(message=prompt, mode="fast", disable_search=True,
                                           image_generation_count=count))
    payload["toolOverrides"] = {"imageGen": True}
    return payload


def edit(
    client: GrokClient, creds: Credentials, payload: dict[str, Any], progress: Progress
) -> AsyncIterator[Event]:
    """Stream one edit (``conversations/new``, Referer ``/imagine``) as chat events."""
    return stream_conversation(client, creds, payload, progress, referer="/imagine", what="image edit")


async def stream_conversation(
    client: GrokClient, creds: Credentials, payload: dict[str, Any], progress: Progress, *, referer: str, what: str
) -> AsyncIterator[Event]:
    """``POST /rest/app-chat/conversations/new`` with ``payload``, as chat events. A non-200 answer raises before
    anything is accepted; once the 200 stream starts, upstream has charged the call."""
    settings = client.settings
    try:
        async with asyncio.timeout(settings.first_byte_timeout):
            response = await client.session.request(
                "POST", client.url("/rest/app-chat/conversations/new"),
                headers=client.headers(creds, referer=referer), json=payload, stream=True,
                timeout=(settings.connect_timeout, settings.stream_idle_timeout),
            )
    except TimeoutError:
        raise UpstreamError(
            FailureKind.TIMEOUT, f"grok.com sent no response headers within {settings.first_byte_timeout:g}s"
        ) from None
    except RequestException as exc:
        raise _network_error(exc, what) from None
    try:
        if response.status_code != 200:
            body = await _read_capped(response)
            raise classify(response.status_code, dict(response.headers), body, what=what)
        progress.accepted = True
        async for event in ndjson_events(response, settings, overall=min(settings.request_timeout, OVERALL_CAP)):
            yield event
    finally:
        await response.aclose()


def _frame_error(frame: dict[str, Any], progress: Progress) -> UpstreamError:
    code = _str(frame.get("err_code")) or "error"
    message = _str(frame.get("err_msg")) or "Imagine request failed"
    if code in ("rate_limit_exceeded", "resource_exhausted"):
        return UpstreamError(FailureKind.RATE_LIMITED, f"grok.com Imagine: {message}", upstream_status=429)
    if code == "permission_denied":  # the product is not available on this account's plan
        return UpstreamError(FailureKind.RATE_LIMITED, f"grok.com Imagine: {message}", upstream_status=403,
                             quota_exhausted=True)
    if code == "unauthenticated":
        return UpstreamError(FailureKind.UNAUTHORIZED, f"grok.com Imagine: {message}", upstream_status=401)
    event = StreamError(message=message, code=code)
    if event.is_anti_bot:
        return UpstreamError(FailureKind.ANTI_BOT, f"grok.com Imagine rejected the request: {message}")
    progress.accepted = True  # an error after admission: upstream charged the request
    return UpstreamError(FailureKind.STREAM, f"grok.com Imagine reported an error: {message} ({code})")


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
