"""One upstream answer driven to the end, protocol-neutral: upstream events → ``AnswerBuilder`` → ``ReplyShaper``
→ core events. Every protocol renderer (OpenAI chat and completions, Anthropic Messages, Responses) iterates
``AnswerRun.events()`` and translates what comes out; none of them touches upstream events, leases or settling.

The run checks the stream contract once for everyone: a fatal in-stream error raises, a warning is logged and
skipped, an answer that ends without upstream's end marker is an error (unless the shaper ended it early: stop
sequence or token limit, which also closes upstream at once), and the lease is renewed through long silences.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from core import ledger
from core.aio import with_heartbeats
from core.answer import Answer, AnswerBuilder, estimate_tokens
from core.chat import ChatRequest, ChatStream, stream_error
from core.errors import FailureKind, GatewayError, UpstreamError
from core.gateway import Gateway
from core.grok.client import Credentials
from core.grok.events import FinalMessage, SoftStop, StreamError
from core.media.chat import ChatMedia
from core.prompt import Prompt
from core.reply import Finish, InvalidStructuredOutput, ReplyEvent, ReplyShaper, ReplySpec
from core.settings import Settings
from core.structured import repair_prompt
from core.tools import call_reminder

log = logging.getLogger("grok2api")
# Opens a follow-up turn (on the same account, through its sticky key) whose message adds the given text.
Repair = Callable[[str], Awaitable[ChatStream]]
INCOMPLETE = "grok.com closed the stream before the answer was complete"


def repair_key(spec: ReplySpec) -> str | None:
    """A sticky key for a request that may need a repair turn, so that turn finds the same account."""
    return f"repair:{secrets.token_hex(8)}" if spec.wants_json or spec.must_call else None


def repair_turn(gw: Gateway, request: ChatRequest) -> Repair:
    """The repair turn of ``request``: its message plus the repair instructions, on its sticky account."""

    async def open_repair(extra: str) -> ChatStream:
        prompt = Prompt(message=request.prompt.message + "\n\n" + extra, images=request.prompt.images)
        return await gw.chat.open(replace(request, prompt=prompt))

    return open_repair


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Upstream has been silent for a heartbeat interval (SSE renderers send a keep-alive)."""


HEARTBEAT = Heartbeat()


