"""Transport-neutral script of one assistant turn.

Scenarios build a ``Script``; ``rest.py`` renders it as NDJSON lines and ``mgw.py`` as WebSocket events, so both
transports always tell the same story. ``delay`` names the timing knob applied before the step is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(slots=True)
class Token:
    """Answer text (REST ``messageTag:"final"``, mgw ``CHANNEL_ASSISTANT_RESPONSE``)."""

    text: str
    delay: ClassVar[str] = "token"


@dataclass(slots=True)
class RenderTag:
    """A ``<grok:render>`` tag: a final token on REST, a ``render_citation``/card chunk on mgw."""

    text: str
    card: dict[str, Any]
    delay: ClassVar[str] = "token"


@dataclass(slots=True)
class Thought:
    """Reasoning text. ``tag`` is ``"header"`` (a step title) or ``"summary"``."""

    text: str
    tag: str
    step_id: int
    rollout_id: str | None = None
    delay: ClassVar[str] = "token"


@dataclass(slots=True)
class ToolCard:
    card_id: str
    tool: str  # web_search | chatroom_send | ...
    args: dict[str, Any]
    step_id: int
    rollout_id: str | None = None
    delay: ClassVar[str] = "token"


@dataclass(slots=True)
class ToolResult:
    card_id: str
    results: list[dict[str, str]]  # [{url, title, preview}]
    step_id: int
    delay: ClassVar[str] = "token"


@dataclass(slots=True)
class Card:
    """A ``cardAttachment`` (``jsonData`` is this dict, JSON-encoded)."""

    data: dict[str, Any]
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class ImageDimensions:
    width: int
    height: int
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class ImageProgress:
    image_id: str
    url: str
    progress: int
    index: int
    moderated: bool | None = None  # only present on the 100 % frame
    delay: ClassVar[str] = "image"


@dataclass(slots=True)
class ProgressReport:
    data: dict[str, Any]
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class VideoProgress:
    data: dict[str, Any]
    delay: ClassVar[str] = "video"


@dataclass(slots=True)
class EmptyToken:
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class StreamError:
    """In-stream failure inside HTTP 200; ends the turn."""

    message: str
    severity: str | None = None
    card: dict[str, Any] | None = None
    code: str = "stream_error"  # mgw error code
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class Stall:
    seconds: float
    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class Abort:
    """Drop the connection without finishing the response."""

    delay: ClassVar[str] = "none"


@dataclass(slots=True)
class End:
    """Finish the response cleanly right here (no soft stop, no modelResponse)."""

    delay: ClassVar[str] = "none"


Step = (
    Token | RenderTag | Thought | ToolCard | ToolResult | Card | ImageDimensions | ImageProgress
    | ProgressReport | VideoProgress | EmptyToken | StreamError | Stall | Abort | End
)


@dataclass(slots=True)
class Final:
    """What follows the soft stop: ``finalMetadata``, ``modelResponse``, ``title``."""

    message: str
    title: str
    generated_image_urls: list[str] = field(default_factory=list)
    web_search_results: list[dict[str, str]] = field(default_factory=list)
    card_attachments_json: list[str] = field(default_factory=list)
    file_attachments: list[str] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)
    empty_token_after_soft_stop: bool = False  # video streams


@dataclass(slots=True)
class Script:
    steps: list[Step]
    final: Final | None  # None: the turn ends abnormally inside ``steps``
    thinking: bool = False  # reasoning-style uiLayout (willThinkLong, HIGH effort)
    rollout_ids: list[str] = field(default_factory=list)
