"""Protocol-neutral answer assembly: typed upstream events in, content/reasoning deltas out.

``AnswerBuilder`` is the one place that decides what the client sees: markup filtering and citations, where
reasoning goes (``thinking_output``), how tool calls read, and which generated images are appended. The OpenAI and
Anthropic layers only translate its ``ContentDelta``/``ReasoningDelta`` stream (or the final ``Answer``) into their
wire formats.

Invariant: ``answer.content`` is the concatenation of every ``ContentDelta`` and ``answer.reasoning`` of every
``ReasoningDelta``, so streamed and non-streamed responses agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from core.grok.events import (
    AnswerText,
    Card,
    ConversationStarted,
    Event,
    FinalMessage,
    ImageProgress,
    ModelInfo,
    SearchResults,
    SoftStop,
    Source,
    StreamError,
    ThinkingText,
    Title,
    ToolUse,
)
from core.grok.markup import DEFAULT_FILTER_TAGS, CardRenderer, Element, MarkupFilter

__all__ = [
    "Answer",
    "AnswerBuilder",
    "ContentDelta",
    "Delta",
    "ReasoningDelta",
    "default_asset_url",
    "estimate_tokens",
]

ThinkingOutput = Literal["separate", "inline", "hidden"]
ASSETS_BASE = "https://assets.grok.com/"
_PARTIAL_IMAGE = re.compile(r"-part-\d+")
_THINK_OPEN, _THINK_CLOSE = "<think>\n", "\n</think>\n\n"


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


Delta = ContentDelta | ReasoningDelta


@dataclass
class Answer:
    content: str = ""
    reasoning: str = ""
    sources: list[Source] = field(default_factory=list)
    citations: list[tuple[int, str, str]] = field(default_factory=list)  # (index, url, title)
    images: list[str] = field(default_factory=list)  # absolute URLs, in completion order
    conversation_id: str | None = None
    response_id: str | None = None
    model_hash: str | None = None
    title: str | None = None
    error: StreamError | None = None
    final: FinalMessage | None = None
    finished: bool = False  # a soft stop or the final message was seen


MAX_FOOTER_SOURCES = 10


def format_sources(sources: list[Source]) -> str:
    """A markdown "Sources" list for the end of an answer (search results a chat app can show)."""
    lines = [f"{n}. [{(s.title or s.url).replace(']', ')')}]({s.url})" for n, s in
             enumerate(sources[:MAX_FOOTER_SOURCES], 1)]
    return "\n\nSources:\n" + "\n".join(lines)


def default_asset_url(path: str) -> str:
    """Upstream image paths are relative to the assets host."""
    if path.startswith(("http://", "https://")):
        return path
    return ASSETS_BASE + path.lstrip("/")


# Tool names as readable reasoning labels, and the argument worth showing (PY gateway style).
_TOOL_LABELS: dict[str, tuple[str, str | None]] = {
    "web_search": ("WebSearch", "query"),
    "x_search": ("XSearch", "query"),
    "code_execution": ("CodeExecution", None),
    "browse_page": ("BrowsePage", "url"),
    "search_images": ("SearchImage", "image_description"),
    "chatroom_send": ("AgentThink", "message"),
}
_FALLBACK_ARGS = ("query", "url", "message", "description")


class AnswerBuilder:
    """Feed events in stream order; emit deltas for the client.

    ``stream=False`` (non-streaming requests) lets citation tags whose card has not arrived yet wait until the
    end instead of being dropped; the text after such a tag is then released late, which only a stream would notice.
    """

    def __init__(
        self,
        thinking_output: ThinkingOutput = "separate",
        filter_tags: Iterable[str] = DEFAULT_FILTER_TAGS,
        asset_url: Callable[[str], str | None] = default_asset_url,  # None: leave that image out
        *,
        stream: bool = True,
        sources_footer: bool = False,
    ) -> None:
        self._thinking_output = thinking_output
        self._sources_footer = sources_footer
        self._filter_tags = tuple(filter_tags)
        self._asset_url = asset_url
        self._renderer = CardRenderer()
        self._filter = MarkupFilter(self._filter_tags, self._renderer, hold_unresolved=not stream)
        self._answer = Answer()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._source_urls: set[str] = set()
        self._tool_keys: set[object] = set()
        self._image_paths: list[str] = []
        self._moderated: set[str] = set()  # image ids and URLs that came back moderated
        self._answer_started = False  # any AnswerText seen: later reasoning is not shown
        self._think_open = False
        self._in_header = False
        self._done = False

    @property
    def answer(self) -> Answer:
        answer = self._answer
        answer.content = "".join(self._content)
        answer.reasoning = "".join(self._reasoning)
        answer.citations = [(c.index, c.url, c.title) for c in self._renderer.citations]
        answer.images = [url for url in map(self._asset_url, self._image_paths) if url]
        return answer

    @property
    def image_paths(self) -> tuple[str, ...]:
        """Upstream paths of the generated images kept so far (moderated ones dropped), for ``asset_url``."""
        return tuple(self._image_paths)

    # -- events ---------------------------------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Delta]:
        out: list[Delta] = []
        match event:
            case AnswerText(text=text):
                self._answer_started = True
                self._emit_content(out, self._filter.feed(text))
            case ThinkingText():
                self._thinking(out, event)
            case ToolUse():
                self._tool_use(out, event)
            case SearchResults(sources=sources):
                self._add_sources(sources)
            case Card():
                self._card(out, event)
            case ImageProgress():
                self._image(event)
            case FinalMessage():
                self._final(out, event)
            case SoftStop():
                self._answer.finished = True
            case StreamError():
                if self._answer.error is None or (event.fatal and not self._answer.error.fatal):
                    self._answer.error = event
            case ConversationStarted(conversation_id=conversation_id):
                self._answer.conversation_id = conversation_id
            case ModelInfo(model_hash=model_hash):
                self._answer.model_hash = model_hash
            case Title(title=title):
                self._answer.title = title
        return out

    def feed_all(self, events: Iterable[Event]) -> list[Delta]:
        return [delta for event in events for delta in self.feed(event)]

    def finish(self) -> list[Delta]:
        """Flush held markup, fall back to the final message, close ``<think>``, append images. Idempotent."""
        if self._done:
            return []
        self._done = True
        out: list[Delta] = []
        self._emit_content(out, self._filter.finish())
        final = self._answer.final
        if not self._answer_started and final is not None and final.message:
            # No tokens (or tokens lost): the final message is authoritative. Empty message (multi-agent
            # modes) keeps the concatenated tokens instead.
            fallback = MarkupFilter(self._filter_tags, self._renderer, hold_unresolved=True)
            self._emit_content(out, fallback.feed(final.message) + fallback.finish())
        images = "".join(f"\n\n![image]({url})" for url in map(self._asset_url, self._image_paths) if url)
        self._emit_content(out, images)
        if self._sources_footer and self._answer.sources:
            self._emit_content(out, format_sources(self._answer.sources))
        if self._think_open:
            self._push_content(out, self._close_think())
        return out

    # -- reasoning ------------------------------------------------------------------------------------------------

    def _thinking(self, out: list[Delta], event: ThinkingText) -> None:
        if event.header:
            continuing = self._in_header
            self._in_header = True
            self._emit_reasoning(out, event.text if continuing else self._line_start() + event.text)
            return
        prefix = "\n" if self._in_header else ""
        self._in_header = False
        self._emit_reasoning(out, prefix + event.text)

    def _tool_use(self, out: list[Delta], tool: ToolUse) -> None:
        key = tool.card_id or (tool.name, repr(sorted(tool.args.items())))
        if key in self._tool_keys:
            return  # a card split over several tokens may repeat its structure
        self._tool_keys.add(key)
        if tool.name in _TOOL_LABELS:
            label, arg_name = _TOOL_LABELS[tool.name]
            names: tuple[str, ...] = (arg_name,) if arg_name else ()
        else:
            label, names = _camel(tool.name), _FALLBACK_ARGS
        value = next((str(tool.args[name]) for name in names if tool.args.get(name)), "")
        line = f"[{label}] {value}".rstrip()
        if tool.rollout_id:
            line = f"[{tool.rollout_id}] {line}"
        self._in_header = False
        self._emit_reasoning(out, self._line_start() + line + "\n")

    def _line_start(self) -> str:
        """A newline when the reasoning so far does not end at the start of a line."""
        last = self._reasoning[-1] if self._reasoning else (self._content[-1] if self._think_open else "")
        return "\n" if last and not last.endswith("\n") else ""

    def _emit_reasoning(self, out: list[Delta], text: str) -> None:
        if not text or self._answer_started or self._thinking_output == "hidden":
            return
        if self._thinking_output == "separate":
            self._reasoning.append(text)
            out.append(ReasoningDelta(text))
            return
        if not self._think_open:
            self._think_open = True
            text = _THINK_OPEN + text.lstrip("\n")
        self._content.append(text)
        out.append(ContentDelta(text))

    # -- content --------------------------------------------------------------------------------------------------

    def _emit_content(self, out: list[Delta], text: str) -> None:
        if not text:
            return
        if self._think_open:
            text = self._close_think() + text
        self._push_content(out, text)

    def _close_think(self) -> str:
        self._think_open = False
        return _THINK_CLOSE[1:] if self._content[-1].endswith("\n") else _THINK_CLOSE

    def _push_content(self, out: list[Delta], text: str) -> None:
        self._content.append(text)
        out.append(ContentDelta(text))

    def _add_sources(self, sources: Iterable[Source]) -> None:
        for source in sources:
            self._renderer.add_source(source)
            if source.url not in self._source_urls:
                self._source_urls.add(source.url)
                self._answer.sources.append(source)

    def _card(self, out: list[Delta], card: Card) -> None:
        self._renderer.add_card(card)
        if card.type == "render_inline_citation" and card.url:
            self._add_sources([Source(card.url, _str(card.data.get("title")))])
        if _is_positional_citation(card):
            element = Element("grok:render", {"card_id": card.card_id, "type": card.type})
            self._emit_content(out, self._filter.insert(element))
        elif self._filter.holding:
            self._emit_content(out, self._filter.resume())

    def _image(self, image: ImageProgress) -> None:
        if image.moderated:
            self._moderated.update(value for value in (image.image_id, image.url) if value)
        elif image.done and image.url:
            self._add_image(image.url)

    def _add_image(self, path: str) -> None:
        if _PARTIAL_IMAGE.search(path) or path in self._image_paths:
            return
        if path in self._moderated or self._moderated.intersection(path.split("/")):
            return  # listed in generatedImageUrls although its progress frame said moderated
        self._image_paths.append(path)

    def _final(self, out: list[Delta], final: FinalMessage) -> None:
        self._answer.final = final
        self._answer.finished = True
        if final.response_id:
            self._answer.response_id = final.response_id
        for card in final.cards:
            self._renderer.cards.setdefault(card.card_id, card)
        self._add_sources(final.sources)
        for path in final.generated_image_urls:
            self._add_image(path)
        if self._filter.holding:
            self._emit_content(out, self._filter.resume())


def _is_positional_citation(card: Card) -> bool:
    """mgw ``render_citation`` chunks stand where the citation goes (no ``<grok:render>`` tag refers to them);
    they carry ``kind``/``citation_id``, which REST ``cardAttachment`` citations do not."""
    if card.type != "render_inline_citation" or "cardType" in card.data:
        return False
    return "kind" in card.data or "citation_id" in card.data


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "Tool"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


# ------------------------------------------------------------------------------------------------------------------
# Token estimate
# ------------------------------------------------------------------------------------------------------------------

# CJK ideographs, kana, Hangul and full-width forms: roughly one token per character.
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")


def estimate_tokens(text: str) -> int:
    """Cheap usage estimate: one token per CJK character, one per ~4 other characters."""
    if not text:
        return 0
    wide = len(_WIDE.findall(text))
    rest = len(text) - wide
    return max(1, wide + (rest + 3) // 4)