class AnswerRun:
    """Iterate ``events()`` once; then ``close(failure)`` exactly once (it settles the lease)."""

    def __init__(
        self, settings: Settings, stream: ChatStream, spec: ReplySpec, *, streaming: bool, prompt_tokens: int,
        repair: Repair | None = None, media: ChatMedia | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.spec = spec
        self.prompt_tokens = prompt_tokens
        self.streaming = streaming
        # One repair turn for JSON that does not validate, or an answer without the call tool_choice asks for.
        self.repair = repair if spec.wants_json or spec.must_call else None
        self.repaired = False
        # Generated images are fetched with the account's cookies and kept in the media store before the
        # answer's end renders them (``media``; without it they link to the assets host, which needs cookies).
        self.media = media
        self._image_links: dict[str, str | None] = {}
        self.builder = self._builder()
        self.shaper = ReplyShaper(spec)
        self.finish: Finish | None = None

    def _builder(self) -> AnswerBuilder:
        settings = self.settings
        return AnswerBuilder(
            thinking_output=settings.thinking_output,
            filter_tags=settings.filter_tags,
            asset_url=self._image_link,
            stream=self.streaming,
            sources_footer=settings.sources_footer,
        )

    def _image_link(self, path: str) -> str | None:
        if self.media is None:
            return self.settings.grok_assets_url.rstrip("/") + "/" + path.lstrip("/")
        return self._image_links.get(path)

    async def _keep_images(self, heartbeat: float | None) -> AsyncIterator[Heartbeat]:
        """Store the answer's new generated images (nothing to do, and no cost, when it has none), sending
        heartbeats while the downloads run."""
        paths = [path for path in self.builder.image_paths if path not in self._image_links]
        if self.media is None or not paths:
            return
        creds = Credentials(token=self.stream.lease.token, account_id=self.stream.account_id)
        task = asyncio.ensure_future(self.media.links(creds, paths))
        interval = min(heartbeat or self.keep_alive_interval, self.keep_alive_interval)
        try:
            while not (await asyncio.wait({task}, timeout=interval))[0]:
                await self.stream.keep_alive()
                if heartbeat is not None:
                    yield HEARTBEAT
        finally:
            task.cancel()
        self._image_links.update(task.result())

    @property
    def answer(self) -> Answer:
        return self.builder.answer

    @property
    def keep_alive_interval(self) -> float:
        """Longest upstream silence before the lease is looked at (it lives ``lease_ttl`` unless renewed)."""
        return self.settings.lease_ttl / 3

    @property
    def completion_tokens(self) -> int:
        calls = sum(estimate_tokens(call.arguments_json) for call in self.shaper.calls)
        written = self.shaper.content + self.shaper.withheld_text  # a turn settled before a repair held its text
        return estimate_tokens(written) + self.reasoning_tokens + calls

    @property
    def reasoning_tokens(self) -> int:
        return estimate_tokens("".join(self.shaper.reasoning))

    async def events(self, heartbeat: float | None = None) -> AsyncIterator[ReplyEvent | Heartbeat | Finish]:
        """Core events in order, ``HEARTBEAT`` after each ``heartbeat`` seconds of upstream silence (at most
        ``lease_ttl / 3`` apart; None: no heartbeats), and last the ``Finish``. Raises ``GatewayError`` when the
        answer fails.

        A JSON answer that does not validate, or one without the call ``tool_choice`` asks for, gets one repair
        turn (on the same account) before it is judged for good; its text was held, so the client sees only the
        final one. A required call still missing after it: the text is the answer (``finish_reason`` stop)."""
        while True:
            async for item in self._upstream(heartbeat):
                yield item
            async for beat in self._keep_images(heartbeat):
                yield beat
            try:
                events, finish = self.shaper.finish(self.builder.finish())
            except InvalidStructuredOutput:
                if not await self._repair_json():
                    raise
                continue
            if self.shaper.json_problems and await self._repair_json():
                continue
            choice = self.spec.choice
            if self.shaper.call_missing and choice is not None:  # call_missing: must_call, so a choice is set
                if await self._repair(call_reminder(choice, self.shaper.content + self.shaper.withheld_text)):
                    continue
                log.info("tool_choice %s: no call after the repair turn; answering with text", choice.mode)
                events += self.shaper.release_held()
            self.finish = finish
            for out in events:
                yield out
            yield finish
            return

    async def _upstream(self, heartbeat: float | None) -> AsyncIterator[ReplyEvent | Heartbeat]:
        interval = min(heartbeat or self.keep_alive_interval, self.keep_alive_interval)
        saw_end = False
        last_out = time.monotonic()  # a held answer (JSON, a required call) gives nothing out while it streams
        async for event in with_heartbeats(self.stream.events(), interval):
            if event is None:  # silence: keep the lease, and tell a streaming client we are alive
                await self.stream.keep_alive()
                if heartbeat is not None:
                    yield HEARTBEAT
                    last_out = time.monotonic()
                continue
            if isinstance(event, StreamError):
                if not event.fatal:  # a warning (e.g. some search results failed): the answer goes on
                    log.info("grok.com warning: %s", event.message)
                    continue
                raise stream_error(event)
            saw_end |= isinstance(event, SoftStop | FinalMessage)
            gave = False
            for out in self.shaper.feed(self.builder.feed(event)):
                gave = True
                yield out
            now = time.monotonic()
            if gave:
                last_out = now
            elif heartbeat is not None and now - last_out >= heartbeat:
                last_out = now
                yield HEARTBEAT
            if self.shaper.done:  # stop sequence or token limit: no need to hear the rest
                break
        if not saw_end and not self.shaper.done:
            raise UpstreamError(FailureKind.STREAM, INCOMPLETE)

    async def _repair_json(self) -> bool:
        if self.spec.output is None or self.repair is None or self.repaired:
            return False
        problems, raw = self.shaper.json_problems or ["no JSON value found"], self.shaper.json_raw
        log.info("structured output did not validate (%s); asking once more", "; ".join(problems[:3]))
        return await self._repair(repair_prompt(self.spec.output, raw, problems))

    async def _repair(self, extra: str) -> bool:
        """Settle this answer and open the repair turn (the request's message plus ``extra``); False when there
        is none to try (one per request)."""
        if self.repair is None or self.repaired:
            return False
        self.repaired = True
        await self._settle(None, keep=None, record=None)  # not the request's last settle: no ledger yet
        try:
            stream = await self.repair(extra)
        except GatewayError as exc:  # no account, upstream refused: judge the first answer as it is
            log.info("repair turn not opened (%s); keeping the first answer", exc.message)
            return False
        record = ledger.current()
        if record is not None:  # the request's log entry and a key's token quota count every turn upstream did
            record.prompt_tokens += self.prompt_tokens
            record.completion_tokens += self.completion_tokens
        self.stream = stream
        self.prompt_tokens += estimate_tokens(extra)  # the repair turn's message: the request's plus ``extra``
        self.builder, self.shaper = self._builder(), ReplyShaper(self.spec)
        return True

    async def collect(self, feed: Callable[[ReplyEvent], object] | None = None) -> Finish:
        """Drive the whole answer (non-streaming routes), handing each core event to ``feed``, then settle; the
        ``Finish``. A failure settles as failed and is raised."""
        failure: GatewayError | None = None
        finish = Finish("stop")
        try:
            async for event in self.events():
                if isinstance(event, Finish):
                    finish = event
                elif feed is not None and not isinstance(event, Heartbeat):
                    feed(event)
        except GatewayError as exc:
            failure = exc
            raise
        finally:
            await self.close(failure)
        return finish

    async def close(self, failure: GatewayError | None, *, keep: tuple[str, str, float] | None = None) -> None:
        """Close upstream and settle the lease (shielded: a client hanging up cannot skip it). ``keep`` = (store
        key, value, TTL) written in the same settle command, and so is the request's ledger record (core/ledger):
        the log entry and counters of a chat answer cost no store command of their own."""
        record = ledger.current()
        if record is not None and not record.written:
            record.stream = self.streaming
            if failure is not None:  # a stream already answered 200: the failure is its error event
                status = 200 if self.streaming else failure.status
                record.fail(status, failure.code or failure.type, failure.message)
            elif not record.status:
                record.status = 200
            record.answer = self.shaper.content
        await self._settle(failure, keep=keep, record=record)

    async def _settle(
        self, failure: GatewayError | None, *, keep: tuple[str, str, float] | None, record: ledger.RequestRecord | None
    ) -> None:
        await asyncio.shield(
            self.stream.finish(
                failure=failure, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                keep=keep, record=record,
            )
        )
