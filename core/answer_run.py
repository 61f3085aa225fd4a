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
from collections.abc import AsyncIterator
from dataclasses import dataclass

from core.aio import with_heartbeats
from core.answer import Answer, AnswerBuilder, estimate_tokens
from core.chat import ChatStream, stream_error
from core.errors import FailureKind, GatewayError, UpstreamError
from core.grok.events import FinalMessage, SoftStop, StreamError
from core.reply import Finish, ReplyEvent, ReplyShaper, ReplySpec
from core.settings import Settings

log = logging.getLogger("grok2api")
INCOMPLETE = "grok.com closed the stream before the answer was complete"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Upstream has been silent for a heartbeat interval (SSE renderers send a keep-alive)."""


HEARTBEAT = Heartbeat()


class AnswerRun:
    """Iterate ``events()`` once; then ``close(failure)`` exactly once (it settles the lease)."""

    def __init__(
        self, settings: Settings, stream: ChatStream, spec: ReplySpec, *, streaming: bool, prompt_tokens: int
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.spec = spec
        self.prompt_tokens = prompt_tokens
        self.builder = AnswerBuilder(
            thinking_output=settings.thinking_output,
            filter_tags=settings.filter_tags,
            asset_url=lambda path: settings.grok_assets_url.rstrip("/") + "/" + path.lstrip("/"),
            stream=streaming,
            sources_footer=settings.sources_footer,
        )
        self.shaper = ReplyShaper(spec)
        self.finish: Finish | None = None

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
        return estimate_tokens(self.shaper.content) + self.reasoning_tokens + calls

    @property
    def reasoning_tokens(self) -> int:
        return estimate_tokens("".join(self.shaper.reasoning))

    async def events(self, heartbeat: float | None = None) -> AsyncIterator[ReplyEvent | Heartbeat | Finish]:
        """Core events in order, ``HEARTBEAT`` after each ``heartbeat`` seconds of upstream silence (at most
        ``lease_ttl / 3`` apart; None: no heartbeats), and last the ``Finish``. Raises ``GatewayError`` when the
        answer fails."""
        interval = min(heartbeat or self.keep_alive_interval, self.keep_alive_interval)
        saw_end = False
        async for event in with_heartbeats(self.stream.events(), interval):
            if event is None:  # silence: keep the lease, and tell a streaming client we are alive
                await self.stream.keep_alive()
                if heartbeat is not None:
                    yield HEARTBEAT
                continue
            if isinstance(event, StreamError):
                if not event.fatal:  # a warning (e.g. some search results failed): the answer goes on
                    log.info("grok.com warning: %s", event.message)
                    continue
                raise stream_error(event)
            saw_end |= isinstance(event, SoftStop | FinalMessage)
            for out in self.shaper.feed(self.builder.feed(event)):
                yield out
            if self.shaper.done:  # stop sequence or token limit: no need to hear the rest
                break
        if not saw_end and not self.shaper.done:
            raise UpstreamError(FailureKind.STREAM, INCOMPLETE)
        events, self.finish = self.shaper.finish(self.builder.finish())
        for out in events:
            yield out
        yield self.finish

    async def close(self, failure: GatewayError | None, *, keep: tuple[str, str, float] | None = None) -> None:
        """Close upstream and settle the lease (shielded: a client hanging up cannot skip it). ``keep`` = (store
        key, value, TTL) written in the same settle command."""
        await asyncio.shield(
            self.stream.finish(
                failure=failure, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                keep=keep,
            )
        )
