"""Video jobs the creating request does not run: ``VIDEO_DRIVE=poll`` and ``VIDEO_DRIVE=async``.

``queue`` writes the job ``queued`` (a reference image goes into the media store first: whoever runs the job may
be another instance or another invocation). ``run_queued`` claims a queued job — one atomic script, so exactly
one runner however many polls or deliveries race — and drives it to its end. Who calls ``run_queued``:

* ``poll``: the first ``GET /v1/videos/{id}`` (that request then lasts as long as the job);
* ``async``: an asynchronous invocation of a Lambda function (``VideoDispatch.send``: ``InvocationType=Event``
  returns at once, Lambda runs the function later and retries it on a function error — harmless, since a
  second delivery finds the job already claimed). The function's own timeout bounds the job, not API Gateway's
  30 s (``adapters/lambda_handler.py`` recognises the event).

A queued job nobody claims (the invocation was throttled away, or never sent) is reported ``failed`` once
``VIDEO_TIMEOUT`` + ``QUEUE_GRACE`` has passed since it was created, and an invocation arriving later does not
claim it any more (the age is checked inside the claim script); nothing was sent upstream, nothing charged.
Failures judged from outside (``not_started``, ``interrupted``, ``dispatch_failed``) are written only while the
job still has the status they were judged on (``VideoJobs.transition``), so they never overwrite a runner.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from core.attachments import EXTENSIONS, Attachment, sniff_image
from core.catalog import VideoModelSpec
from core.errors import GatewayError, InvalidRequest
from core.settings import Settings
from core.videos import VideoJobs, VideoParams, VideoService, drive, is_job_id, new_job, parse_params

if TYPE_CHECKING:
    from core.gateway import Gateway

log = logging.getLogger("grok2api")

QUEUE_GRACE = 60.0  # seconds a queued job may wait for its runner beyond VIDEO_TIMEOUT
EVENT_KIND = "video_job"  # {"grok2api": EVENT_KIND, "id": ...}: the payload of an async invocation
# The Lambda Invoke API answers an Event invocation in milliseconds; these bound a slow or unreachable endpoint
# to ~10 s in all (2 attempts), well inside API Gateway's 30 s.
INVOKE_CONNECT_TIMEOUT, INVOKE_READ_TIMEOUT, INVOKE_ATTEMPTS = 2.0, 3.0, 2


def jobs_of(gw: Gateway) -> VideoJobs:
    return VideoJobs(gw.store, gw.settings.video_job_ttl)


def service_of(gw: Gateway) -> VideoService:
    return VideoService(gw.settings, gw.pool, gw.client, gw.media)


async def queue(gw: Gateway, spec: VideoModelSpec, params: VideoParams, image: Attachment | None,
                **extra: str | int | float) -> dict[str, Any]:
    """Store a new job ``queued`` (1 command, +1 for a reference image) and, with ``VIDEO_DRIVE=async``, hand it
    to its worker (``dispatch``); returns the record as it then is."""
    now = time.time()
    job = new_job(spec, params, ttl=gw.settings.video_job_ttl, now=now, status="queued", **extra)
    if image is not None:
        stored = await gw.media.put(image.data, mime=image.mime, kind="image", source="videos/input",
                                    prompt=params.prompt[:1000])
        job["ref_media"] = stored.id
    await jobs_of(gw).create(job, score=now)
    return await dispatch(gw, job)


async def dispatch(gw: Gateway, job: dict[str, Any]) -> dict[str, Any]:
    """Hand a just-queued job to ``VIDEO_DISPATCH_FUNCTION`` (nothing to do without one: a poll will run it). A
    dispatch that fails fails the job — unless it timed out on our side after Lambda had queued it, and the
    worker has the job already."""
    if gw.video_dispatch is None:
        return job
    try:
        await gw.video_dispatch.send(job["id"])
    except DispatchFailed as exc:  # nothing was sent upstream: the job simply failed
        jobs = jobs_of(gw)
        failed = {"status": "failed", "error_code": exc.code or "dispatch_failed", "error_message": exc.message}
        if await jobs.transition(job["id"], "queued", **failed):
            return {**job, **failed}
        return await jobs.get(job["id"]) or job
    return job


async def run_queued(gw: Gateway, job_id: str, *, budget: float | None = None,
                     job: dict[str, str] | None = None) -> dict[str, str] | None:
    """Claim the job and run it to its end (bounded by ``VIDEO_TIMEOUT``): the record as it then is; ``None``
    when the job does not exist or is not queued any more (another runner has it, it ended, or it waited too
    long). ``budget``: the seconds an asynchronous invocation has left — it runs jobs only when that covers
    ``VIDEO_TIMEOUT`` (else the job fails at once, unsent: the function's timeout is too short) and claims none
    older than the queue's grace. ``job``: the record, when the caller has just read it (a poll)."""
    jobs, settings = jobs_of(gw), gw.settings
    job = job if job is not None else await jobs.get(job_id)
    if job is None or job.get("status") != "queued":
        return None
    limit, now = settings.video_timeout, time.time()
    if budget is not None and budget < limit:
        log.error("video %s: this invocation has %.0fs, less than VIDEO_TIMEOUT (%.0fs): raise the timeout of the "
                  "function VIDEO_DISPATCH_FUNCTION names", job_id, budget, limit)
        failed = {"status": "failed", "error_code": "worker_timeout",
                  "error_message": "the video worker's time limit is shorter than VIDEO_TIMEOUT; nothing was sent"}
        return {**job, **failed} if await jobs.transition(job_id, "queued", **failed) else None
    oldest = now - limit - QUEUE_GRACE if budget is not None else None
    if not await jobs.claim(job_id, secrets.token_hex(8), now + limit, oldest=oldest):
        return None
    try:
        spec, params, image = await _inputs(gw, job)
    except GatewayError as exc:  # the reference image expired or was deleted meanwhile: nothing was sent
        failed = {"status": "failed", "error_code": "input_missing", "error_message": exc.message}
        await jobs.transition(job_id, "in_progress", **failed)
        return {**job, **failed}
    outcome = await drive(jobs, service_of(gw), spec, job_id, params, image, limit)
    return {**job, **{k: str(v) for k, v in outcome.items()}}


def unclaimed_too_long(job: dict[str, str], settings: Settings, now: float) -> bool:
    return (job.get("status") == "queued"
            and float(job.get("created_at") or now) + settings.video_timeout + QUEUE_GRACE < now)


async def _inputs(gw: Gateway, job: dict[str, str]) -> tuple[VideoModelSpec, VideoParams, Attachment | None]:
    spec = gw.catalog.resolve_video(job.get("model"))
    params = parse_params(job.get("prompt"), job.get("seconds"), job.get("size"), job.get("preset"))
    image = None
    if job.get("ref_media"):
        item = await gw.media.get(job["ref_media"])
        data = await gw.media.read(item) if item is not None else None
        if not data:
            raise InvalidRequest("the job's reference image is gone", param="input_reference")
        image = reference_image(data)
    return spec, params, image


def reference_image(data: bytes) -> Attachment:
    """Image bytes as a job's ``input_reference`` (sniffed: the extension and type follow the content)."""
    mime = sniff_image(data)
    if mime is None:
        why = "image is empty" if not data else "not a JPEG, PNG, WebP or GIF image"
        raise InvalidRequest(f"input_reference: {why}", param="input_reference")
    return Attachment(f"image-{hashlib.sha256(data).hexdigest()[:12]}.{EXTENSIONS[mime]}", mime, data)


# -- asynchronous invocation (VIDEO_DRIVE=async) --------------------------------------------------------------------


class DispatchFailed(GatewayError):
    status = 503
    code = "dispatch_failed"


def video_job_event(job_id: str) -> dict[str, str]:
    return {"grok2api": EVENT_KIND, "id": job_id}


def is_video_job_event(event: Any) -> bool:
    return (isinstance(event, dict) and event.get("grok2api") == EVENT_KIND and isinstance(event.get("id"), str)
            and is_job_id(event["id"]))


class VideoDispatch:
    """Hands a queued job to ``VIDEO_DISPATCH_FUNCTION`` through the Lambda Invoke API. boto3 (in the Lambda
    runtime already) is imported and its client built on the first job, in a worker thread; every call runs in
    one, with connect/read timeouts. The endpoint and credentials are boto3's own chain (the function's role;
    ``AWS_ENDPOINT_URL_LAMBDA`` for a stand-in)."""

    def __init__(self, function: str) -> None:
        self.function = function
        # An ARN names its region; a bare name is in the function's own region (Lambda sets AWS_REGION).
        parts = function.split(":")
        arn_region = parts[3] if function.startswith("arn:") and len(parts) > 3 else ""
        self.region = arn_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._client: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoDispatch | None:
        if settings.video_drive != "async" or not settings.video_dispatch_function:
            return None
        return cls(settings.video_dispatch_function)

    def _build(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=INVOKE_CONNECT_TIMEOUT, read_timeout=INVOKE_READ_TIMEOUT,
                        retries={"total_max_attempts": INVOKE_ATTEMPTS, "mode": "standard"})
        return boto3.session.Session().client("lambda", region_name=self.region, config=config)

    async def send(self, job_id: str) -> None:
        """Raise ``DispatchFailed`` (with what to fix) unless Lambda accepted the invocation."""
        try:
            if self._client is None:
                async with self._lock:
                    if self._client is None:
                        self._client = await asyncio.to_thread(self._build)
            answer = await asyncio.to_thread(
                self._client.invoke, FunctionName=self.function, InvocationType="Event",
                Payload=json.dumps(video_job_event(job_id)).encode(),
            )
        except Exception as exc:  # botocore's ClientError, endpoint and credential errors
            response = getattr(exc, "response", None)  # a ClientError's parsed answer; None on a read timeout
            code = (response.get("Error", {}).get("Code") if isinstance(response, dict) else None) or type(exc).__name__
            hint = (" (the role needs lambda:InvokeFunction on it)"
                    if code in ("AccessDeniedException", "AccessDenied") else "")
            # The operator reads the details in the log; the client is told what happened, not our topology.
            log.error("video %s: invoking %s failed: %s%s", job_id, self.function, exc, hint)
            raise DispatchFailed(f"the video job could not be handed to its worker ({code}); "
                                 "the gateway logged the details") from None
        if answer.get("StatusCode") != 202:
            log.error("video %s: %s answered status %s to an Event invocation", job_id, self.function,
                      answer.get("StatusCode"))
            raise DispatchFailed("the video worker did not accept the job; the gateway logged the details")
