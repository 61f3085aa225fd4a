"""OpenAI Videos API over Grok Imagine video: ``/v1/videos`` (create, list), ``/v1/videos/{id}`` (retrieve,
delete), ``/v1/videos/{id}/content?variant=video|thumbnail`` (download).

``POST`` takes ``prompt``, ``model``, ``seconds`` (1–30; over 15 by extension rounds), ``size`` (see ``core.videos.SIZES``) and an optional
``input_reference`` image (a multipart file, or in JSON a URL / data URI loaded through
``core.attachments.load_images``); everything is checked before anything is stored or sent, and any other field
is a 400. Jobs live in the store, so any instance answers a poll; who drives a job is ``VIDEO_DRIVE``
(``core/videos.py``): ``inline`` — the ``POST`` runs it and answers ``completed`` or ``failed``; ``poll`` — the
``POST`` answers ``queued`` and the first ``GET`` that claims the job runs it. Downloads go through the media
store (``GET /media/{id}``: a redirect on S3, a streamed file with Range support on the local disk).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api._access import client_auth
from api._deps import gateway
from api._images import _header_params, _parts
from api._media import serve_media
from core import ledger, video_queue
from core.attachments import Attachment, load_images
from core.errors import InvalidRequest, NotFound, PayloadTooLarge
from core.gateway import Gateway
from core.videos import (
    DEFAULT_SIZE,
    MAX_SECONDS,
    SIZES,
    drive,
    parse_params,
    start_job,
)

router = APIRouter(prefix="/v1/videos", dependencies=[Depends(client_auth)], tags=["videos"])
FIELDS = ("prompt", "model", "seconds", "size", "input_reference")
MAX_LIST = 100


_jobs, _service = video_queue.jobs_of, video_queue.service_of


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"no video job '{job_id}'", param="video_id", code="video_not_found")


def video_object(job: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``Video`` object of a job record."""
    error = None
    if job.get("status") == "failed":
        error = {"code": job.get("error_code") or "generation_failed",
                 "message": job.get("error_message") or "the video could not be generated"}
    return {
        "id": job["id"],
        "object": "video",
        "status": job.get("status", "queued"),
        "progress": int(job.get("progress") or 0),
        "model": job.get("model", ""),
        "seconds": str(job.get("seconds", "")),
        "size": job.get("size", ""),
        "prompt": job.get("prompt"),
        "created_at": int(float(job.get("created_at") or 0)),
        "completed_at": int(float(job["completed_at"])) if job.get("completed_at") else None,
        "expires_at": int(float(job["expires_at"])) if job.get("expires_at") else None,
        "error": error,
        "remixed_from_video_id": None,
    }


_CREATE_FIELDS: dict[str, Any] = {
    "prompt": {"type": "string", "minLength": 1, "maxLength": 4000},
    "model": {"type": "string", "example": "grok-imagine-video"},
    "seconds": {"type": "string", "enum": [str(n) for n in range(1, MAX_SECONDS + 1)], "default": "6"},
    "size": {"type": "string", "enum": list(SIZES), "default": DEFAULT_SIZE},
}
_CREATE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["prompt"], "properties": {
        **_CREATE_FIELDS, "input_reference": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": {"type": "object", "required": ["prompt"], "additionalProperties": False,
                                    "properties": {**_CREATE_FIELDS, "input_reference": {
                                        "type": "string", "description": "an image URL or data URI"}}}},
}}}


@router.post("", openapi_extra=_CREATE_BODY)
async def create_video(request: Request, gw: Gateway = Depends(gateway)) -> JSONResponse:
    fields, image = await _read_create(request, gw)
    params = parse_params(fields.get("prompt"), fields.get("seconds"), fields.get("size"))
    spec = gw.catalog.resolve_video(fields.get("model"))
    if image is None and fields.get("input_reference") not in (None, ""):
        ref = fields["input_reference"]
        if isinstance(ref, dict):
            ref = ref.get("image_url") or ref.get("url")
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidRequest("`input_reference` must be an image file, an image URL or a data URI",
                                 param="input_reference")
        image = (await load_images([ref.strip()], gw.settings, param="input_reference"))[0]

    gw.media.check_available()  # no bucket where one is needed: say so before any quota is spent
    settings, jobs = gw.settings, _jobs(gw)
    if settings.video_drive in ("poll", "async"):  # another request or invocation runs it
        job = await video_queue.queue(gw, spec, params, image, owner=ledger.requester())
        return JSONResponse(video_object({k: str(v) for k, v in job.items()}))
    job = await start_job(jobs, spec, params, timeout=settings.video_timeout, ttl=settings.video_job_ttl,
                          owner=ledger.requester())
    outcome = await drive(jobs, _service(gw), spec, job["id"], params, image, settings.video_timeout)
    return JSONResponse(video_object({**{k: str(v) for k, v in job.items()}, **{k: str(v) for k, v in outcome.items()}}))


