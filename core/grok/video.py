"""Grok video generation (protocol §8.3): request bodies, the media post, the stream, the MP4 download.

Text to video is the current dialect (D5, ``mediaGenInput.textToVideo``, no media post). Image to video is the
D4 browser shape: the image is uploaded (v2, Imagine ``file_source``), a ``MEDIA_POST_TYPE_IMAGE`` post is made
from its assets URL, and ``conversations/new`` with ``modelName: imagine-video-gen`` carries the image URL in the
message, the upload in ``fileAttachments`` and ``videoGenModelConfig`` with the post as ``parentPostId``.

``read_stream`` turns the chat events into progress callbacks and the final (video URL, poster URL); a stream
that ends without a URL, with a fatal error or with a moderated result raises. ``open_asset`` streams a file
from the assets host with the account's cookies (direct links 403 for strangers).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from curl_cffi.requests.exceptions import RequestException

from core.chat import stream_error
from core.errors import FailureKind, UpstreamError
from core.grok.classify import classify
from core.grok.client import Credentials, GrokClient, _json_body, _network_error, _read_capped
from core.grok.events import FinalMessage, StreamError, VideoProgress

MODE_FLAG = "custom"  # §8.3 presets: custom is the default (the prompt is used as given)


class VideoModerated(UpstreamError):
    """Upstream finished the video but moderated it: charged, no usable file."""

    def __init__(self) -> None:
        super().__init__(FailureKind.BAD_REQUEST, "grok.com moderated the generated video")


@dataclass(frozen=True, slots=True)
class VideoResult:
    video_url: str
    poster_url: str | None
    video_id: str
    post_id: str = ""  # what the next extension round extends (§8.3: fileAttachments[0], else the video id)


EXTENSION_SECONDS = 10  # each extension round adds this much (D2 rounds are 6 or 10 s)


def rounds_for(seconds: int, single_max: int) -> list[int]:
    """A clip's length → the upstream calls' lengths: one call up to ``single_max`` seconds, else a first call
    and extension rounds of ``EXTENSION_SECONDS`` each (``[6, 10]`` for 16 s, ``[10, 10, 10]`` for 30 s)."""
    if seconds <= single_max:
        return [seconds]
    extensions = -(-(seconds - single_max) // EXTENSION_SECONDS)
    return [seconds - extensions * EXTENSION_SECONDS] + [EXTENSION_SECONDS] * extensions


def extension_payload(
    prompt: str, *, mode: str, aspect_ratio: str, resolution: str, start: float, seconds: int,
    extend_post_id: str, original_post_id: str,
) -> dict[str, Any]:
    """D2 (PY-2026-03) extension round: continue the clip ``extend_post_id`` from ``start`` seconds, stitched."""
    return {
        "temporary": True,
        "modelName": "grok-3",
        "modelMode": "MODEL_MODE_FAST",
        "message": f"{prompt} --mode={mode}",
        "toolOverrides": {"videoGen": True},
        "enableSideBySide": True,
        "responseMetadata": {"experiments": [], "modelConfigOverride": {"modelMap": {"videoGenModelConfig": {
            "isVideoExtension": True, "videoExtensionStartTime": float(start), "extendPostId": extend_post_id,
            "stitchWithExtendPostId": True, "originalPrompt": prompt, "originalPostId": original_post_id,
            "originalRefType": "ORIGINAL_REF_TYPE_VIDEO_EXTENSION", "mode": mode, "aspectRatio": aspect_ratio,
            "videoLength": seconds, "resolutionName": resolution, "parentPostId": extend_post_id,
            "isVideoEdit": False,
        }}}},
    }


def text_payload(
    prompt: str, *, aspect_ratio: str, seconds: int, resolution: str, mode: str = MODE_FLAG
) -> dict[str, Any]:
    """D5 (GO-HEAD, 2026-08): text to video, no media post. ``mode``: the preset's flag (§8.3)."""
    return {
        "modelName": "imagine-video-gen",
        "message": f"{prompt} --mode={mode}",
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "responseMetadata": {"experiments": [], "modelConfigOverride": {"modelMap": {}}},
        "mediaGenInput": {"textToVideo": {
            "prompt": prompt, "aspectRatio": aspect_ratio, "duration": seconds, "resolutionName": resolution,
        }},
        "kind": "CONVERSATION_KIND_IMAGINE",
    }


def image_payload(
    prompt: str, *, image_url: str, file_id: str, post_id: str, aspect_ratio: str, seconds: int, resolution: str,
    mode: str = MODE_FLAG,
) -> dict[str, Any]:
    """D4 (browser, 2026-07): image to video over a parent image post."""
    return {
        "temporary": True,
        "modelName": "imagine-video-gen",
        "message": f"{image_url}  {prompt} --mode={mode}".replace("   ", "  "),
        "enableSideBySide": True,
        "fileAttachments": [file_id],
        "responseMetadata": {"experiments": [], "modelConfigOverride": {"modelMap": {"videoGenModelConfig": {
            "aspectRatio": aspect_ratio, "videoLength": seconds, "resolutionName": resolution,
            "parentPostId": post_id,
        }}}},
    }


