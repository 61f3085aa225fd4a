"""Shaping an answer for the client, once for every protocol: tool calls, structured output, stop sequences and
the token limit.

Every protocol adapter turns its request into a ``ReplySpec`` (what the client asked of the reply) and feeds the
``AnswerBuilder``'s deltas through one ``ReplyShaper``; what comes out is the same stream of core events whatever
the protocol: ``TextDelta``, ``ReasoningDelta``, ``ToolCallEvent`` (a complete, validated call), and at the end a
``Finish`` with the reason. Renderers only translate these into OpenAI, Anthropic or Responses wire events.

How each control is enforced (grok.com has none of them):

* **tools** — declared in the upstream message (``core.tools.instructions``) and parsed back out of the answer by a
  ``ToolSieve`` over the content and a second one over the reasoning, so a call is never shown as text;
* **structured output** — instructions upstream, then the JSON is dug out of the answer (fences and prose around
  it removed) and validated; the text is held until the end of the answer, since only then can it be judged;
* **a required call** (``tool_choice`` ``required`` or a forced tool) — the text is held until the first call;
  an answer that ends without one is marked ``call_missing`` with its text kept back, so the caller can ask once
  more (``AnswerRun``) before ``release_held`` gives the text as the answer;
* **stop sequences** — the text is cut at the first match, across delta boundaries (a possible partial match is
  held back); the caller then closes the upstream stream (``done``);
* **max tokens** — counted with ``estimate_tokens`` (one per CJK character, one per ~4 other characters) over
  the visible text and reasoning; the answer is cut at the limit with reason ``length``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.answer import ContentDelta, Delta, ReasoningDelta
from core.errors import FailureKind, UpstreamError
from core.sieve import Call, Text, ToolSieve, check_choice
from core.structured import OutputFormat, check
from core.tools import ToolCallOut, ToolChoice, ToolSpec

__all__ = [
    "Finish",
    "FinishReason",
    "InvalidStructuredOutput",
    "ReasoningDelta",
    "ReplyEvent",
    "ReplyShaper",
    "ReplySpec",
    "TextDelta",
    "ToolCallEvent",
]

FinishReason = Literal["stop", "length", "tool_calls"]
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A complete call: arguments are known (and valid for the tool's schema) when the block closes."""

    index: int
    call: ToolCallOut


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None  # the stop sequence that ended the answer


ReplyEvent = TextDelta | ReasoningDelta | ToolCallEvent


@dataclass(slots=True)
class ReplySpec:
    """What the client asked of the reply, protocol-neutral."""

    tools: Sequence[ToolSpec] = ()
    choice: ToolChoice | None = None
    output: OutputFormat | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    parallel_calls: bool = True

    @property
    def calls_tools(self) -> bool:
        """Tools are offered to the model (``tool_choice: none`` lists them for context only)."""
        return bool(self.tools) and (self.choice is None or self.choice.mode != "none")

    @property
    def wants_json(self) -> bool:
        return self.output is not None and self.output.kind != "text"

    @property
    def must_call(self) -> bool:
        """``tool_choice`` asks for a call (``required``, or a forced tool)."""
        return bool(self.tools) and self.choice is not None and self.choice.mode in ("required", "function")

    @property
    def plain(self) -> bool:
        """Nothing to enforce: deltas pass through untouched."""
        return not (self.calls_tools or self.wants_json or self.stop or self.max_tokens)


class InvalidStructuredOutput(UpstreamError):
    """A ``strict`` JSON schema the answer does not satisfy."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            FailureKind.BAD_REQUEST,
            "the model's answer does not match the requested JSON schema: " + "; ".join(problems[:5]),
        )
        self.status = 502
        self.code = "invalid_structured_output"
        self.problems = problems


class _TokenMeter:
    """``estimate_tokens`` kept incrementally, so the limit is checked per delta in O(len(delta))."""

    _WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")

    def __init__(self) -> None:
        self.wide = 0
        self.rest = 0

    @property
    def tokens(self) -> int:
        return self.wide + (self.rest + 3) // 4

    def take(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` that keeps the count within ``limit`` (all of it usually)."""
        wide = len(self._WIDE.findall(text)) if not text.isascii() else 0
        if self.wide + wide + (self.rest + len(text) - wide + 3) // 4 <= limit:
            self.wide, self.rest = self.wide + wide, self.rest + len(text) - wide
            return text
        for index, char in enumerate(text):
            is_wide = not char.isascii() and self._WIDE.match(char) is not None
            wide_next, rest_next = self.wide + is_wide, self.rest + (not is_wide)
            if wide_next + (rest_next + 3) // 4 > limit:
                return text[:index]
            self.wide, self.rest = wide_next, rest_next
        return text


