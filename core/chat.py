"""Where a chat request goes: lease an account, upload attachments, open the upstream stream, fail over.

``ChatService.open`` returns a ``ChatStream`` only once the upstream has produced its first substantive event,
so every failure that happens before a byte could reach the client is retried on another account (up to
``max_attempts``) and the client sees one clean answer or one clear error. The caller must ``finish()`` the stream
exactly once; that settles the lease (quota actually charged, counters, failure rules) in one store command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from core.attachments import Attachment, load_images
from core.catalog import ModelSpec
from core.errors import FailureKind, GatewayError, NoAccountAvailable, StoreUnavailable, UpstreamError
from core.grok.classify import AUTH_MARKERS, BLOCKED_MARKERS
from core.grok.client import ChatCall, Credentials, GrokClient
from core.grok.events import ConversationStarted, Event, ModelInfo, StreamError, Title, UserTurn
from core.ledger import Ledger, RequestRecord
from core.pool import Lease, Outcome, QuotaWindow, TokenPool
from core.prompt import Prompt
from core.quota_sync import fetch_chat_windows
from core.settings import Settings

log = logging.getLogger("grok2api")

# Events that say nothing about whether the answer will succeed: preflight reads past them.
PREAMBLE = (ConversationStarted, UserTurn, ModelInfo, Title)
# Another account will not help: the request itself is at fault, or our egress (IP, cf_clearance, user agent,
# statsig) is refused whichever account we use.
NOT_RETRIED = (FailureKind.BAD_REQUEST, FailureKind.CLOUDFLARE, FailureKind.ANTI_BOT)
# Failures a request can provoke by its content (upstream chokes on it) as much as an account can. The first one is
# not held against its account until another account has served the request; when it repeats on a second account,
# the request is the cause: no further account is tried or penalised.
REQUEST_SUSPECT = (FailureKind.SERVER, FailureKind.STREAM, FailureKind.NETWORK, FailureKind.TIMEOUT)
MAX_EMPTY_REFRESHES = 8  # accounts found empty by a lazy refresh before they are excluded outright


@dataclass(slots=True)
class ChatRequest:
    model: ModelSpec
    prompt: Prompt
    requested_model: str
    sticky_key: str | None = None
    disable_search: bool = False


@dataclass(slots=True)
class ChatStream:
    """An open upstream answer. Iterate ``events()``; call ``finish()`` once, whatever happened."""

    request: ChatRequest
    lease: Lease
    attempts: int
    _service: ChatService
    _head: list[Event]
    _rest: AsyncIterator[Event]
    quota: dict[str, QuotaWindow] | None = None  # windows learned by a lazy refresh, stored when settling
    _started: float = field(default_factory=time.monotonic)
    _finished: bool = False

    @property
    def account_id(self) -> str:
        return self.lease.account_id

    async def events(self) -> AsyncIterator[Event]:
        for event in self._head:
            yield event
        self._head = []
        pool = self._service.pool
        async for event in self._rest:
            if pool.now() >= self.lease.renew_at:
                await self.keep_alive()
            yield event

    async def keep_alive(self) -> None:
        """Renew the lease once the answer has run past half its lifetime (one store command per half
        ``lease_ttl``; a short answer never does). ``events()`` calls it as events arrive; a renderer calls it
        while upstream is silent, so a long pause cannot let the lease lapse."""
        pool = self._service.pool
        if self._finished or pool.now() < self.lease.renew_at:
            return
        try:
            if not await pool.renew(self.lease):
                log.info("lease %s on %s lapsed before it was renewed", self.lease.lease_id, self.account_id)
                self.lease.renew_at = float("inf")  # gone: settle will count nothing twice; stop asking
        except StoreUnavailable as exc:
            log.warning("could not renew lease %s: %s", self.lease.lease_id, exc.message)
            self.lease.renew_at = pool.now() + 1.0  # try again shortly, not on every event

    async def finish(
        self, *, failure: GatewayError | None = None, prompt_tokens: int = 0, completion_tokens: int = 0,
        keep: tuple[str, str, float] | None = None, record: RequestRecord | None = None,
    ) -> None:
        """Close upstream and settle the lease. Never raises for the store: by now the client may have the whole
        answer, and telling it to retry would make upstream charge twice (see ``ChatService.settle_reliably``).
        ``keep`` = (store key, value, TTL): stored by the same settle command (e.g. a Responses API answer).
        ``record``: the request's ledger record (status and answer already set by the caller), completed here and
        written by the same settle command."""
        if self._finished:
            # Settled already (a repair turn was about to follow, then could not open): what the request still
            # owes is written on its own, so a stored answer and the log entry are not lost.
            await self._write_late(keep, record, prompt_tokens, completion_tokens)
            return
        self._finished = True
        closer = getattr(self._rest, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # the upstream iterator may already be broken; the outcome below is what matters
                pass
        upstream_failure = failure if isinstance(failure, UpstreamError) else None
        if upstream_failure is not None and upstream_failure.kind in REQUEST_SUSPECT:
            # Upstream died after it had started answering: the account works (it was accepted and streamed),
            # so the failure is counted on it but earns no backoff. Account-level kinds (401, 403, usage
            # limit) still apply in full.
            upstream_failure = _not_held(upstream_failure)
        ledger = None
        if record is not None and not record.written and record.logged:
            self._fill(record, prompt_tokens, completion_tokens)
            ledger = self._service.ledger.ops(record)
        settled = await self._service.settle_reliably(
            self.lease,
            Outcome(
                ok=failure is None,
                charged=self.lease.cost,
                failure=upstream_failure,
                model=self.request.model.id,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=(time.monotonic() - self._started) * 1000,
                quota=_after_charge(self.quota, self.lease.mode, self.lease.cost),
                keep=keep,
                ledger=ledger,
            ),
        )
        if record is not None and ledger is not None:
            record.written = settled

    async def _write_late(self, keep: tuple[str, str, float] | None, record: RequestRecord | None,
                          prompt_tokens: int, completion_tokens: int) -> None:
        """One command each for a ``keep`` and an unwritten ``record`` after the lease was settled; never raises
        (the answer is the client's already)."""
        try:
            if keep is not None:
                key, value, ttl = keep
                await self._service.pool.store.call("SET", key, value, "EX", max(int(ttl), 1))
            if record is not None and not record.written and record.logged:
                self._fill(record, prompt_tokens, completion_tokens)
                await self._service.ledger.write(record)
        except GatewayError as exc:
            log.warning("late write after settle failed: %s", exc.message)

    def _fill(self, record: RequestRecord, prompt_tokens: int, completion_tokens: int) -> None:
        record.model = record.model or self.request.requested_model
        record.prompt = record.prompt or self.request.prompt.message
        record.account = self.account_id
        record.attempts = max(record.attempts, self.attempts)
        if record.ttft_ms is None:  # the stream opened at its first substantive upstream event
            record.ttft_ms = (self._started - record.t0) * 1000
        record.prompt_tokens += prompt_tokens
        record.completion_tokens += completion_tokens


class ChatService:
    def __init__(self, settings: Settings, pool: TokenPool, client: GrokClient, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client
        self.ledger = ledger or Ledger(pool.store, settings)

    async def load_attachments(self, prompt: Prompt) -> list[Attachment]:
        """Fetch/decode images once per request (not per attempt), within the per-request bounds of
        ``load_images`` (count, bytes, concurrency, one deadline)."""
        return await load_images(prompt.images, self.settings)

    async def open(self, request: ChatRequest) -> ChatStream:
        attachments = await self.load_attachments(request.prompt)
        model = request.model
        exclude: set[str] = set()
        last_error: UpstreamError | None = None
        # A first failure that the request may have provoked (REQUEST_SUSPECT): its lease stays open until the
        # next attempt tells whose fault it was, then it is settled once, with the verdict.
        suspect: _Suspect | None = None
        attempts = refreshed_empty = 0
        try:
            while attempts < self.settings.max_attempts:
                try:
                    lease = await self.pool.lease(
                        mode=model.mode, min_tier=model.min_tier, cost=model.cost, exclude=exclude,
                        sticky_key=request.sticky_key, model=model.id,
                    )
                except NoAccountAvailable:
                    if last_error is not None:
                        raise last_error from None
                    raise
                attempts += 1
                creds = Credentials(token=lease.token, account_id=lease.account_id)
                head: list[Event] = []
                quota: dict[str, QuotaWindow] | None = None
                try:
                    if lease.needs_refresh:
                        quota = await fetch_chat_windows(self.client, creds)
                        window = quota.get(lease.mode)
                        if window is not None and window.remaining is not None and window.remaining < lease.cost:
                            # Not a failure: the account simply has no quota left in this mode. Settling stores
                            # the empty window, so the next lease passes it over, and if nothing else can serve,
                            # the client hears "out of quota" rather than "already tried".
                            await self.pool.settle(lease, Outcome(ok=False, charged=0, model=model.id, quota=quota))
                            attempts -= 1
                            refreshed_empty += 1
                            if refreshed_empty > MAX_EMPTY_REFRESHES:  # a safety bound; the store should prevent it
                                exclude.add(lease.account_id)
                            continue
                    unique = {a.name: a for a in attachments}.values()  # names are content hashes
                    file_ids = [
                        (await self.client.upload(creds, name=a.name, mime=a.mime, data=a.data)).file_id
                        for a in unique
                    ]
                    call = ChatCall(
                        message=request.prompt.message, mode=model.mode, file_ids=file_ids,
                        disable_search=request.disable_search,
                    )
                    events = self.client.chat(creds, call)
                    await self._preflight(events, head)
                except UpstreamError as exc:
                    charged = lease.cost if _accepted(head) and exc.kind is not FailureKind.RATE_LIMITED else 0
                    outcome = Outcome(ok=False, charged=charged, failure=exc, model=model.id,
                                      quota=_after_charge(quota, lease.mode, charged))
                    if suspect is not None and suspect.failure.kind is exc.kind:
                        # The same failure on a second account: the request is the cause. Nobody is penalised.
                        first, suspect = suspect, None
                        await first.settle(self.pool, request_at_fault=True)
                        await self.pool.settle(lease, replace(outcome, failure=_not_held(exc)))
                        raise _request_at_fault(exc, attempts) from None
                    if suspect is None and exc.kind in REQUEST_SUSPECT:
                        suspect = _Suspect(lease, outcome)
                    else:
                        await self.pool.settle(lease, outcome)
                    if exc.kind in NOT_RETRIED:
                        raise
                    exclude.add(lease.account_id)
                    last_error = exc
                    continue
                except BaseException:
                    await asyncio.shield(self.pool.settle(lease, Outcome(ok=False, charged=0, model=model.id)))
                    raise
                return ChatStream(request, lease, attempts, self, head, events, quota=quota)
            assert last_error is not None
            raise last_error
        finally:
            if suspect is not None:  # another account served, or failed otherwise: the first one was at fault
                await asyncio.shield(suspect.settle(self.pool, request_at_fault=False))

    async def settle_reliably(self, lease: Lease, outcome: Outcome) -> bool:
        """Settle, retrying a store outage for up to twice the store timeout. If the store stays away, the lease
        expires by itself and is counted then (core/pool); the answer the client already has stands."""
        deadline = time.monotonic() + 2 * self.settings.store_timeout
        delay = 0.1
        while True:
            try:
                await self.pool.settle(lease, outcome)
                return True
            except StoreUnavailable as exc:
                if time.monotonic() + delay >= deadline:
                    log.warning("settling lease %s on %s failed (%s); it will expire and be counted then",
                                lease.lease_id, lease.account_id, exc.message)
                    return False
                await asyncio.sleep(delay)
                delay *= 2

    async def _preflight(self, events: AsyncIterator[Event], head: list[Event]) -> None:
        """Read into ``head`` up to the first substantive event. In-stream errors here can still fail over."""
        async for event in events:
            if isinstance(event, StreamError):
                if not event.fatal:
                    log.info("grok.com warning before the answer: %s", event.message)
                    continue
                raise _stream_error(event)
            head.append(event)
            if not isinstance(event, PREAMBLE):
                return
        # The stream ended before saying anything useful.
        raise UpstreamError(FailureKind.STREAM, "grok.com closed the stream before answering")


def _after_charge(
    quota: dict[str, QuotaWindow] | None, mode: str, charged: int
) -> dict[str, QuotaWindow] | None:
    """Windows of a lazy refresh, with this request's own charge taken off.

    The refresh is read *before* the request is sent, so upstream's ``remaining`` does not include the units
    this request then spent. Stored as they are, they would put the account one request above upstream for the
    rest of the window, and the pool would send a request with no quota left.
    """
    window = quota.get(mode) if quota else None
    if quota is None or window is None or window.remaining is None or charged <= 0:
        return quota
    return {**quota, mode: replace(window, remaining=max(window.remaining - charged, 0))}


@dataclass(slots=True)
class _Suspect:
    """A failed attempt whose lease is held open until the next attempt says who was at fault."""

    lease: Lease
    outcome: Outcome

    @property
    def failure(self) -> UpstreamError:
        assert self.outcome.failure is not None
        return self.outcome.failure

    async def settle(self, pool: TokenPool, *, request_at_fault: bool) -> None:
        failure = _not_held(self.failure) if request_at_fault else self.failure
        await pool.settle(self.lease, replace(self.outcome, failure=failure))


def _not_held(exc: UpstreamError) -> UpstreamError:
    """``exc`` as the pool's "the request's fault" kind: counted and logged on the account, no penalty."""
    return UpstreamError(FailureKind.BAD_REQUEST, f"{exc.kind.value} (not held against the account): {exc.message}")


def _request_at_fault(exc: UpstreamError, attempts: int) -> UpstreamError:
    error = UpstreamError(
        exc.kind,
        f"{exc.message} (the same failure on {attempts} accounts: this request is the likely cause, so no "
        "further account was tried)",
        upstream_status=exc.upstream_status,
    )
    error.code = "upstream_rejected_request"
    return error


def _accepted(head: list[Event]) -> bool:
    """grok.com charges a turn once it has opened the conversation."""
    return any(isinstance(event, ConversationStarted | UserTurn) for event in head)


def _stream_error(event: StreamError) -> UpstreamError:
    text = f"{event.code} {event.message}".lower()
    if event.is_usage_limit:
        return UpstreamError(FailureKind.RATE_LIMITED, f"grok.com: {event.message}", quota_exhausted=True)
    if event.is_anti_bot:
        return UpstreamError(
            FailureKind.ANTI_BOT, f"grok.com rejected the request by its anti-bot rules: {event.message}"
        )
    if any(marker in text for marker in BLOCKED_MARKERS):
        return UpstreamError(FailureKind.BLOCKED, f"account is blocked by grok.com: {event.message}")
    if any(marker in text for marker in AUTH_MARKERS):
        return UpstreamError(FailureKind.UNAUTHORIZED, f"session token rejected: {event.message}")
    return UpstreamError(FailureKind.STREAM, f"grok.com reported an error: {event.message}")


def stream_error(event: StreamError) -> UpstreamError:
    """Public form of the in-stream error mapping, for errors after the first byte."""
    return _stream_error(event)
