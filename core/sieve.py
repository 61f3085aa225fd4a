"""The streaming tool-call parser: text deltas in, text and calls out.

``ToolSieve(tools)`` is fed an answer's deltas as they arrive (``feed(text) -> list[Piece]``, then
``finish() -> list[Piece]``); a piece is ``Text(text)`` or ``Call(call)``. The concatenation of every ``Text.text``
and every ``Call.call.raw`` is exactly the input, in order: nothing is lost, duplicated or reordered.

What is held back, and for how long:

* a delta ending in a prefix of ``<tool_call>`` (e.g. ``<to``): until the next delta says whether it is one;
* a ``<tool_call>`` block: until its ``</tool_call>`` (the first one outside a JSON string), or until it cannot
  be a call: its first non-blank character is not ``{`` (or a code fence), another ``<tool_call>`` starts
  outside a string, it grows past ``MAX_BLOCK_CHARS``, or the answer ends. A closed block is a ``Call`` when its
  JSON names a declared tool and its arguments validate (``core.tools.read_call``: light repair allowed), else
  released as ``Text`` with its exact characters (the reason is appended to ``rejected``).

Everything else passes at once: a delta without ``<`` comes back as the same single ``Text`` piece, in the same
call. Text inside Markdown code fences (``` or ~~~ lines, tracked across deltas) is never taken for a call, nor
is a ``<tool_call>`` right after a backtick (inline code). Run a second instance over the reasoning channel to find
calls written there.

Choice enforcement is the caller's: ``saw_call``/``calls`` after ``finish`` and ``check_choice(choice, calls)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.tools import CALL_CLOSE, CALL_OPEN, ToolCallOut, ToolChoice, ToolSpec, read_call

__all__ = ["MAX_BLOCK_CHARS", "Call", "Piece", "Text", "ToolSieve", "check_choice"]

MAX_BLOCK_CHARS = 1_000_000  # a block held longer than this is no call (bounds memory and the hold)


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Call:
    call: ToolCallOut


Piece = Text | Call

_TEXT, _FENCE, _BLOCK = 0, 1, 2
_TEXT_EVENT = re.compile(r"[<\n]")
_NEWLINE = re.compile(r"\n")
_NONSPACE = re.compile(r"\S")
# Inside a block, outside strings: the tags, and every character that opens a string (ASCII, single, smart).
_BLOCK_EVENT = re.compile("|".join(map(re.escape, (CALL_CLOSE, CALL_OPEN))) + "|[\"'\u201c\u201d\u201e\u2018\u2019]")
_STRING_END = {
    '"': re.compile(r'["\\]'), "'": re.compile(r"['\\]"),
    "\u201c": re.compile("[\u201c\u201d]"), "\u201d": re.compile("[\u201c\u201d]"),
    "\u201e": re.compile("[\u201c\u201d]"),
    "\u2018": re.compile("[\u2018\u2019]"), "\u2019": re.compile("[\u2018\u2019]"),
}
_KEEP = max(len(CALL_OPEN), len(CALL_CLOSE)) - 1  # a tag may be cut by a delta boundary


class ToolSieve:
    """Separates tool calls from text in one channel's deltas (see the module docstring).

    ``calls``: the calls found so far; ``rejected``: why each block that looked like a call was released as text;
    ``ended_in_calls`` (meaningful after ``finish``): calls were found and only whitespace follows the last one.
    """

    def __init__(self, tools: Iterable[ToolSpec] | Mapping[str, ToolSpec]) -> None:
        self._tools: dict[str, ToolSpec] = (
            dict(tools) if isinstance(tools, Mapping) else {tool.name: tool for tool in tools})
        self.calls: list[ToolCallOut] = []
        self.rejected: list[str] = []
        self._mode = _TEXT
        self._held = ""  # a possible start of CALL_OPEN at the end of the last delta
        self._head: str | None = ""  # the current line's start while it may still be a fence line; None: decided
        self._fence = ""  # the opening fence run in _FENCE mode
        self._last = ""  # the character before the current position (the inline-code rule)
        self._blank_tail = True  # nothing but whitespace since the last call
        self._out: list[Piece] = []
        # _BLOCK state: every character of the block so far, the suffix still to scan, the quote being read.
        self._parts: list[str] = []
        self._carry = ""
        self._quote: re.Pattern[str] | None = None
        self._started = False
        self._size = 0
        self._done = False

    @property
    def saw_call(self) -> bool:
        return bool(self.calls)

    @property
    def ended_in_calls(self) -> bool:
        return bool(self.calls) and self._blank_tail

    # -- public ---------------------------------------------------------------------------------------------------

    def feed(self, text: str) -> list[Piece]:
        """The pieces ``text`` releases now (adjacent text merged; ``[Text(text)]`` itself when it has no ``<``
        outside a block). Pieces are plain data: do not mutate them."""
        if not text or self._done:
            return []
        if self._mode == _TEXT and not self._held and "<" not in text:
            head = self._head
            if head is None and "\n" not in text:  # mid-line plain text: the common case
                self._pass(text)
                return [Text(text)]
            if (not head or head.isspace()) and "`" not in text and "~" not in text:
                # No fence can start here: only the line state to update.
                nl = text.rfind("\n")
                tail = text[nl + 1:] if nl >= 0 else (head or "") + text
                self._head = tail if len(tail) <= 3 and not tail.strip(" ") else None
                self._pass(text)
                return [Text(text)]
        text, self._held = self._held + text, ""
        self._scan(text, tags=True)
        out, self._out = self._out, []
        return out

    def finish(self) -> list[Piece]:
        """Release whatever is held (an unfinished tag or block is text). Idempotent."""
        if self._done:
            return []
        self._done = True
        if self._held:
            self._emit(self._held)
            self._held = ""
        if self._mode == _BLOCK:
            self._release("".join(self._parts))
        out, self._out = self._out, []
        return out

    # -- text and fences ------------------------------------------------------------------------------------------

    def _pass(self, text: str) -> None:
        self._last = text[-1]
        if self._blank_tail and self.calls and not text.isspace():
            self._blank_tail = False

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._pass(text)
        out = self._out
        if out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + text)
        else:
            out.append(Text(text))

    def _scan(self, s: str, *, tags: bool) -> None:
        """Consume all of ``s``; ``tags=False`` re-reads released text for its fences only."""
        pos, n = 0, len(s)
        while pos < n:
            if self._mode == _BLOCK:
                s = self._block(s[pos:])  # what follows the block, when it ended in this text
                pos, n = 0, len(s)
                continue
            start = pos
            if self._head is not None:
                pos = self._advance_head(s, pos)
            elif self._mode == _FENCE:
                nl = s.find("\n", pos)
                if nl < 0:
                    pos = n
                else:
                    pos, self._head = nl + 1, ""
            else:
                m = (_TEXT_EVENT if tags else _NEWLINE).search(s, pos)
                if m is None:
                    pos = n
                elif m.group() == "\n":
                    pos, self._head = m.end(), ""
                else:
                    j = m.start()
                    before = s[j - 1] if j else self._last
                    if s.startswith(CALL_OPEN, j) and before != "`":
                        self._emit(s[start:j])
                        self._open_block()
                        pos = j + len(CALL_OPEN)
                        continue
                    if n - j < len(CALL_OPEN) and CALL_OPEN.startswith(s[j:]) and before != "`":
                        self._emit(s[start:j])
                        self._held = s[j:]  # may be a tag cut by the delta boundary
                        return
                    pos = j + 1
            self._emit(s[start:pos])

    def _advance_head(self, s: str, pos: int) -> int:
        """Read the current line's start while it may still open (or, in a fence, close) a code fence."""
        head = self._head or ""
        n = len(s)
        while pos < n:
            c = s[pos]
            if c == "\n":
                self._decide(head, eol=True)
                return pos
            run = head.lstrip(" ")
            if self._mode == _TEXT:
                ok = (c == " " and not run and len(head) < 3) or (c in "`~" and (not run or run[0] == c))
            else:
                fc, body = self._fence[0], run.rstrip(" \t\r")
                ok = ((c == " " and not run and len(head) < 3)
                      or (c == fc and run == body and body == fc * len(body))
                      or (c in " \t\r" and len(body) >= len(self._fence)))
            if not ok:
                self._decide(head, eol=False)
                return pos
            head += c
            pos += 1
        self._head = head
        return pos

    def _decide(self, head: str, *, eol: bool) -> None:
        self._head = None
        run = head.strip(" \t\r")
        if self._mode == _TEXT:
            if len(run) >= 3:  # ``` or ~~~ (possibly longer): a fence opens; the rest of the line is its info
                self._mode, self._fence = _FENCE, run
        elif eol and len(run) >= len(self._fence) and run == self._fence[0] * len(run):
            self._mode, self._fence = _TEXT, ""

    # -- blocks ---------------------------------------------------------------------------------------------------

    def _open_block(self) -> None:
        self._mode = _BLOCK
        self._parts, self._carry, self._quote = [CALL_OPEN], "", None
        self._started, self._size = False, len(CALL_OPEN)

    def _block(self, chunk: str) -> str:
        """Take ``chunk`` into the open block; returns the text after the block when it ended here."""
        w = self._carry + chunk  # the carry is the already-stored suffix that must be scanned again
        base = self._size - len(self._carry)  # w[0]'s offset in the block
        i = 0
        if not self._started:
            m = _NONSPACE.search(w)
            if m is None:
                return self._keep(chunk, "")
            if w[m.start()] not in "{`~":  # no JSON object follows: not a call
                return self._give_up(w, base, m.start())
            self._started, i = True, m.start()
        quote = self._quote
        while True:
            if quote is None:
                m = _BLOCK_EVENT.search(w, i)
                if m is None:
                    carry = w[max(i, len(w) - _KEEP):]
                    break
                token = m.group()
                if token == CALL_CLOSE:
                    return self._close(w, base, m.end())
                if token == CALL_OPEN:  # a new block starts: this one was none
                    return self._give_up(w, base, m.start())
                quote, i = _STRING_END[token], m.end()
            else:
                m = quote.search(w, i)
                if m is None:
                    carry = ""
                    break
                if m.group() == "\\":
                    if m.end() >= len(w):
                        carry = w[m.start():]  # the escaped character is in the next delta
                        break
                    i = m.end() + 1
                else:
                    quote, i = None, m.end()
        self._quote = quote
        self._keep(chunk, carry)
        if self._size > MAX_BLOCK_CHARS:
            self.rejected.append(f"the tool call block grew past {MAX_BLOCK_CHARS} characters")
            self._release("".join(self._parts))
        return ""

    def _keep(self, chunk: str, carry: str) -> str:
        self._parts.append(chunk)
        self._size += len(chunk)
        self._carry = carry
        return ""

    def _prefix(self, w: str, base: int, end: int) -> str:
        """The block's characters up to ``w[end]`` (exclusive)."""
        stored = "".join(self._parts)
        return stored[:base] + w[:end]

    def _close(self, w: str, base: int, end: int) -> str:
        raw = self._prefix(w, base, end)
        body = raw[len(CALL_OPEN): -len(CALL_CLOSE)]
        found = read_call(body, self._tools, raw=raw)
        if isinstance(found, ToolCallOut):
            self._mode, self._head, self._last = _TEXT, None, ">"
            self.calls.append(found)
            self._out.append(Call(found))
            self._blank_tail = True
        else:
            self.rejected.append(found)
            self._release(raw)
        return w[end:]

    def _give_up(self, w: str, base: int, end: int) -> str:
        self._release(self._prefix(w, base, end))
        return w[end:]  # may start inside the carry: scanned again from there

    def _release(self, raw: str) -> None:
        """A block that is no call: its characters are text (read again for fences, not for tags)."""
        self._mode, self._head = _TEXT, None
        self._parts, self._carry, self._quote = [], "", None
        self._scan(raw, tags=False)


def check_choice(choice: ToolChoice | None, calls: list[ToolCallOut]) -> str | None:
    """A sentence saying how ``calls`` break ``choice`` (``None`` when they do not)."""
    if choice is None or choice.mode == "auto":
        return None
    names = ", ".join(dict.fromkeys(call.name for call in calls))
    if choice.mode == "none":
        return f"tool_choice is 'none' but the model called {names}" if calls else None
    if not calls:
        if choice.mode == "required":
            return "tool_choice is 'required' but the model called no tool"
        return f"tool_choice forces {choice.name!r} but the model called no tool"
    if choice.mode == "function" and any(call.name != choice.name for call in calls):
        return f"tool_choice forces {choice.name!r} but the model called {names}"
    return None
