"""Video generation jobs over pooled accounts: validation, the job record in the store, driving one job.

A job is one upstream call (protocol §8.3) on one leased account: text to video (D5 ``textToVideo``) or one
reference image to video (D4: upload, image post, ``videoGenModelConfig``). The lease is on the model's media
quota kind — ``video`` at 480p, ``video_720p`` at 720p — and it fails over to another account while upstream
has not accepted the call; once accepted, upstream has charged it, so it is settled as charged and never
repeated (the same rules and code as images: ``ImageService._leased``). The MP4 is streamed from the assets
host with the account's cookies into the media store (``put_stream``; never whole in memory) after its first
box is checked (``ftyp``); the poster (``thumbnailImageUrl``) is stored as an image when upstream gives one.

Job state lives in the store, a hash per job with a TTL (``VIDEO_JOB_TTL``) plus one sorted set for listing,
so any instance answers a poll. Nothing runs after a request ends: the job is driven inside a request, either
``POST /v1/videos`` itself (``VIDEO_DRIVE=inline``) or the first ``GET`` that claims it (``VIDEO_DRIVE=poll``;
the claim is one atomic script, so one instance drives). The upstream stream cannot be resumed, so the driving
request runs the job to its end, bounded by ``VIDEO_TIMEOUT``. A job whose driver died (instance frozen or
killed) is ``failed`` once its deadline has passed — it is never re-sent, as upstream may have charged it.

Store commands per job: create 1 (a script: HSET, EXPIRE, ZADD, ZREMRANGEBYSCORE), claim 1 (poll mode), at
most 3 progress writes, 1 final write, lease + settle 2 (+1 renew per half LEASE_TTL), media records 1–2
(+1 for a poll-mode reference image); each poll 1 (HGETALL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from core.attachments import Attachment, sniff_image
from core.catalog import VideoModelSpec
from core.errors import FailureKind, GatewayError, InvalidRequest, NoAccountAvailable, UpstreamError
from core.grok import imagine, video
from core.grok.client import Credentials, GrokClient
from core.images import ImageService
from core.media import MediaItem, MediaStore
from core.pool import Lease, TokenPool
from core.settings import Settings
from core.store.base import Script, Store

log = logging.getLogger("grok2api")

# OpenAI-style sizes → (aspect ratio, resolution). The pixel sizes are what grok.com renders (short side 480
# or 720); other sizes are refused before anything is sent.
SIZES: dict[str, tuple[str, str]] = {
    "480x854": ("9:16", "480p"),
    "854x480": ("16:9", "480p"),
    "480x720": ("2:3", "480p"),
    "720x480": ("3:2", "480p"),
    "480x480": ("1:1", "480p"),
    "720x1280": ("9:16", "720p"),
    "1280x720": ("16:9", "720p"),
    "720x1080": ("2:3", "720p"),
    "1080x720": ("3:2", "720p"),
    "720x720": ("1:1", "720p"),
}
DEFAULT_SIZE = "480x854"  # 480p: the `video` product every plan has (Basic has no 720p quota)
DEFAULT_ASPECT = "9:16"
DEFAULT_SECONDS = 6
MIN_SECONDS, SINGLE_MAX_SECONDS = 1, 15  # D5: duration 1–15 s in one call
MAX_SECONDS = 30  # longer than 15 s: extension rounds (§8.3 D2), up to OpenAI's and the reference's 30 s
MAX_PROMPT = 4000
PROGRESS_STEP = 25  # write progress to the store at most every this many points
JOB_PREFIX = "video_"

# One command for a new job. KEYS: job hash, index zset; ARGV: ttl, score, id, then field/value pairs.
CREATE = Script("video_create", """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[1]))
return 1
""")

# HSET only on a job that still exists (deleted or expired: nothing is recreated without its TTL).
UPDATE = Script("video_update", """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
""")

# queued → in_progress, atomically, for one driver. KEYS[1] job; ARGV: driver, deadline, started, and the oldest
# created_at still claimed ('' = any age: an older queued job is left to read `not_started`).
CLAIM = Script("video_claim", """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if ARGV[4] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'created_at') or '0') < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'driver', ARGV[1], 'deadline', ARGV[2], 'started_at', ARGV[3])
return 1
""")

# HSET only while the status is still the expected one (a failure judged by a poll must not overwrite a runner
# that got there first). KEYS[1] job; ARGV: expected status, then field/value pairs.
TRANSITION = Script("video_transition", """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
""")


# §8.3 presets → the message's --mode flag (custom = the prompt as given)
PRESETS: dict[str, str] = {"custom": "custom", "normal": "normal", "fun": "extremely-crazy",
                           "spicy": "extremely-spicy-or-crazy"}
ASPECTS = tuple(dict.fromkeys(aspect for aspect, _ in SIZES.values()))
RESOLUTIONS = ("480p", "720p")
_RESOLUTION_NAMES = {"480p": "480p", "480": "480p", "sd": "480p", "standard": "480p",
                     "720p": "720p", "720": "720p", "hd": "720p", "high": "720p"}


@dataclass(frozen=True, slots=True)
class VideoParams:
    prompt: str
    seconds: int
    size: str
    aspect_ratio: str
    resolution: str
    preset: str = "custom"

    @property
    def mode_flag(self) -> str:
        return PRESETS[self.preset]


def size_for(aspect_ratio: object, resolution: object, *, params: tuple[str, str]) -> str:
    """An aspect ratio and a resolution name (chat completions' ``video_config``) → the ``SIZES`` key;
    ``params`` names the two fields in errors."""
    aspect = DEFAULT_ASPECT if aspect_ratio in (None, "") else str(aspect_ratio).strip()
    if aspect not in ASPECTS:
        raise InvalidRequest(f"`{params[0]}` must be one of {', '.join(ASPECTS)}", param=params[0])
    name = "480p" if resolution in (None, "") else _RESOLUTION_NAMES.get(str(resolution).strip().lower())
    if name is None:
        raise InvalidRequest(f"`{params[1]}` must be 480p or 720p", param=params[1])
    return next(size for size, pair in SIZES.items() if pair == (aspect, name))


def parse_preset(value: object, *, param: str = "preset") -> str:
    preset = "custom" if value in (None, "") else str(value).strip().lower()
    if preset not in PRESETS:
        raise InvalidRequest(f"`{param}` must be one of {', '.join(PRESETS)}", param=param)
    return preset


def parse_params(
    prompt: object, seconds: object, size: object, preset: object = None, *, seconds_param: str = "seconds"
) -> VideoParams:
    """Everything a job could get wrong, checked before anything is stored or sent."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("`prompt` is required", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"`prompt` is longer than {MAX_PROMPT} characters", param="prompt")
    if seconds is None or seconds == "":
        count = DEFAULT_SECONDS
    else:
        text = str(seconds).strip()
        if isinstance(seconds, bool) or not text.isdecimal() or not MIN_SECONDS <= int(text) <= MAX_SECONDS:
            raise InvalidRequest(f"`{seconds_param}` must be a whole number from {MIN_SECONDS} to {MAX_SECONDS} "
                                 "(over 15 s: extension rounds)", param=seconds_param)
        count = int(text)
    size = DEFAULT_SIZE if size in (None, "") else size
    if not isinstance(size, str) or size.strip().lower() not in SIZES:
        raise InvalidRequest(f"`size` must be one of {', '.join(SIZES)}", param="size")
    size = size.strip().lower()
    aspect, resolution = SIZES[size]
    return VideoParams(prompt.strip(), count, size, aspect, resolution, parse_preset(preset))


def quota_kind(spec: VideoModelSpec, params: VideoParams) -> str:
    return "video_720p" if params.resolution == "720p" else spec.quota


def new_job_id() -> str:
    return JOB_PREFIX + secrets.token_hex(16)


def is_job_id(value: str) -> bool:
    rest = value.removeprefix(JOB_PREFIX)
    return value.startswith(JOB_PREFIX) and len(rest) == 32 and all(c in "0123456789abcdef" for c in rest)


@dataclass(frozen=True, slots=True)
class VideoOut:
    video: MediaItem
    poster: MediaItem | None
    account_id: str


class VideoJobs:
    """The job records: ``video:<id>`` hashes (TTL) and the ``videos`` sorted set (score: created_at)."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = int(ttl)

    def key(self, job_id: str) -> str:
        return self.store.key("video", job_id)

    @property
    def index(self) -> str:
        return self.store.key("videos")

    async def create(self, job: dict[str, Any], *, score: float) -> None:
        """``score``: the creation time with sub-second precision (the list order)."""
        flat: list[str | int | float] = []
        for field, value in job.items():
            if value is not None:
                flat += [field, value]
        await self.store.run(CREATE, [self.key(job["id"]), self.index], [self.ttl, score, job["id"], *flat])

    async def get(self, job_id: str) -> dict[str, str] | None:
        if not is_job_id(job_id):
            return None
        raw = await self.store.call("HGETALL", self.key(job_id))
        job = _hash(raw)
        return job or None

    async def update(self, job_id: str, **fields: str | int | float) -> None:
        flat: list[str | int | float] = []
        for field, value in fields.items():
            flat += [field, value]
        await self.store.run(UPDATE, [self.key(job_id)], flat)

    async def claim(self, job_id: str, driver: str, deadline: float, *, oldest: float | None = None) -> bool:
        """queued → in_progress for ``driver``; False when someone else has it, it ended, or it was created before
        ``oldest``."""
        args = [driver, deadline, time.time(), "" if oldest is None else oldest]
        return bool(await self.store.run(CLAIM, [self.key(job_id)], args))

    async def transition(self, job_id: str, expected: str, **fields: str | int | float) -> bool:
        """Write ``fields`` only if the job's status is still ``expected`` (one command)."""
        flat: list[str | int | float] = [expected]
        for field, value in fields.items():
            flat += [field, value]
        return bool(await self.store.run(TRANSITION, [self.key(job_id)], flat))

    async def page(self, *, after: str | None, limit: int, newest_first: bool) -> tuple[list[dict[str, str]], bool]:
        ids = await self.store.call("ZREVRANGE" if newest_first else "ZRANGE", self.index, 0, -1)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in ids or []]
        if after:
            if after not in ids:
                raise InvalidRequest(f"`after`: no video job '{after}'", param="after")
            ids = ids[ids.index(after) + 1:]
        chosen = ids[: limit + 1]
        if not chosen:
            return [], False
        rows = await self.store.pipeline([["HGETALL", self.key(i)] for i in chosen[:limit]])
        jobs = [_hash(r) for r in rows if not isinstance(r, Exception)]
        return [j for j in jobs if j], len(chosen) > limit

    async def remove(self, job_id: str) -> None:
        await self.store.pipeline([["DEL", self.key(job_id)], ["ZREM", self.index, job_id]])


