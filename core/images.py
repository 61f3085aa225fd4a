"""Image generation and edits over pooled accounts: batches, leases, failover, quota.

A request for ``n`` images becomes upstream calls of at most ``spec.batch`` images each (edits: one per call, the
only count the edit dialect produces). Every call is its own lease on the model's media quota kind (``image``,
``image_pro``, ``image_edit``) and its own settle, so the calls of one request spread over accounts (they run
concurrently; each account serves ``ACCOUNT_CONCURRENCY`` at once). A call that fails *before upstream accepted
it* (handshake refused, 401/403, rate limit, the product unavailable on the plan) is retried on another account,
like chat; once upstream accepted a call it has charged it, so it is settled as charged and never repeated
(a retry would charge again). Charges follow upstream: one ``cost`` unit per accepted call — including a call
whose images were all moderated, or that failed after acceptance — and nothing for a refused one.

Store commands: one lease + one settle per upstream call (plus one renew per half ``LEASE_TTL`` of a call that
runs long); a lazy quota refresh costs an upstream ``quota_info`` call, no store command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from core.attachments import Attachment, sniff_image
from core.catalog import ImageModelSpec
from core.chat import NOT_RETRIED, REQUEST_SUSPECT, stream_error
from core.errors import (
    FailureKind,
    GatewayError,
    InvalidRequest,
    NoAccountAvailable,
    StoreUnavailable,
    UpstreamError,
)
from core.grok import imagine
from core.grok.client import Credentials, GrokClient
from core.grok.events import FinalMessage, ImageProgress, StreamError
from core.pool import Lease, Outcome, QuotaWindow, TokenPool, parse_quota_info
from core.quota_sync import ACCOUNT_FATAL, fetch_chat_windows
from core.settings import Settings

log = logging.getLogger("grok2api")
T = TypeVar("T")
MAX_EMPTY_REFRESHES = 8
MAX_IMAGES = 10  # n per request (OpenAI's own bound)
MAX_EDIT_IMAGES = 8  # reference images per edit (§8.2: 1–8)
CHAT_BATCH = 2  # in-chat generation: at most 2 images per call (§8.2)
MAX_LEASE_WAIT = 120.0


@dataclass(frozen=True, slots=True)
class ImageOut:
    data: bytes
    mime: str
    account_id: str
    revised_prompt: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class PartialImage:
    image: int  # which of the request's images (0-based)
    partial_index: int  # 0-based per image
    b64: str


@dataclass(frozen=True, slots=True)
class DoneImage:
    image: int
    out: ImageOut


@dataclass(frozen=True, slots=True)
class ModeratedImage:
    image: int


@dataclass(frozen=True, slots=True)
class BatchFailed:
    images: int  # how many images the failed call was asked for
    error: GatewayError


ImageEvent = PartialImage | DoneImage | ModeratedImage | BatchFailed


@dataclass(slots=True)
class ImageResult:
    requested: int
    images: list[ImageOut] = field(default_factory=list)
    moderated: int = 0
    failed: int = 0  # images of calls that failed (their error: ``errors``)
    errors: list[GatewayError] = field(default_factory=list)


class ImageService:
    def __init__(self, settings: Settings, pool: TokenPool, client: GrokClient) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client

    # -- public ---------------------------------------------------------------------------------------------

    def generate_events(
        self, spec: ImageModelSpec, prompt: str, n: int, *, aspect_ratio: str | None, partials: int = 3
    ) -> AsyncIterator[ImageEvent]:
        """Events of every upstream call as they happen (previews, images, moderated jobs, failed calls)."""
        if self.settings.image_transport == "chat":
            if aspect_ratio not in (None, "auto"):
                raise InvalidRequest("`size` / `aspect_ratio` need the Imagine WebSocket: this gateway generates "
                                     "images in chat (IMAGE_TRANSPORT=chat), where Grok picks the size",
                                     param="size")
            return self._chat_events(spec, prompt, n, partials)
        sizes = _batches(n, spec.batch)
        calls = []
        offset = 0
        for size in sizes:
            request = imagine.ImagineRequest(prompt=prompt, count=size, aspect_ratio=aspect_ratio, pro=spec.pro)
            calls.append((offset, size, request))
            offset += size

        def make(offset: int, size: int, request: imagine.ImagineRequest) -> Callable[..., Awaitable[None]]:
            async def run(emit: Callable[[ImageEvent], None]) -> None:
                async def attempt(creds: Credentials, lease: Lease, progress: imagine.Progress) -> None:
                    seen: dict[int, int] = {}
                    async for event in imagine.generate(self.client, creds, request, progress):
                        index = offset + event.index
                        if isinstance(event, imagine.Partial):
                            count = seen.get(index, 0)
                            if count < partials:
                                emit(PartialImage(index, count, event.b64))
                            seen[index] = count + 1
                        elif isinstance(event, imagine.Moderated):
                            emit(ModeratedImage(index))
                        else:
                            emit(DoneImage(index, ImageOut(
                                event.data, event.mime, lease.account_id, event.revised_prompt,
                                event.width, event.height)))

                await self._leased(spec, attempt, wait=self._wait(len(calls)))

            return run

        return self._fan_out([(size, make(offset, size, request)) for offset, size, request in calls])

    async def generate(
        self, spec: ImageModelSpec, prompt: str, n: int, *, aspect_ratio: str | None
    ) -> ImageResult:
        return await _collect(n, self.generate_events(spec, prompt, n, aspect_ratio=aspect_ratio, partials=0))

    async def edit(
        self, spec: ImageModelSpec, prompt: str, images: list[Attachment], n: int, *, aspect_ratio: str | None
    ) -> ImageResult:
        """``n`` edits of the same reference images (one upstream call each)."""
        unique = list({a.name: a for a in images}.values())  # names are content hashes: upload each once

        def make(index: int) -> Callable[..., Awaitable[None]]:
            async def run(emit: Callable[[ImageEvent], None]) -> None:
                async def attempt(creds: Credentials, lease: Lease, progress: imagine.Progress) -> None:
                    file_ids = [
                        (await imagine.upload(self.client, creds, name=a.name, mime=a.mime, data=a.data)).file_id
                        for a in unique
                    ]
                    payload = imagine.edit_payload(prompt, file_ids, aspect_ratio)
                    events = imagine.edit(self.client, creds, payload, progress)
                    outs, moderated = await self._stream_images(creds, events, 1)
                    if outs:
                        emit(DoneImage(index, outs[0]))
                    elif moderated:
                        emit(ModeratedImage(index))

                await self._leased(spec, attempt, wait=self._wait(n))

            return run

        return await _collect(n, self._fan_out([(1, make(i)) for i in range(n)]))

    def _chat_events(self, spec: ImageModelSpec, prompt: str, n: int, partials: int) -> AsyncIterator[ImageEvent]:
        """``IMAGE_TRANSPORT=chat``: in-chat generation, at most ``CHAT_BATCH`` images per call, each call one unit
        of the account's chat ``fast`` quota (as upstream charges it). Previews are the 50 % (``-part-0``) images."""
        if spec.pro:
            raise InvalidRequest(f"`{spec.id}` is only served over the Imagine WebSocket (IMAGE_TRANSPORT=ws)",
                                 param="model")

        def make(offset: int, size: int) -> Callable[..., Awaitable[None]]:
            async def run(emit: Callable[[ImageEvent], None]) -> None:
                async def attempt(creds: Credentials, lease: Lease, progress: imagine.Progress) -> None:
                    payload = imagine.chat_image_payload(self.client, prompt, size)
                    events = imagine.stream_conversation(self.client, creds, payload, progress, referer="/",
                                                         what="image generation")

                    async def preview(index: int, count: int, data: bytes) -> None:
                        if count < partials:
                            emit(PartialImage(offset + index, count, base64.b64encode(data).decode()))

                    outs, moderated = await self._stream_images(creds, events, size, preview if partials else None)
                    for index, out in enumerate(outs):
                        emit(DoneImage(offset + index, out))
                    for index in range(len(outs), len(outs) + moderated):
                        emit(ModeratedImage(offset + index))

                await self._leased(spec, attempt, mode="fast", wait=self._wait(len(_batches(n, CHAT_BATCH))))

            return run

        calls, offset = [], 0
        for size in _batches(n, CHAT_BATCH):
            calls.append((size, make(offset, size)))
            offset += size
        return self._fan_out(calls)

    # -- internals ------------------------------------------------------------------------------------------

    async def _fan_out(
        self, calls: list[tuple[int, Callable[[Callable[[ImageEvent], None]], Awaitable[None]]]]
    ) -> AsyncIterator[ImageEvent]:
        """Run the calls concurrently; yield their events in arrival order. Leaving early (the client went away)
        cancels the calls still running; each settles its own lease as it unwinds."""
        queue: asyncio.Queue[ImageEvent | None] = asyncio.Queue()

        async def one(size: int, call: Callable[[Callable[[ImageEvent], None]], Awaitable[None]]) -> None:
            try:
                await call(queue.put_nowait)
            except GatewayError as exc:
                queue.put_nowait(BatchFailed(size, exc))
            except Exception as exc:  # never lose a call silently
                log.exception("image call failed: %s", exc)
                queue.put_nowait(BatchFailed(size, GatewayError("internal error; the gateway logged the details")))
            finally:
                queue.put_nowait(None)

        tasks = [asyncio.create_task(one(size, call)) for size, call in calls]
        try:
            pending = len(tasks)
            while pending:
                event = await queue.get()
                if event is None:
                    pending -= 1
                    continue
                yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _leased(
        self, spec: ImageModelSpec,
        attempt: Callable[[Credentials, Lease, imagine.Progress], Awaitable[T]],
        *, mode: str | None = None, wait: float | None = None,
    ) -> T:
        """One upstream call under a lease (on ``mode``, default the model's quota kind), failing over to another
        account while upstream has not accepted it."""
        exclude: set[str] = set()
        last_error: UpstreamError | None = None
        attempts = refreshed_empty = 0
        while attempts < self.settings.max_attempts:
            try:
                lease = await self.pool.lease(
                    mode=mode or spec.quota, min_tier=spec.min_tier, cost=spec.cost, exclude=exclude, model=spec.id,
                    wait=wait,
                )
            except NoAccountAvailable:
                if last_error is not None:
                    raise last_error from None
                raise
            attempts += 1
            creds = Credentials(token=lease.token, account_id=lease.account_id)
            progress = imagine.Progress()
            quota: dict[str, QuotaWindow] | None = None
            started = time.monotonic()
            keeper = asyncio.create_task(self._keep_alive(lease))
            try:
                if lease.needs_refresh:
                    quota = await (self._chat_windows(creds) if mode else self._media_windows(creds))
                    window = (quota or {}).get(lease.mode)
                    if window is not None and window.remaining is not None and window.remaining < lease.cost:
                        # No quota left for this product: store the window, try another account (not a failure).
                        await self.pool.settle(lease, Outcome(ok=False, charged=0, model=spec.id, quota=quota))
                        attempts -= 1
                        refreshed_empty += 1
                        if refreshed_empty > MAX_EMPTY_REFRESHES:
                            exclude.add(lease.account_id)
                        continue
                result = await attempt(creds, lease, progress)
            except UpstreamError as exc:
                charged = lease.cost if progress.accepted else 0
                failure = _not_held(exc) if progress.accepted and exc.kind in REQUEST_SUSPECT else exc
                await self._settle(lease, Outcome(
                    ok=False, charged=charged, failure=failure, model=spec.id,
                    latency_ms=(time.monotonic() - started) * 1000, quota=_after_charge(quota, lease.mode, charged),
                ))
                if progress.accepted or exc.kind in NOT_RETRIED:
                    raise
                exclude.add(lease.account_id)
                last_error = exc
                continue
            except BaseException:
                charged = lease.cost if progress.accepted else 0
                await asyncio.shield(self._settle(lease, Outcome(
                    ok=False, charged=charged, model=spec.id, quota=_after_charge(quota, lease.mode, charged))))
                raise
            finally:
                keeper.cancel()
                with contextlib.suppress(BaseException):
                    await keeper
            await self._settle(lease, Outcome(
                ok=True, charged=lease.cost, model=spec.id, latency_ms=(time.monotonic() - started) * 1000,
                quota=_after_charge(quota, lease.mode, lease.cost),
            ))
            return result
        assert last_error is not None
        raise last_error

    def _wait(self, calls: int) -> float:
        """How long a call waits for a busy account's slot: the calls of one request run at once, so with few
        accounts the last ones queue behind the others (LEASE_WAIT per call of the request, at most 2 min)."""
        return min(self.settings.lease_wait * max(calls, 1), MAX_LEASE_WAIT)

    async def _media_windows(self, creds: Credentials) -> dict[str, QuotaWindow] | None:
        """``quota_info`` for a lease that asked for a refresh. A failure that condemns the account raises (the
        caller fails over); anything else just leaves the quota unknown."""
        try:
            return parse_quota_info(await self.client.quota_info(creds))
        except UpstreamError as exc:
            if exc.kind in ACCOUNT_FATAL:
                raise
            log.info("quota_info for %s failed (%s); going ahead without it", creds.account_id, exc.message)
            return None

    async def _chat_windows(self, creds: Credentials) -> dict[str, QuotaWindow] | None:
        try:
            return await fetch_chat_windows(self.client, creds)
        except UpstreamError as exc:
            if exc.kind in ACCOUNT_FATAL:
                raise
            return None

    async def _keep_alive(self, lease: Lease) -> None:
        """Renew the lease while a long call runs (one store command per half LEASE_TTL; short calls: none)."""
        while True:
            await asyncio.sleep(max(lease.renew_at - self.pool.now(), 0.05))
            try:
                if not await self.pool.renew(lease):
                    return
            except StoreUnavailable as exc:
                log.warning("could not renew lease %s: %s", lease.lease_id, exc.message)
                lease.renew_at = self.pool.now() + 1.0

    async def _settle(self, lease: Lease, outcome: Outcome) -> None:
        """Settle, riding out a short store outage; if the store stays away the lease expires and is counted."""
        deadline = time.monotonic() + 2 * self.settings.store_timeout
        delay = 0.1
        while True:
            try:
                await self.pool.settle(lease, outcome)
                return
            except StoreUnavailable as exc:
                if time.monotonic() + delay >= deadline:
                    log.warning("settling lease %s failed (%s); it will expire and be counted then",
                                lease.lease_id, exc.message)
                    return
                await asyncio.sleep(delay)
                delay *= 2

    async def _stream_images(
        self, creds: Credentials, events: AsyncIterator[object], want: int,
        preview: Callable[[int, int, bytes], Awaitable[None]] | None = None,
    ) -> tuple[list[ImageOut], int]:
        """A chat-dialect image stream (edit or in-chat generation) → (up to ``want`` images, how many were
        moderated). Moderated images are dropped even when ``generatedImageUrls`` lists them (§8.2)."""
        moderated: set[str] = set()
        order: list[str] = []  # image ids in the order they appeared
        finals: dict[str, str] = {}  # image id -> final url
        previews: dict[str, int] = {}
        final: tuple[str, ...] = ()
        async for event in events:
            if isinstance(event, StreamError):
                if event.fatal:
                    raise stream_error(event)
            elif isinstance(event, ImageProgress):
                if event.image_id not in order:
                    order.append(event.image_id)
                if event.progress >= 100:
                    if event.moderated:
                        moderated.add(event.image_id)
                    elif event.url:
                        finals[event.image_id] = event.url
                elif preview is not None and event.url and event.image_id not in moderated:
                    count = previews.get(event.image_id, 0)
                    previews[event.image_id] = count + 1
                    data = await imagine.fetch_image(self.client, creds, event.url)
                    if data and sniff_image(data):
                        await preview(order.index(event.image_id), count, data)
            elif isinstance(event, FinalMessage):
                final = event.generated_image_urls
        urls = list(dict.fromkeys([*(finals[i] for i in order if i in finals), *final]))
        urls = [u for u in urls if not any(m and m in u for m in moderated)]
        if not urls and not moderated:
            raise UpstreamError(FailureKind.STREAM, "grok.com finished without an image")
        outs = []
        for url in urls[:want]:
            data = await imagine.fetch_image(self.client, creds, url)
            if data and sniff_image(data):
                outs.append(ImageOut(data, sniff_image(data) or "image/jpeg", creds.account_id))
        if urls and not outs:
            raise UpstreamError(FailureKind.STREAM, "the image could not be downloaded from grok.com")
        return outs, min(len(moderated), max(want - len(outs), 0))


