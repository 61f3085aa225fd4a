"""Typed events parsed from either chat transport (REST NDJSON lines or mgw WebSocket frames).

Both transports reduce to this one vocabulary, so everything downstream (markup filtering, OpenAI and Anthropic
output, accounting) is written once. Text in ``AnswerText`` is raw: it may still carry ``<grok:render>`` and other
markup; filtering is the answer builder's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConversationStarted:
    conversation_id: str


@dataclass(frozen=True, slots=True)
class UserTurn:
    """The echo of our prompt; ``response_id`` is the user turn id."""

    response_id: str


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """``llmInfo.modelHash`` — used as the OpenAI ``system_fingerprint``."""

    model_hash: str


@dataclass(frozen=True, slots=True)
class AnswerText:
    """A delta of the visible answer (REST ``messageTag:"final"``, mgw ``CHANNEL_ASSISTANT_RESPONSE``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ThinkingText:
    """A delta of reasoning. ``header`` marks a step title (``messageTag:"header"`` / NOTETAKER_HEADER)."""

    text: str
    step_id: int | None = None
    header: bool = False
    rollout_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A built-in tool invocation card (web_search, x_search, code_execution, browse_page, ...)."""

    card_id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    rollout_id: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    title: str = ""
    snippet: str = ""


@dataclass(frozen=True, slots=True)
class SearchResults:
    """Web or X search hits (``webSearchResults``, ``xSearchResults``, mgw ``tool_result``/``search.result``)."""

    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class Card:
    """A ``cardAttachment`` (REST) or ``card_attachment``/``render_citation`` (mgw): the target of a
    ``<grok:render card_id=...>`` tag. ``data`` is the decoded card JSON."""

    card_id: str
    type: str  # render_inline_citation | render_generated_image | render_searched_image | render_file | ...
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str | None:
        value = self.data.get("url")
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ImageProgress:
    """In-chat image generation progress (``streamingImageGenerationResponse`` or an image card chunk)."""

    image_id: str
    url: str  # relative to the assets host, e.g. users/<uid>/generated/<id>/image.jpg
    progress: int
    index: int = 0
    moderated: bool = False

    @property
    def done(self) -> bool:
        return self.progress >= 100 and not self.moderated


@dataclass(frozen=True, slots=True)
class VideoProgress:
    video_id: str
    progress: int
    url: str | None = None
    thumbnail_url: str | None = None
    moderated: bool = False


@dataclass(frozen=True, slots=True)
class SoftStop:
    """End of answer text (empty token with ``isSoftStop:true``)."""


@dataclass(frozen=True, slots=True)
class FinalMessage:
    """``modelResponse`` (REST) / ``response.done`` (mgw): the authoritative end of a turn."""

    response_id: str
    message: str = ""
    generated_image_urls: tuple[str, ...] = ()
    file_attachments: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    cards: tuple[Card, ...] = ()
    stream_errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Title:
    title: str


@dataclass(frozen=True, slots=True)
class StreamError:
    """An error reported inside a 200 stream (in-stream ``error`` object or mgw ``error`` event)."""

    message: str
    code: str | int | None = None
    fatal: bool = True

    @property
    def is_usage_limit(self) -> bool:
        text = self.message.lower()
        return "usage limit" in text or "too many requests" in text or self.code in (8, "rate_limit")

    @property
    def is_anti_bot(self) -> bool:
        return self.code in (7, "anti_bot") or "anti-bot" in self.message.lower()


Event = (
    ConversationStarted
    | UserTurn
    | ModelInfo
    | AnswerText
    | ThinkingText
    | ToolUse
    | SearchResults
    | Card
    | ImageProgress
    | VideoProgress
    | SoftStop
    | FinalMessage
    | Title
    | StreamError
)