def _hash(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        items = list(raw.items())
    else:
        values = list(raw or [])
        items = list(zip(values[::2], values[1::2], strict=False))
    return {_text(k): _text(v) for k, v in items}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class VideoService(ImageService):
    """One upstream video call under a lease (failover before acceptance, charged as upstream charged)."""

    def __init__(self, settings: Settings, pool: TokenPool, client: GrokClient, media: MediaStore) -> None:
        super().__init__(settings, pool, client)
        self.media = media

    async def generate(
        self, spec: VideoModelSpec, params: VideoParams, image: Attachment | None,
        on_progress: Callable[[int], Awaitable[None]],
    ) -> VideoOut:
        """720p goes to an account with the ``video_720p`` product; when none can take it (Basic accounts have
        none: quota_info ``video720p: null``), the clip is made at 480p on the ``video`` product and upscaled
        (§8.3). Refused before acceptance, the 720p try sent nothing upstream."""
        if params.resolution != "720p":
            return await self._generate(spec, params, image, on_progress, upscale=False)
        try:
            return await self._generate(spec, params, image, on_progress, upscale=False)
        except NoAccountAvailable as exc:
            log.info("no account for a 720p video (%s): 480p + upscale instead", exc.message)
            low = replace(params, resolution="480p")
            return await self._generate(spec, low, image, on_progress, upscale=True)

    async def _generate(
        self, spec: VideoModelSpec, params: VideoParams, image: Attachment | None,
        on_progress: Callable[[int], Awaitable[None]], *, upscale: bool,
    ) -> VideoOut:
        rounds = video.rounds_for(params.seconds, SINGLE_MAX_SECONDS)
        # the lease's media kind for this resolution; every round is an upstream call charged on it
        leased = replace(spec, quota=quota_kind(spec, params), cost=spec.cost * len(rounds))

        async def attempt(creds: Credentials, lease: Lease, progress: imagine.Progress) -> VideoOut:
            first = replace(params, seconds=rounds[0])
            if image is None:
                payload = video.text_payload(first.prompt, aspect_ratio=first.aspect_ratio,
                                             seconds=first.seconds, resolution=first.resolution,
                                             mode=first.mode_flag)
            else:
                uploaded = await imagine.upload(self.client, creds, name=image.name, mime=image.mime, data=image.data)
                image_url = video.assets_url(self.client, uploaded.uri) if uploaded.uri else ""
                if not image_url:
                    raise UpstreamError(FailureKind.SERVER, "grok.com upload answer carries no file URI")
                post_id = await video.create_image_post(self.client, creds, image_url)
                payload = video.image_payload(
                    first.prompt, image_url=image_url, file_id=uploaded.file_id, post_id=post_id,
                    aspect_ratio=first.aspect_ratio, seconds=first.seconds, resolution=first.resolution,
                    mode=first.mode_flag,
                )
            events = imagine.stream_conversation(self.client, creds, payload, progress, referer="/imagine",
                                                 what="video generation")
            result = await video.read_stream(events, _scaled(on_progress, 0, len(rounds)))
            original, length = result.post_id, rounds[0]
            for index, seconds in enumerate(rounds[1:], start=1):  # extension rounds, each on the last clip
                payload = video.extension_payload(
                    params.prompt, mode=params.mode_flag, aspect_ratio=params.aspect_ratio,
                    resolution=params.resolution, start=length, seconds=seconds, extend_post_id=result.post_id,
                    original_post_id=original,
                )
                events = imagine.stream_conversation(self.client, creds, payload, progress, referer="/imagine",
                                                     what="video extension")
                result = await video.read_stream(events, _scaled(on_progress, index, len(rounds)))
                length += seconds
            if upscale:  # accepted and charged already: an upscale failure fails the job, it is not retried
                result = replace(result, video_url=await video.upscale(self.client, creds, video.video_uuid(result)))
            poster = await self._store_poster(creds, result.poster_url, params.prompt, spec.id)  # first: linked
            stored = await self._store_video(creds, result.video_url, params.prompt, spec.id,
                                             poster.filename if poster else "")
            return VideoOut(stored, poster, creds.account_id)

        return await self._leased(leased, attempt)  # type: ignore[arg-type]

    async def _store_video(self, creds: Credentials, url: str, prompt: str, model: str, poster: str = "") -> MediaItem:
        response, chunks = await video.open_asset(self.client, creds, url)
        try:
            head = b""
            async for chunk in chunks:
                head += chunk
                if len(head) >= 12:
                    break
            if len(head) < 12 or head[4:8] != b"ftyp":
                raise UpstreamError(FailureKind.STREAM, "grok.com's video file is not an MP4 (no ftyp box)")

            async def body() -> AsyncIterator[bytes]:
                yield head
                async for chunk in chunks:
                    yield chunk

            return await self.media.put_stream(body(), mime="video/mp4", kind="video", account_id=creds.account_id,
                                               source=f"videos:{model}", prompt=prompt[:1000], poster=poster)
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()

    async def _store_poster(self, creds: Credentials, url: str | None, prompt: str, model: str) -> MediaItem | None:
        if not url:
            return None
        data = await imagine.fetch_image(self.client, creds, video.assets_url(self.client, url))
        mime = sniff_image(data) if data else None
        if data is None or mime is None:
            log.info("video poster %s could not be fetched; the job goes on without it", url)
            return None
        return await self.media.put(data, mime=mime, kind="image", account_id=creds.account_id,
                                    source=f"videos/poster:{model}", prompt=prompt[:1000])


@dataclass(frozen=True, slots=True)
class JobOutcome:
    fields: dict[str, str | int | float]  # what was written to the job record
    out: VideoOut | None = None  # completed: the stored video and poster
    error: GatewayError | None = None  # failed: why (its HTTP status, for callers that answer with it)


def new_job(spec: VideoModelSpec, params: VideoParams, *, ttl: float, now: float,
            **extra: str | int | float) -> dict[str, Any]:
    """The record of a new job (not stored yet): what was asked, when, and ``extra`` (owner, source, status)."""
    job: dict[str, Any] = {
        "id": new_job_id(), "model": spec.id, "seconds": params.seconds, "size": params.size,
        "prompt": params.prompt, "created_at": int(now), "expires_at": int(now + ttl), "progress": 0, **extra,
    }
    if params.preset != "custom":
        job["preset"] = params.preset
    return job


async def start_job(
    jobs: VideoJobs, spec: VideoModelSpec, params: VideoParams, *, timeout: float, ttl: float,
    **extra: str | int | float,
) -> dict[str, Any]:
    """A new job record, already ``in_progress`` for the request that is about to drive it (one command)."""
    now = time.time()
    job = new_job(spec, params, ttl=ttl, now=now, status="in_progress", driver=secrets.token_hex(8),
                  deadline=now + timeout, started_at=now, **extra)
    await jobs.create(job, score=now)
    return job


async def drive(
    jobs: VideoJobs, service: VideoService, spec: VideoModelSpec, job_id: str, params: VideoParams,
    image: Attachment | None, timeout: float,
) -> dict[str, str | int | float]:
    """Run one claimed job to its end (completed or failed) and write the outcome; returns the fields written."""
    return (await drive_job(jobs, service, spec, job_id, params, image, timeout)).fields


async def drive_job(
    jobs: VideoJobs, service: VideoService, spec: VideoModelSpec, job_id: str, params: VideoParams,
    image: Attachment | None, timeout: float, listener: Callable[[int], Awaitable[None]] | None = None,
) -> JobOutcome:
    """``drive`` with the outcome's details; ``listener`` hears every progress value (a chat stream shows them),
    while the store gets one write per ``PROGRESS_STEP`` points."""
    written = 0

    async def on_progress(value: int) -> None:
        nonlocal written
        if listener is not None:
            await listener(value)
        if value >= written + PROGRESS_STEP:
            written = value
            try:
                await jobs.update(job_id, progress=value)
            except GatewayError as exc:  # progress is best effort; the outcome write is not
                log.info("video %s: progress not written (%s)", job_id, exc.message)

    fields: dict[str, str | int | float]
    out: VideoOut | None = None
    error: GatewayError | None = None
    try:
        async with asyncio.timeout(timeout):
            out = await service.generate(spec, params, image, on_progress)
        fields = {"status": "completed", "progress": 100, "completed_at": int(time.time()),
                  "video_media": out.video.id, "account": out.account_id}
        if out.poster is not None:
            fields["poster_media"] = out.poster.id
    except TimeoutError:
        fields = _failed("timeout", f"the video did not finish within {timeout:g}s")
        error = UpstreamError(FailureKind.TIMEOUT, str(fields["error_message"]))
    except video.VideoModerated as exc:
        fields, error = _failed("content_policy_violation", exc.message), exc
    except GatewayError as exc:
        fields, error = _failed(str(getattr(exc, "code", None) or "generation_failed"), exc.message), exc
    except asyncio.CancelledError:
        await asyncio.shield(_write(jobs, job_id, _failed("cancelled", "the request driving this video ended")))
        raise
    except Exception as exc:
        log.exception("video %s failed: %s", job_id, exc)
        fields = _failed("internal_error", "internal error; the gateway logged the details")
        error = GatewayError(str(fields["error_message"]))
    await _write(jobs, job_id, fields)
    return JobOutcome(fields, out, error)


def _scaled(on_progress: Callable[[int], Awaitable[None]], index: int, rounds: int) -> Callable[[int], Awaitable[None]]:
    """Progress of round ``index`` of ``rounds`` as progress of the whole clip."""
    async def report(value: int) -> None:
        await on_progress((index * 100 + value) // rounds)

    return report


def _failed(code: str, message: str) -> dict[str, str | int | float]:
    return {"status": "failed", "error_code": code, "error_message": message[:500]}


async def _write(jobs: VideoJobs, job_id: str, fields: dict[str, str | int | float]) -> None:
    """The outcome write, riding out a short store outage (a lost write shows as failed after the deadline)."""
    delay = 0.1
    for _ in range(4):
        try:
            await jobs.update(job_id, **fields)
            return
        except GatewayError as exc:
            log.warning("video %s: outcome not written yet (%s)", job_id, exc.message)
            await asyncio.sleep(delay)
            delay *= 2
