"""OpenAI Images API over Grok Imagine: ``POST /v1/images/generations`` and ``POST /v1/images/edits``.

Everything a request could get wrong is checked before anything is sent upstream (model, prompt, ``n``, size /
aspect ratio, response format, uploads). Images leave as links to the media store (``response_format: url``, the
default) or inline base64 (``b64_json``); ``stream: true`` sends OpenAI's image events
(``image_generation.partial_image`` per preview, ``image_generation.completed`` per image). Moderated images are
dropped: the answer holds fewer items and says how many (``moderated_count``); when every image was moderated
it is a 400 ``content_policy_violation``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from api._access import client_auth
from api._deps import gateway
from api._errors import sse_error, validation_error
from api._media import public_base
from api._sse import HEARTBEAT, EventStream
from core.aio import with_heartbeats
from core.attachments import EXTENSIONS, Attachment, load_images, sniff_image
from core.catalog import ImageModelSpec
from core.errors import GatewayError, InvalidRequest, PayloadTooLarge
from core.gateway import Gateway
from core.images import (
    MAX_EDIT_IMAGES,
    MAX_IMAGES,
    BatchFailed,
    DoneImage,
    ImageOut,
    ImageResult,
    ImageService,
    ModeratedImage,
    PartialImage,
)

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1/images", dependencies=[Depends(client_auth)], tags=["images"])

# OpenAI sizes → Imagine aspect ratios (§9); "auto" lets upstream choose.
SIZES: dict[str, str] = {
    "1024x1024": "1:1",
    "1280x720": "16:9",
    "720x1280": "9:16",
    "1792x1024": "3:2",
    "1536x1024": "3:2",
    "1024x1792": "2:3",
    "1024x1536": "2:3",
    "auto": "auto",
}
ASPECT_RATIOS = (
    "auto", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "2:1", "1:2", "19.5:9", "9:19.5", "20:9", "9:20",
)
MAX_PARTIAL_IMAGES = 3
MAX_PARTS = 64  # multipart parts per edit request


class ContentPolicyViolation(InvalidRequest):
    code = "content_policy_violation"


class _ImageParams(BaseModel):
    """Shared by generations and edits. ``quality``, ``style``, ``moderation`` and ``user`` are accepted and have
    no effect (Grok Imagine has no such knobs); ``background``/``output_format`` only take what Grok returns."""

    model_config = ConfigDict(extra="allow")

    prompt: str | None = None
    model: str | None = None
    n: int | None = None
    size: str | None = None
    aspect_ratio: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    stream: bool = False
    partial_images: int | None = None
    user: str | None = None
    quality: str | None = None
    style: str | None = None
    moderation: str | None = None
    background: str | None = None
    output_format: str | None = None

    def check(self) -> None:
        if self.prompt is None:
            raise InvalidRequest("`prompt` is required", param="prompt")
        if not self.prompt.strip():
            raise InvalidRequest("`prompt` must not be empty", param="prompt")
        if self.n is not None and not 1 <= self.n <= MAX_IMAGES:
            raise InvalidRequest(f"`n` must be between 1 and {MAX_IMAGES}, got {self.n}", param="n")
        if self.partial_images is not None and not 0 <= self.partial_images <= MAX_PARTIAL_IMAGES:
            raise InvalidRequest(f"`partial_images` must be between 0 and {MAX_PARTIAL_IMAGES}", param="partial_images")
        if self.background not in (None, "auto", "opaque"):
            raise InvalidRequest("`background`: Grok Imagine images are opaque (`auto` or `opaque`)", param="background")
        if self.output_format not in (None, "jpeg", "jpg"):
            raise InvalidRequest("`output_format`: Grok Imagine returns JPEG images (`jpeg`)", param="output_format")
        if self.stream and self.response_format == "url":
            raise InvalidRequest("a streamed answer carries images as `b64_json`; drop `response_format: url` or "
                                 "`stream`", param="response_format")
        self.aspect()

    def aspect(self) -> str | None:
        """The Imagine aspect ratio asked for (None = not asked)."""
        from_size: str | None = None
        if self.size is not None:
            from_size = SIZES.get(self.size.strip().lower())
            if from_size is None:
                raise InvalidRequest(
                    f"unsupported `size` {self.size!r}; supported: {', '.join(SIZES)} (or pass `aspect_ratio`: "
                    f"{', '.join(ASPECT_RATIOS)})", param="size",
                )
        if self.aspect_ratio is not None:
            ratio = self.aspect_ratio.strip()
            if ratio not in ASPECT_RATIOS:
                raise InvalidRequest(
                    f"unsupported `aspect_ratio` {self.aspect_ratio!r}; supported: {', '.join(ASPECT_RATIOS)}",
                    param="aspect_ratio",
                )
            if from_size is not None and from_size != ratio:
                raise InvalidRequest(f"`size` {self.size} is {from_size}, which contradicts `aspect_ratio` {ratio}",
                                     param="aspect_ratio")
            return ratio
        return from_size

    @property
    def count(self) -> int:
        return self.n or 1


class ImageGenerationRequest(_ImageParams):
    pass


class ImageEditRequest(_ImageParams):
    """JSON form: ``images`` (``[{"image_url": ...}]`` or strings) and/or ``image`` (a string or a list)."""

    images: list[Any] | None = None
    image: Any = None
    mask: Any = None


# -- routes -------------------------------------------------------------------------------------------------------

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
_UPSTREAM = {
    429: {"description": "No pooled account has this image product left right now, or grok.com rate-limited "
                         "the request (see Retry-After)", "content": _ERROR},
    502: {"description": "grok.com failed or refused the request", "content": _ERROR},
    504: {"description": "grok.com did not answer in time", "content": _ERROR},
}
_STREAM_OK = {200: {"description": "The images; with `stream: true` OpenAI's image events",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


@router.post("/generations", response_model=None, responses={**_STREAM_OK, **_UPSTREAM})
async def generations(
    body: ImageGenerationRequest, request: Request, gw: Gateway = Depends(gateway)
) -> JSONResponse | EventStream:
    body.check()
    spec = gw.catalog.resolve_image(body.model, operation="generate")
    service = ImageService(gw.settings, gw.pool, gw.client)
    prompt = body.prompt.strip() if body.prompt else ""
    if body.stream:
        partials = body.partial_images or 0
        events = service.generate_events(spec, prompt, body.count, aspect_ratio=body.aspect(), partials=partials)
        return EventStream(_stream(gw, body, events))
    result = await service.generate(spec, prompt, body.count, aspect_ratio=body.aspect())
    return JSONResponse(await _answer(gw, request, body, spec, result, prompt))


_EDIT_FIELDS = {
    "prompt": {"type": "string"},
    "model": {"type": "string", "default": "grok-imagine-image-edit"},
    "n": {"type": "integer", "minimum": 1, "maximum": MAX_IMAGES},
    "size": {"type": "string", "enum": list(SIZES)},
    "aspect_ratio": {"type": "string", "enum": list(ASPECT_RATIOS)},
    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
    "user": {"type": "string"},
}
_EDIT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image", "prompt"], "properties": {
            **_EDIT_FIELDS,
            "image": {"anyOf": [{"type": "string", "format": "binary"},
                                {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "maxItems": MAX_EDIT_IMAGES}]},
            "image[]": {"type": "array", "items": {"type": "string", "format": "binary"},
                        "maxItems": MAX_EDIT_IMAGES},
            "mask": {"type": "string", "format": "binary", "description": "not supported: a 400"},
        }}},
        "application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": {
            **_EDIT_FIELDS,
            "images": {"type": "array", "maxItems": MAX_EDIT_IMAGES, "items": {
                "type": "object", "properties": {"image_url": {"type": "string"}}}},
            "image": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        }}},
    },
}


@router.post("/edits", response_model=None, responses=_UPSTREAM, openapi_extra={"requestBody": _EDIT_BODY})
async def edits(request: Request, gw: Gateway = Depends(gateway)) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        body, images = await _read_multipart(request, content_type, gw)
    elif content_type.lower().startswith("application/x-www-form-urlencoded"):  # a form without files
        fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        _form_fields(fields)  # the fields' own errors first
        raise InvalidRequest("`image` is required: one to eight images to edit", param="image")
    else:
        body, images = await _read_json_edit(request, gw)
    spec = gw.catalog.resolve_image(body.model, operation="edit")
    prompt = body.prompt.strip() if body.prompt else ""
    service = ImageService(gw.settings, gw.pool, gw.client)
    result = await service.edit(spec, prompt, images, body.count, aspect_ratio=body.aspect())
    return JSONResponse(await _answer(gw, request, body, spec, result, prompt))


# -- answers ------------------------------------------------------------------------------------------------------


async def _answer(
    gw: Gateway, request: Request, body: _ImageParams, spec: ImageModelSpec, result: ImageResult, prompt: str
) -> dict[str, Any]:
    if not result.images:
        if result.errors:
            raise result.errors[0]
        raise ContentPolicyViolation(
            f"Grok moderated all {result.moderated} image(s) of this request, so there is nothing to return "
            "(upstream charged the request)", param="prompt",
        )
    url_format = (body.response_format or "url") == "url"
    data = []
    for image in result.images:
        item: dict[str, Any] = {}
        if url_format:
            item["url"] = await _store(gw, request, image, spec, prompt)
        else:
            item["b64_json"] = _b64(image.data)
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if result.moderated:
        answer["moderated_count"] = result.moderated
    if result.failed:
        answer["failed_count"] = result.failed
        answer["failed_reason"] = result.errors[0].message if result.errors else None
    return answer


async def _stream(gw: Gateway, body: _ImageParams, events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    created = int(time.time())
    delivered = moderated = 0
    first_error: GatewayError | None = None
    common = {"background": "opaque", "output_format": "jpeg", "quality": "auto"}
    sizes = {v: k for k, v in reversed(SIZES.items())}
    size = body.size or sizes.get(body.aspect() or "1:1", "auto")
    try:
        async for event in with_heartbeats(events, gw.settings.heartbeat_interval):
            if event is None:
                yield HEARTBEAT
            elif isinstance(event, PartialImage):
                yield _event("image_generation.partial_image", {
                    "type": "image_generation.partial_image", "b64_json": event.b64, "created_at": created,
                    "partial_image_index": event.partial_index, "image_index": event.image, "size": size, **common,
                })
            elif isinstance(event, DoneImage):
                delivered += 1
                out = event.out
                payload = {
                    "type": "image_generation.completed", "b64_json": _b64(out.data), "created_at": created,
                    "image_index": event.image,
                    "size": f"{out.width}x{out.height}" if out.width and out.height else size, **common,
                }
                if out.revised_prompt:
                    payload["revised_prompt"] = out.revised_prompt
                yield _event("image_generation.completed", payload)
            elif isinstance(event, ModeratedImage):
                moderated += 1
            elif isinstance(event, BatchFailed) and first_error is None:
                first_error = event.error
        if not delivered:
            raise first_error or ContentPolicyViolation(
                f"Grok moderated all {moderated} image(s) of this request, so there is nothing to return "
                "(upstream charged the request)", param="prompt",
            )
    except GatewayError as exc:
        yield sse_error(exc)
    except Exception as exc:  # never end a stream silently, never leak a traceback
        log.exception("image stream failed: %s", exc)
        yield sse_error(GatewayError("internal error while streaming; the gateway logged the details"))


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _store(gw: Gateway, request: Request, image: ImageOut, spec: ImageModelSpec, prompt: str) -> str:
    item = await gw.media.put(image.data, mime=image.mime, kind="image", account_id=image.account_id,
                              source=f"images/{spec.operation}:{spec.id}", prompt=prompt[:1000])
    return gw.media.url(item, base_url=public_base(request, gw.settings))


# -- edit inputs --------------------------------------------------------------------------------------------------


def _params(model: type[ImageEditRequest], values: dict[str, Any]) -> ImageEditRequest:
    try:
        body = model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc) from None  # type: ignore[arg-type]
    if body.mask not in (None, "", []):
        raise InvalidRequest("`mask` is not supported: Grok Imagine edits the whole image from the prompt; "
                             "describe the change instead", param="mask")
    if body.stream:
        raise InvalidRequest("`stream` is not supported for image edits", param="stream")
    body.check()
    return body


async def _read_json_edit(request: Request, gw: Gateway) -> tuple[ImageEditRequest, list[Attachment]]:
    try:
        raw = json.loads(await request.body() or b"null")
    except ValueError:
        raise InvalidRequest("request body is not valid JSON (send multipart/form-data or JSON)", param="body") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object", param="body")
    body = _params(ImageEditRequest, raw)
    refs: list[str] = []
    for entry in (body.images or []):
        ref = entry.get("image_url") if isinstance(entry, dict) else entry
        if isinstance(ref, dict):
            ref = ref.get("url")
        if not isinstance(ref, str) or not ref:
            raise InvalidRequest("`images[]` entries are `{\"image_url\": \"<https URL or data URI>\"}`",
                                 param="images")
        refs.append(ref)
    single = body.image if isinstance(body.image, list) else [body.image] if body.image else []
    for ref in single:
        if not isinstance(ref, str) or not ref:
            raise InvalidRequest("`image` is an https URL or data URI (or a list of them)", param="image")
        refs.append(ref)
    _check_count(len(refs))
    settings = gw.settings.model_copy(update={"max_images_per_request": MAX_EDIT_IMAGES})
    return body, await load_images(refs, settings, param="images[]")


_DISPOSITION = re.compile(r'(\w+)\*?="((?:[^"\\]|\\.)*)"|(\w+)=([^;\s]+)')


async def _read_multipart(
    request: Request, content_type: str, gw: Gateway
) -> tuple[ImageEditRequest, list[Attachment]]:
    boundary = next((v for k, v in _header_params(content_type) if k == "boundary"), "")
    if not boundary:
        raise InvalidRequest("multipart body without a boundary", param="body")
    raw = await request.body()
    fields: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []
    for name, filename, data in _parts(raw, boundary.encode("latin-1")):
        if filename is not None or name in ("image", "image[]", "mask"):
            if name in ("image", "image[]"):
                files.append((f"image #{len(files)}", data))
                _check_count(len(files))
            elif name == "mask" and data:
                fields["mask"] = "<file>"
            continue
        fields[name] = data.decode("utf-8", "replace")
    body = _form_fields(fields)
    if not files:
        raise InvalidRequest("`image` is required: one to eight images to edit", param="image")
    limit = gw.settings.max_image_bytes
    images = []
    for label, data in files:
        if len(data) > limit:
            raise PayloadTooLarge(f"{label}: image is larger than {limit} bytes", param="image")
        mime = sniff_image(data)
        if mime is None:
            why = "image is empty" if not data else "not a JPEG, PNG, WebP or GIF image"
            raise InvalidRequest(f"{label}: {why}", param="image")
        images.append(Attachment(f"image-{hashlib.sha256(data).hexdigest()[:12]}.{EXTENSIONS[mime]}", mime, data))
    return body, images


def _form_fields(fields: dict[str, Any]) -> ImageEditRequest:
    """Form fields are text: numbers and booleans as OpenAI's SDK writes them."""
    for key in ("n", "partial_images"):
        if isinstance(fields.get(key), str) and fields[key].strip().lstrip("-").isdecimal():
            fields[key] = int(fields[key])
    if isinstance(fields.get("stream"), str):
        fields["stream"] = fields["stream"].strip().lower() in ("true", "1")
    return _params(ImageEditRequest, fields)