async def _collect(n: int, events: AsyncIterator[ImageEvent]) -> ImageResult:
    result = ImageResult(requested=n)
    done: dict[int, ImageOut] = {}
    async for event in events:
        if isinstance(event, DoneImage):
            done[event.image] = event.out
        elif isinstance(event, ModeratedImage):
            result.moderated += 1
        elif isinstance(event, BatchFailed):
            result.failed += event.images
            result.errors.append(event.error)
    result.images = [done[i] for i in sorted(done)]
    return result


def _batches(n: int, batch: int) -> list[int]:
    batch = max(batch, 1)
    return [min(batch, n - start) for start in range(0, n, batch)]


def _after_charge(
    quota: dict[str, QuotaWindow] | None, mode: str, charged: int
) -> dict[str, QuotaWindow] | None:
    """Refreshed windows with this call's own charge taken off (they were read before the call was sent)."""
    window = quota.get(mode) if quota else None
    if quota is None or window is None or window.remaining is None or charged <= 0:
        return quota
    return {**quota, mode: replace(window, remaining=max(window.remaining - charged, 0))}


def _not_held(exc: UpstreamError) -> UpstreamError:
    """Upstream failed after accepting: counted on the account, no backoff (the account works)."""
    return UpstreamError(FailureKind.BAD_REQUEST, f"{exc.kind.value} (not held against the account): {exc.message}")