class _StopCutter:
    """Cuts text at the first stop sequence; holds back a tail that may be the start of one."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if self.matched is not None:
            return ""
        window = self.held + text
        hits = [(window.find(s), s) for s in self.stops]
        hits = [(at, s) for at, s in hits if at >= 0]
        if hits:
            at, stop = min(hits)
            self.matched, self.held = stop, ""
            return window[:at]
        cut = len(window) - self._partial(window)
        self.held = window[cut:]
        return window[:cut]

    def finish(self) -> str:
        held, self.held = self.held, ""
        return held

    def _partial(self, window: str) -> int:
        """Length of the longest suffix of ``window`` that is a proper prefix of some stop sequence."""
        for size in range(min(self.keep, len(window)), 0, -1):
            tail = window[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0


@dataclass
class ReplyShaper:
    """Feed the ``AnswerBuilder``'s deltas; get core events. ``done`` turns true once the answer must end early
    (stop sequence or token limit): the caller then stops reading upstream and calls ``finish``."""

    spec: ReplySpec
    calls: list[ToolCallOut] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        tools = self.spec.tools if self.spec.calls_tools else ()
        if tools and self.spec.choice is not None and self.spec.choice.mode == "function":
            tools = [t for t in tools if t.name == self.spec.choice.name]  # calls to other tools stay text
        self._sieve = ToolSieve(tools) if tools else None
        self._reasoning_sieve = ToolSieve(tools) if tools else None
        self._stop = _StopCutter(self.spec.stop) if self.spec.stop else None
        self._meter = _TokenMeter() if self.spec.max_tokens else None
        self._json: list[str] | None = [] if self.spec.wants_json else None
        self._held: list[str] | None = [] if self.spec.must_call else None  # text before the required call
        self.call_missing = False  # finished without the call tool_choice asks for; the text is still held
        self._pending_space = ""  # whitespace after a call, shown only if more text follows
        self._thought_calls: set[tuple[str, str]] = set()
        self.json_raw = ""  # the answer a JSON format was judged on, and what was wrong with it
        self.json_problems: list[str] = []
        self._length = False
        self._finished = False

    # -- results -------------------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._length or (self._stop is not None and self._stop.matched is not None)

    @property
    def finish_reason(self) -> FinishReason:
        if self.calls:
            return "tool_calls"
        return "length" if self._length else "stop"

    @property
    def stop_sequence(self) -> str | None:
        return self._stop.matched if self._stop is not None else None

    @property
    def content(self) -> str:
        return "".join(self.text)

    def choice_problem(self) -> str | None:
        """Why the answer does not honour ``tool_choice`` (``required`` / a forced tool without a call)."""
        return check_choice(self.spec.choice, self.calls) if self.spec.tools else None

    # -- feeding -------------------------------------------------------------------------------------------

    def feed(self, deltas: Iterable[Delta]) -> list[ReplyEvent]:
        out: list[ReplyEvent] = []
        for delta in deltas:
            if self.done:
                break
            if isinstance(delta, ReasoningDelta):
                self._reasoning_in(out, delta.text)
            elif isinstance(delta, ContentDelta):
                self._content_in(out, delta.text)
        return out

    def finish(self, deltas: Iterable[Delta] = ()) -> tuple[list[ReplyEvent], Finish]:
        """Flush what was held, judge structured output; the last events and the ``Finish``. Raises
        ``InvalidStructuredOutput`` for a strict schema the answer does not satisfy."""
        out = self.feed(deltas)
        if not self._finished:
            self._finished = True
            if self._reasoning_sieve is not None and not self.done:
                self._reasoning_pieces(out, self._reasoning_sieve.finish())
            if self._sieve is not None and not self.done:
                self._content_pieces(out, self._sieve.finish())
            if self._stop is not None and not self.done:
                self._visible(out, self._stop.finish())
            if self._json is not None:
                self._json_out(out)
            if self._held is not None and not self.calls:
                if self.done:  # cut by a stop sequence or the token limit: that is the answer
                    self._release(out)
                else:
                    self.call_missing = True
        return out, Finish(self.finish_reason, self.stop_sequence)

    # -- content -------------------------------------------------------------------------------------------

    def _content_in(self, out: list[ReplyEvent], text: str) -> None:
        if self._sieve is None:
            self._text(out, text)
        else:
            self._content_pieces(out, self._sieve.feed(text))

    def _content_pieces(self, out: list[ReplyEvent], pieces: list[Text | Call]) -> None:
        for piece in pieces:
            if isinstance(piece, Call):
                self._call(out, piece.call)
            else:
                self._text(out, piece.text)

    def _call(self, out: list[ReplyEvent], call: ToolCallOut) -> None:
        if self.calls and not self.spec.parallel_calls:
            return  # parallel_tool_calls=false: the first call only
        self._release(out)  # the call tool_choice asked for: the text before it is shown, in order
        self._pending_space = ""
        self.calls.append(call)
        out.append(ToolCallEvent(len(self.calls) - 1, call))

    def _text(self, out: list[ReplyEvent], text: str) -> None:
        if not text:
            return
        if self.calls:  # text after a call: hold whitespace, show real text
            if not text.strip():
                self._pending_space += text
                return
            text, self._pending_space = self._pending_space + text, ""
        if self._stop is not None:
            text = self._stop.feed(text)
        self._visible(out, text)

    def _within_limit(self, text: str) -> str:
        """What of ``text`` fits under the token limit (visible text and reasoning count alike); past it, the
        answer ends with reason ``length``."""
        if self._meter is None or self.spec.max_tokens is None:
            return text
        kept = self._meter.take(text, self.spec.max_tokens)
        if len(kept) < len(text):
            self._length = True
        return kept

    def _visible(self, out: list[ReplyEvent], text: str) -> None:
        text = self._within_limit(text)
        if not text:
            return
        if self._json is not None:
            self._json.append(text)  # judged at the end
            return
        if self._held is not None:
            self._held.append(text)  # shown with the first call, or when the answer ends without one
            return
        self.text.append(text)
        out.append(TextDelta(text))

    def _release(self, out: list[ReplyEvent]) -> None:
        held, self._held = self._held, None
        if held:
            text = "".join(held)
            self.text.append(text)
            out.append(TextDelta(text))

    @property
    def withheld_text(self) -> str:
        """Answer text not given out yet: held for a required call, or a JSON answer not yet judged."""
        return "".join(self._held or ()) + "".join(self._json or ())

    def release_held(self) -> list[ReplyEvent]:
        """The text of an answer that ended without its required call, given as the answer after all."""
        out: list[ReplyEvent] = []
        self._release(out)
        self.call_missing = False
        return out

    # -- reasoning -----------------------------------------------------------------------------------------

    def _reasoning_in(self, out: list[ReplyEvent], text: str) -> None:
        if self._reasoning_sieve is None:
            self._thought(out, text)
        else:
            self._reasoning_pieces(out, self._reasoning_sieve.feed(text))

    def _reasoning_pieces(self, out: list[ReplyEvent], pieces: list[Text | Call]) -> None:
        for piece in pieces:
            if isinstance(piece, Call):
                # A call written while thinking is still a call; the same call thought twice (a summary
                # repeating the analysis) is one call.
                key = (piece.call.name, piece.call.arguments_json)
                if key not in self._thought_calls:
                    self._thought_calls.add(key)
                    self._call(out, piece.call)
            else:
                self._thought(out, piece.text)

    def _thought(self, out: list[ReplyEvent], text: str) -> None:
        text = self._within_limit(text)
        if not text:
            return
        self.reasoning.append(text)
        out.append(ReasoningDelta(text))

    # -- structured output -----------------------------------------------------------------------------------

    def _json_out(self, out: list[ReplyEvent]) -> None:
        assert self._json is not None and self.spec.output is not None
        raw = "".join(self._json)
        if self.calls and not raw.strip():
            return
        value, problems = check(self.spec.output, raw)
        self.json_raw, self.json_problems = raw, problems
        if problems and self.spec.output.strict:
            raise InvalidStructuredOutput(problems)
        self._json = []  # judged: it is given out below (or dropped), not withheld any more
        text = raw if value is None else _dump(value)
        if text:
            self.text.append(text)
            out.append(TextDelta(text))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