def _check_count(count: int) -> None:
    if count > MAX_EDIT_IMAGES:
        raise InvalidRequest(f"at most {MAX_EDIT_IMAGES} images per edit", param="image")


def _header_params(value: str) -> list[tuple[str, str]]:
    out = []
    for match in _DISPOSITION.finditer(value):
        if match.group(1):
            out.append((match.group(1).lower(), match.group(2).replace('\\"', '"')))
        else:
            out.append((match.group(3).lower(), match.group(4).strip('"')))
    return out


def _parts(body: bytes, boundary: bytes) -> list[tuple[str, str | None, bytes]]:
    """``multipart/form-data`` → (name, filename or None, bytes) per part. The body is already bounded by
    MAX_REQUEST_BYTES; splitting is done by ``bytes.split`` (C), so a 4 MB upload costs a few copies."""
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    if len(chunks) < 2:
        raise InvalidRequest("multipart body does not contain its boundary", param="body")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        if len(parts) >= MAX_PARTS:
            raise InvalidRequest(f"multipart body has more than {MAX_PARTS} parts", param="body")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequest("malformed multipart part", param="body")
        name: str | None = None
        filename: str | None = None
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("utf-8", "replace").partition(":")
            if key.strip().lower() == "content-disposition":
                params = dict(_header_params(value))
                name, filename = params.get("name"), params.get("filename")
        if name is None:
            raise InvalidRequest("multipart part without a name", param="body")
        parts.append((name, filename, data))
    return parts
