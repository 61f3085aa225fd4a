"""Chat completions with a video model (as older grok2api users know it): the last user message's text is the
prompt, an ``image_url`` part in it the reference image; the answer links the stored video and its poster.

Parameters: ``video_config`` {``aspect_ratio``, ``video_length`` | ``duration`` | ``seconds``, ``resolution`` |
``resolution_name``, ``preset``}, or the same as top-level fields (``aspect_ratio``, ``duration`` | ``seconds``,
``resolution``, ``preset``); ``video_config`` wins where both are given. Everything is checked before anything is
stored or sent (400 in OpenAI's shape).

The work is a video job of ``core/videos.py`` (``start_job`` + ``drive_job``: the same record, lease, failover,
charging and MP4 checks as ``POST /v1/videos``), always driven by this request, so it is also visible at
``GET /v1/videos/{id}``. Streaming: the role chunk, progress lines (``reasoning_content``, or ``<think>`` in the
content, per ``THINKING_OUTPUT``), SSE heartbeats while upstream is silent, the links, the finish chunk, [DONE];
a failure after the first byte is an OpenAI error event, then [DONE]. A failure before upstream accepted the job
(no account, refused upload) is still an HTTP error: the stream is only opened once the first progress arrived
or a heartbeat interval passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from api._errors import sse_error
from api._media import public_base
from api._openai_schemas import ChatCompletionRequest, ImagePart, TextPart
from api._sse import HEARTBEAT, EventStream, data
from core import ledger, video_queue
from core.answer import estimate_tokens
from core.attachments import Attachment, load_images
from core.catalog import VideoModelSpec
from core.errors import GatewayError, InvalidRequest
from core.gateway import Gateway
from core.media import MediaItem
from core.videos import (
    JobOutcome,
    VideoParams,
    drive_job,
    parse_params,
    size_for,
    start_job,
)

CONFIG_KEYS = {
    "aspect_ratio": "aspect_ratio",
    "video_length": "seconds", "duration": "seconds", "seconds": "seconds",
    "resolution": "resolution", "resolution_name": "resolution",
    "preset": "preset",
}
TOP_LEVEL = ("aspect_ratio", "duration", "seconds", "resolution", "resolution_name", "preset")
_encode = json.JSONEncoder(ensure_ascii=False).encode


def video_params(body: ChatCompletionRequest) -> tuple[VideoParams, str | None]:
    """The request → (video parameters, the reference image reference or None). Raises ``InvalidRequest``."""
    extra = body.model_extra or {}
    chosen: dict[str, tuple[object, str]] = {}  # our name -> (value, the field it came from)
    for key in TOP_LEVEL:
        if extra.get(key) not in (None, ""):
            chosen[CONFIG_KEYS[key]] = (extra[key], key)
    config = extra.get("video_config")
    if config is not None:
        if not isinstance(config, dict):
            raise InvalidRequest("`video_config` must be an object", param="video_config")
        for key, value in config.items():
            if key not in CONFIG_KEYS:
                raise InvalidRequest(f"`video_config.{key}` is not supported; it takes "
                                     f"{', '.join(CONFIG_KEYS)}", param=f"video_config.{key}")
            if value not in (None, ""):
                chosen[CONFIG_KEYS[key]] = (value, f"video_config.{key}")
    prompt, image = _last_user_message(body)
    aspect, aspect_param = chosen.get("aspect_ratio", (None, "aspect_ratio"))
    resolution, resolution_param = chosen.get("resolution", (None, "resolution"))
    seconds, seconds_param = chosen.get("seconds", (None, "seconds"))
    preset, preset_param = chosen.get("preset", (None, "preset"))
    size = extra.get("size")  # an OpenAI Videos size (``1280x720``) also works, instead of the two fields
    if size not in (None, "") and (aspect is not None or resolution is not None):
        raise InvalidRequest("send `size` or `aspect_ratio`/`resolution`, not both", param="size")
    if size in (None, ""):
        size = size_for(aspect, resolution, params=(aspect_param, resolution_param))
    if prompt is None or not prompt.strip():
        raise InvalidRequest("the last user message needs text: the video's prompt", param="messages")
    try:
        params = parse_params(prompt, seconds, size, preset, seconds_param=seconds_param)
    except InvalidRequest as exc:
        if exc.param == "preset":
            raise InvalidRequest(exc.message.replace("`preset`", f"`{preset_param}`"), param=preset_param) from None
        raise
    return params, image


def _last_user_message(body: ChatCompletionRequest) -> tuple[str | None, str | None]:
    message = next((m for m in reversed(body.messages) if m.role == "user"), None)
    if message is None:
        raise InvalidRequest("a video needs a user message (its text is the prompt)", param="messages")
    index = body.messages.index(message)
    if isinstance(message.content, str) or message.content is None:
        return message.content, None
    texts, images = [], []
    for part_index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            images.append(part.image_url.url)
        else:
            raise InvalidRequest(f"content part type `{part.type}` is not supported (use text or image_url)",
                                 param=f"messages[{index}].content[{part_index}].type")
    if len(images) > 1:
        raise InvalidRequest("one reference image per video", param=f"messages[{index}].content")
    return "\n".join(texts), images[0] if images else None


def render_links(fmt: str, video: str, poster: str | None) -> str:
    """The answer's text: VIDEO_FORMAT ``markdown`` (links), ``html`` (a <video> tag) or ``url``."""
    if fmt == "html":
        attr = f' poster="{poster}"' if poster else ""
        return (f'<video controls="controls" preload="none"{attr}>\n  <source src="{video}" type="video/mp4">\n'
                "</video>")
    if fmt == "url":
        return video
    text = f"[video]({video})"
    return text + f"\n\n[![poster]({poster})]({video})" if poster else text