def assets_url(client: GrokClient, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return client.settings.grok_assets_url.rstrip("/") + "/" + path.lstrip("/")


async def create_image_post(client: GrokClient, creds: Credentials, media_url: str) -> str:
    """``POST /rest/media/post/create`` for a reference image → the post id (refused → ``UpstreamError``)."""
    response = await client._request(
        "POST", client.url("/rest/media/post/create"), what="media post",
        headers=client.headers(creds, referer="/imagine"),
        json={"mediaType": "MEDIA_POST_TYPE_IMAGE", "mediaUrl": media_url},
        limit=client.settings.connect_timeout + 30,
    )
    post = _json_body(response, "media post").get("post")
    post_id = post.get("id") if isinstance(post, dict) else None
    if not post_id:
        raise UpstreamError(FailureKind.SERVER, "grok.com media post answer carries no post id")
    return str(post_id)


_GENERATED = re.compile(r"/generated/([0-9a-fA-F-]{8,})/")


def video_uuid(result: VideoResult) -> str:
    """The ``videoId`` upscale wants: the UUID in ``/generated/<uuid>/`` of the video URL (§8.3), else the
    stream's own video id."""
    match = _GENERATED.search(result.video_url)
    return match.group(1) if match else result.video_id


async def upscale(client: GrokClient, creds: Credentials, video_id: str) -> str:
    """``POST /rest/media/video/upscale {"videoId"}`` → the HD file's URL (``hdMediaUrl``): how a Basic account,
    which has no 720p product, gets a 720p clip from its 480p one (§8.3)."""
    response = await client._request(
        "POST", client.url("/rest/media/video/upscale"), what="video upscale",
        headers=client.headers(creds, referer="/imagine"), json={"videoId": video_id},
        limit=client.settings.connect_timeout + 60,
    )
    url = _json_body(response, "video upscale").get("hdMediaUrl")
    if not isinstance(url, str) or not url:
        raise UpstreamError(FailureKind.SERVER, "grok.com upscale answer carries no hdMediaUrl")
    return url


async def read_stream(
    events: AsyncIterator[object], on_progress: Callable[[int], Awaitable[None]]
) -> VideoResult:
    """The video stream → its result. Completion = a progress line with a video URL that is not moderated."""
    result: VideoResult | None = None
    moderated = False
    attachments: tuple[str, ...] = ()
    async for event in events:
        if isinstance(event, StreamError):
            if event.fatal:
                raise stream_error(event)
        elif isinstance(event, VideoProgress):
            if event.moderated:
                moderated = True
            elif event.url and (event.url.split("?")[0].endswith(".mp4") or "/content" in event.url):
                result = VideoResult(event.url, event.thumbnail_url, event.video_id)
            if result is None and not moderated:
                await on_progress(max(0, min(int(event.progress), 99)))
        elif isinstance(event, FinalMessage):
            if event.stream_errors:
                raise UpstreamError(FailureKind.STREAM,
                                    f"grok.com reported: {'; '.join(event.stream_errors)[:300]}")
            attachments = event.file_attachments or attachments
    if result is not None:
        return replace(result, post_id=attachments[0] if attachments else result.video_id)
    if moderated:
        raise VideoModerated()
    raise UpstreamError(FailureKind.STREAM, "grok.com finished without a video")


async def open_asset(
    client: GrokClient, creds: Credentials, url: str, *, what: str = "video download"
) -> tuple[Any, AsyncIterator[bytes]]:
    """A streamed GET of a generated file: the assets host (and grok.com) with the account's cookies, any other
    https host (imagine-public) without them. The caller closes the response (``await response.aclose()``)."""
    settings = client.settings
    url = assets_url(client, url)
    own = {urlsplit(settings.grok_base_url).netloc, urlsplit(settings.grok_assets_url).netloc}
    headers = client.headers(creds, content_type=None, statsig=False) if urlsplit(url).netloc in own else {
        "User-Agent": creds.user_agent or settings.user_agent}
    headers["Accept"] = "video/mp4,*/*"
    try:
        async with asyncio.timeout(settings.first_byte_timeout):
            response = await client.session.request(
                "GET", url, headers=headers, stream=True,
                timeout=(settings.connect_timeout, settings.stream_idle_timeout),
            )
    except TimeoutError:
        raise UpstreamError(FailureKind.TIMEOUT, f"the {what} sent no headers in time") from None
    except RequestException as exc:
        raise _network_error(exc, what) from None
    if response.status_code != 200:
        try:
            body = await _read_capped(response)
        finally:
            await response.aclose()
        raise classify(response.status_code, dict(response.headers), body, what=what)
    return response, response.aiter_content()