@router.get("")
async def list_videos(
    gw: Gateway = Depends(gateway),
    after: str | None = None,
    limit: int = Query(20, ge=1, le=MAX_LIST),
    order: Literal["asc", "desc"] = "desc",
) -> JSONResponse:
    rows, more = await _jobs(gw).page(after=after, limit=limit, newest_first=order == "desc")
    viewer = ledger.requester()  # a store key or a public client lists only its own jobs (a page may be short)
    data = [video_object(row) for row in rows if ledger.may_see(row.get("owner"), viewer)]
    return JSONResponse({
        "object": "list", "data": data, "has_more": more,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })


@router.get("/{video_id}")
async def retrieve_video(video_id: str, gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(video_object(await _current(gw, video_id)))


@router.delete("/{video_id}")
async def delete_video(video_id: str, gw: Gateway = Depends(gateway)) -> JSONResponse:
    jobs = _jobs(gw)
    job = await jobs.get(video_id)
    if job is None or not ledger.may_see(job.get("owner"), ledger.requester()):
        raise _not_found(video_id)
    if job.get("status") == "in_progress" and float(job.get("deadline") or 0) > time.time():
        raise InvalidRequest("the video is still being generated; delete it once it completed or failed",
                             param="video_id", code="video_in_progress")
    for name in ("video_media", "poster_media", "ref_media"):
        if job.get(name):
            await gw.media.delete(job[name])
    await jobs.remove(video_id)
    return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})


@router.api_route("/{video_id}/content", methods=["GET", "HEAD"], response_model=None)
async def video_content(
    video_id: str, request: Request, gw: Gateway = Depends(gateway), variant: str = "video"
) -> Response:
    if variant not in ("video", "thumbnail"):
        raise InvalidRequest("`variant` must be `video` or `thumbnail` (Grok makes no spritesheet)", param="variant")
    job = await _jobs(gw).get(video_id)
    if job is None or not ledger.may_see(job.get("owner"), ledger.requester()):
        raise _not_found(video_id)
    if job.get("status") != "completed":
        raise InvalidRequest(f"the video is not ready (status {job.get('status')})", param="video_id",
                             code="video_not_ready")
    media_id = job.get("video_media" if variant == "video" else "poster_media")
    item = await gw.media.get(media_id) if media_id else None
    if item is None:
        raise NotFound(f"video '{video_id}' has no {variant} (any more)", param="variant", code="content_not_found")
    return await serve_media(item.filename, request)


# -- internals ----------------------------------------------------------------------------------------------------


async def _current(gw: Gateway, video_id: str) -> dict[str, Any]:
    """The job as it is now; in poll mode a queued job is claimed and driven here. A job whose runner went away
    past its deadline, or that no runner claimed in time, is marked failed (never re-sent: upstream may have
    charged it)."""
    jobs = _jobs(gw)
    job = await jobs.get(video_id)
    if job is None or not ledger.may_see(job.get("owner"), ledger.requester()):
        raise _not_found(video_id)
    if job.get("status") == "queued" and gw.settings.video_drive == "poll":
        job = await video_queue.run_queued(gw, video_id, job=job) or await jobs.get(video_id) or job
    now = time.time()
    failed = None
    if job.get("status") == "in_progress" and float(job.get("deadline") or 0) + 5 < now:
        failed = {"status": "failed", "error_code": "interrupted",
                  "error_message": "the request driving this video ended before it finished"}
    elif video_queue.unclaimed_too_long(job, gw.settings, now):
        failed = {"status": "failed", "error_code": "not_started",
                  "error_message": "no runner picked the job up in time; nothing was sent upstream"}
    if failed is not None:
        if await jobs.transition(video_id, job["status"], **failed):
            return {**job, **failed}
        return await jobs.get(video_id) or job  # its runner wrote first
    return job


async def _read_create(request: Request, gw: Gateway) -> tuple[dict[str, Any], Attachment | None]:
    content_type = request.headers.get("content-type", "")
    fields: dict[str, Any] = {}
    image: Attachment | None = None
    if content_type.lower().startswith("multipart/form-data"):
        boundary = next((v for k, v in _header_params(content_type) if k == "boundary"), "")
        if not boundary:
            raise InvalidRequest("multipart body without a boundary", param="body")
        for name, filename, data in _parts(await request.body(), boundary.encode("latin-1")):
            if name == "input_reference" and filename is not None:
                if image is not None:
                    raise InvalidRequest("one `input_reference` image per video", param="input_reference")
                if len(data) > gw.settings.max_image_bytes:
                    raise PayloadTooLarge(f"input_reference: image is larger than {gw.settings.max_image_bytes} "
                                          "bytes", param="input_reference")
                image = video_queue.reference_image(data)
            else:
                fields[name] = data.decode("utf-8", "replace")
    else:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InvalidRequest("request body is not valid JSON (send multipart/form-data or JSON)",
                                 param="body") from None
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object", param="body")
        fields = body
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidRequest(f"unsupported field `{unknown[0]}`; a video takes {', '.join(FIELDS)}",
                             param=unknown[0])
    return fields, image
