"""Streaming removal and rewriting of Grok's inline markup in answer text.

Grok puts XML-ish elements into answer tokens: ``<xai:tool_usage_card>`` (tool calls), ``<grok:render ...>``
(placeholders for cards delivered separately) and ``<xaiArtifact>`` (canvas documents). ``MarkupFilter`` removes
whole elements of the configured tags, including their content, while text streams through: it holds back text only
from a ``<`` that may start such a tag until the tag is decided, and emits everything else immediately. A ``<`` that
does not start a configured tag (``a < b``, ``<b>``, unknown tags) is plain text and kept.

Removed elements are handed to a renderer that may replace them. ``CardRenderer`` does what the gateways do:
``render_inline_citation`` becomes ``[[N]](url)`` numbered per unique URL, ``render_searched_image`` becomes
``[![title](thumbnail)](link)``, generated images and files are removed (the answer builder appends images itself).

A citation tag may arrive before its card (the reference does not pin down the order). With
``hold_unresolved=False`` (streaming) such a tag is dropped; with ``True`` the filter holds the tag and all text after
it until ``resume()`` finds the card or ``finish()`` gives up on it (see ``core.answer``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.grok.events import Card, Source

DEFAULT_FILTER_TAGS = ("xaiartifact", "xai:tool_usage_card", "grok:render")

_ATTRIBUTE = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ARGUMENT = re.compile(r"""<argument\s+name\s*=\s*["']([^"']*)["']\s*>(.*?)</argument\s*>""", re.S | re.I)


@dataclass(frozen=True, slots=True)
class Element:
    """One removed element. ``name`` is lower-case; ``inner`` is its raw content."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    inner: str = ""

    @property
    def arguments(self) -> dict[str, str]:
        """``<argument name="x">v</argument>`` children (used inside ``<grok:render>``)."""
        return {name: value.strip() for name, value in _ARGUMENT.findall(self.inner)}


# render(element, final) -> replacement text, or None when it cannot be rendered yet (only asked when not final)
Renderer = Callable[[Element, bool], "str | None"]


def _drop(element: Element, final: bool) -> str:
    return ""


class MarkupFilter:
    """Incremental filter: ``feed`` text deltas, get filtered deltas back; ``finish`` flushes what is held."""

    def __init__(
        self,
        tags: Iterable[str] = DEFAULT_FILTER_TAGS,
        render: Renderer = _drop,
        *,
        hold_unresolved: bool = False,
    ) -> None:
        self._names = tuple(sorted({tag.lower() for tag in tags if tag}, key=len, reverse=True))
        self._render = render
        self._hold_unresolved = hold_unresolved
        self._tag_start = (
            re.compile("<(/?)(" + "|".join(map(re.escape, self._names)) + r")(?=[\s/>])", re.I)
            if self._names
            else None
        )
        self._max_name = max(map(len, self._names), default=0)
        self._pending = ""  # unprocessed text starting at a "<" that may open a configured tag
        self._held: list[str | Element] = []  # output waiting behind an unresolved element
        self._last_replacement: str | None = None  # to collapse identical replacements that follow each other

    def feed(self, text: str) -> str:
        if not text:
            return ""
        if self._tag_start is None:
            return self._output([text])
        self._pending += text
        return self._output(self._scan(final=False))

    def insert(self, element: Element) -> str:
        """Place an element at the current position (mgw citations arrive as separate chunks, not as tags)."""
        parts = self._scan(final=True) if self._pending else []
        return self._output([*parts, element])

    def resume(self) -> str:
        """Retry held elements, e.g. after a new card arrived; returns the text that could be released."""
        held, self._held = self._held, []
        return self._output(held)

    def finish(self) -> str:
        parts = self._scan(final=True) if self._pending else []
        text = self._output(parts)
        held, self._held = self._held, []
        return text + "".join(self._resolve(part, final=True) for part in held)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    # -- output ---------------------------------------------------------------------------------------------------

    def _output(self, parts: Iterable[str | Element]) -> str:
        out: list[str] = []
        for part in parts:
            if self._held:
                self._held.append(part)
                continue
            if isinstance(part, Element):
                text = self._render(part, False)
                if text is None:
                    if self._hold_unresolved:
                        self._held.append(part)
                        continue
                    text = ""
                out.append(self._collapse(text))
            else:
                out.append(self._plain(part))
        return "".join(out)

    def _resolve(self, part: str | Element, final: bool) -> str:
        if isinstance(part, str):
            return self._plain(part)
        return self._collapse(self._render(part, final) or "")

    def _plain(self, text: str) -> str:
        if text.strip():
            self._last_replacement = None
        return text

    def _collapse(self, text: str) -> str:
        if text and text == self._last_replacement:
            return ""  # the same citation twice in a row adds nothing
        if text:
            self._last_replacement = text
        return text

    # -- scanning -------------------------------------------------------------------------------------------------

    def _scan(self, final: bool) -> list[str | Element]:
        """Split ``_pending`` into plain text and elements; keep an undecided tail in ``_pending``."""
        buf, pos, parts = self._pending, 0, []
        self._pending = ""
        while True:
            lt = buf.find("<", pos)
            if lt < 0:
                parts.append(buf[pos:])
                return parts
            parts.append(buf[pos:lt])
            decided = self._element_at(buf, lt, final)
            if decided is None:  # cannot decide yet: hold from the "<"
                self._pending = buf[lt:]
                return parts
            end, element = decided
            if end == lt:  # not one of our tags: a literal "<"
                parts.append("<")
                pos = lt + 1
            else:
                if element is not None:
                    parts.append(element)
                pos = end

    def _element_at(self, buf: str, lt: int, final: bool) -> tuple[int, Element | None] | None:
        """Decide what starts at ``buf[lt] == "<"``.

        Returns ``(lt, None)`` for a literal ``<``, ``(end, element_or_None)`` for a removed element or stray closing
        tag ending at ``end``, or ``None`` when more text is needed.
        """
        assert self._tag_start is not None
        match = self._tag_start.match(buf, lt)
        if match is None:
            rest = buf[lt + 1 : lt + 2 + self._max_name].lower()
            if not final and lt + 1 + len(rest) == len(buf) and self._could_be_tag(rest):
                return None
            return lt, None
        closing, name = match.group(1) == "/", match.group(2).lower()
        open_end = _tag_end(buf, match.end())
        if open_end is None:
            return (len(buf), None) if final else None  # an unfinished tag at the very end is dropped
        if closing:
            return open_end, None  # a closing tag without its opening one
        attrs = _attributes(buf[match.end() : open_end])
        if buf[open_end - 2] == "/":
            return open_end, Element(name, attrs)
        close = self._find_close(buf, name, open_end)
        if close is None:
            if not final:
                return None
            return len(buf), Element(name, attrs, buf[open_end:])  # unclosed at the end: render what we know
        close_start, close_end = close
        return close_end, Element(name, attrs, buf[open_end:close_start])

    def _could_be_tag(self, rest: str) -> bool:
        """True when ``"<" + rest`` is a prefix of an opening or closing configured tag."""
        rest = rest[1:] if rest.startswith("/") else rest
        return any(name.startswith(rest) for name in self._names)

    def _find_close(self, buf: str, name: str, start: int) -> tuple[int, int] | None:
        """Find the closing tag matching an element opened before ``start`` (same-name nesting counted)."""
        depth = 1
        pattern = re.compile("<(/?)" + re.escape(name) + r"(?=[\s/>])", re.I)
        for match in pattern.finditer(buf, start):
            end = _tag_end(buf, match.end())
            if end is None:
                return None
            if match.group(1):
                depth -= 1
                if depth == 0:
                    return match.start(), end
            elif buf[end - 2] != "/":
                depth += 1
        return None