async def chat_video(
    body: ChatCompletionRequest, request: Request, gw: Gateway, spec: VideoModelSpec
) -> JSONResponse | EventStream:
    params, ref = video_params(body)
    image = (await load_images([ref], gw.settings, param="messages"))[0] if ref else None
    return await VideoCompletion(gw, body, spec, params, image, public_base(request, gw.settings)).start()


class VideoCompletion:
    """One video job rendered as an OpenAI chat completion, whole or streamed."""

    def __init__(self, gw: Gateway, body: ChatCompletionRequest, spec: VideoModelSpec, params: VideoParams,
                 image: Attachment | None, base: str) -> None:
        self.gw, self.body, self.spec, self.params, self.image, self.base = gw, body, spec, params, image, base
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.progress: asyncio.Queue[int] = asyncio.Queue()
        self.prompt_tokens = estimate_tokens(params.prompt)
        self.task: asyncio.Task[JobOutcome] | None = None

    async def start(self) -> JSONResponse | EventStream:
        settings = self.gw.settings
        self.gw.media.check_available()  # no bucket where one is needed: say so before any quota is spent
        jobs = video_queue.jobs_of(self.gw)
        job = await start_job(jobs, self.spec, self.params, timeout=settings.video_timeout,
                              ttl=settings.video_job_ttl, source="chat", owner=ledger.requester())
        service = video_queue.service_of(self.gw)
        self.task = asyncio.create_task(drive_job(jobs, service, self.spec, job["id"], self.params, self.image,
                                                  settings.video_timeout, self.progress.put))
        if not self.body.stream:
            return JSONResponse(self.completion(self._text(await self.task)))
        try:  # until upstream took the job: a refusal before that is still an HTTP error
            waiter = asyncio.ensure_future(self.progress.get())
            done, _ = await asyncio.wait({self.task, waiter}, timeout=settings.heartbeat_interval,
                                         return_when=asyncio.FIRST_COMPLETED)
            first = waiter.result() if waiter in done else None
            waiter.cancel()
            if self.task in done and first is None:
                outcome = self.task.result()
                if outcome.error is not None:
                    raise outcome.error
        except BaseException:
            await self._stop()
            raise
        return EventStream(self.sse(first))

    def _text(self, outcome: JobOutcome) -> str:
        if outcome.out is None:
            raise outcome.error or GatewayError("the video could not be generated")
        return render_links(self.gw.settings.video_format, self._url(outcome.out.video),
                            self._url(outcome.out.poster) if outcome.out.poster else None)

    def _url(self, item: MediaItem) -> str:
        return self.gw.media.url(item, base_url=self.base)

    def usage(self, text: str) -> dict[str, Any]:
        completion = estimate_tokens(text)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}

    def completion(self, text: str) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.body.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(text),
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return data(_encode({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.body.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }).encode())

    def progress_chunk(self, value: int, *, first: bool) -> bytes | None:
        line = f"Generating video: {value}%\n"
        mode = self.gw.settings.thinking_output
        if mode == "separate":
            return self.chunk({"reasoning_content": line})
        if mode == "inline":
            return self.chunk({"content": ("<think>\n" if first else "") + line})
        return None

    async def sse(self, first: int | None) -> AsyncIterator[bytes]:
        assert self.task is not None
        settings = self.gw.settings
        shown = 0  # progress lines sent (inline mode closes its <think> after them)
        try:
            yield self.chunk({"role": "assistant", "content": ""})
            pending = [first] if first is not None else []
            while True:
                for value in pending:
                    frame = self.progress_chunk(value, first=shown == 0)
                    if frame is not None:
                        shown += 1
                        yield frame
                pending = []
                if self.task.done() and self.progress.empty():
                    break
                waiter = asyncio.ensure_future(self.progress.get())
                done, _ = await asyncio.wait({self.task, waiter}, timeout=settings.heartbeat_interval,
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    pending = [waiter.result()]
                else:
                    waiter.cancel()
                    if not done:
                        yield HEARTBEAT
            try:
                text = self._text(self.task.result())
            except GatewayError as exc:  # upstream failed mid-way: say so in OpenAI's shape, never end silently
                yield sse_error(exc)
            else:
                if shown and settings.thinking_output == "inline":
                    text = "\n</think>\n\n" + text
                yield self.chunk({"content": text})
                yield self.chunk({}, finish_reason="stop")
                if self.body.stream_options is not None and self.body.stream_options.include_usage:
                    yield data(_encode({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                        "model": self.body.model, "system_fingerprint": None, "choices": [],
                                        "usage": self.usage(text)}).encode())
        finally:
            await self._stop()  # the client went away (or we are done): nothing outlives the request
        yield data(b"[DONE]")

    async def _stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task