def _tag_end(buf: str, pos: int) -> int | None:
    """Index just past the ``>`` closing a tag whose attributes start at ``pos`` (quoted ``>`` skipped)."""
    quote = ""
    for index in range(pos, len(buf)):
        char = buf[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == ">":
            return index + 1
    return None


def _attributes(text: str) -> dict[str, str]:
    return {name.lower(): double or single for name, double, single in _ATTRIBUTE.findall(text)}


# ------------------------------------------------------------------------------------------------------------------
# Cards → markdown
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citation:
    index: int
    url: str
    title: str = ""


class CardRenderer:
    """Renders ``<grok:render>`` elements from known cards; numbers citations per unique URL."""

    def __init__(self) -> None:
        self.cards: dict[str, Card] = {}
        self._citation_index: dict[str, int] = {}
        self._titles: dict[str, str] = {}

    def add_card(self, card: Card) -> None:
        self.cards[card.card_id] = card
        title = card.data.get("title")
        if card.url and isinstance(title, str) and title:
            self._titles.setdefault(card.url, title)

    def add_source(self, source: Source) -> None:
        if source.title:
            self._titles.setdefault(source.url, source.title)

    @property
    def citations(self) -> list[Citation]:
        return [
            Citation(index, url, self._titles.get(url, "")) for url, index in self._citation_index.items()
        ]

    def __call__(self, element: Element, final: bool) -> str | None:
        if element.name != "grok:render":
            return ""
        kind = element.attrs.get("type", "")
        if kind in ("render_generated_image", "render_file"):
            return ""
        card = self.cards.get(element.attrs.get("card_id", ""))
        if kind == "render_inline_citation":
            if card is None or card.url is None:
                return None if card is None and not final else ""
            return self._cite(card.url)
        if kind == "render_searched_image":
            if card is None:
                return None if not final else ""
            return _searched_image(card)
        return ""

    def _cite(self, url: str) -> str:
        index = self._citation_index.setdefault(url, len(self._citation_index) + 1)
        return f"[[{index}]]({url})"


def _searched_image(card: Card) -> str:
    image = card.data.get("image")
    image = image if isinstance(image, dict) else {}
    thumbnail = image.get("thumbnail") or image.get("original")
    if not isinstance(thumbnail, str) or not thumbnail:
        return ""
    title = str(image.get("title") or "image").replace("[", "").replace("]", "")
    link = image.get("link") or image.get("original")
    if isinstance(link, str) and link:
        return f"[![{title}]({thumbnail})]({link})"
    return f"![{title}]({thumbnail})"
