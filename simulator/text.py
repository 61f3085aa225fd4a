"""Deterministic text for simulated answers: the plain-answer rule, tokenisation, titles.

Everything here is a pure function of the prompt so tests in other processes can predict the exact output.
"""

from __future__ import annotations

import re

# Known scenario markers are stripped from the echoed text; anything else starting with "#" is kept.
MARKER_NAMES = (
    "reasoning",
    "search",
    "image",
    "video",
    "moderated",
    "error",
    "warning",
    "usage_limit",
    "disconnect",
    "truncate",
    "stall",
    "empty_final",
    "long",
    "heavy_agents",
    "blocked",
    "ignore_format",
    "fenced",
    "prose",
)
MARKER_RE = re.compile(r"#(" + "|".join(MARKER_NAMES) + r")(?:=([^\s#]*))?(?![\w])")

ECHO_LIMIT = 200
PLAIN_SUFFIX = "This is a simulated Grok reply."

_CJK = "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
# Alternatives cover every character, so the tokens always concatenate back to the input.
_TOKEN_RE = re.compile(rf"[ \t]*\n\s*|[{_CJK}]+|[ \t]*[^\s{_CJK}]+|\s+")
_CJK_RUN_RE = re.compile(rf"[{_CJK}]")
_CJK_CHUNKS = (2, 1, 2, 1, 3)

_TITLE_NOISE_RE = re.compile(r"https?://\S+|--[\w-]+=\S*")

_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua enim"
).split()


def strip_markers(text: str) -> str:
    return MARKER_RE.sub("", text)


def echo_subject(message: str) -> str:
    """The part of a prompt an answer talks about: the last non-empty line, markers removed, whitespace
    collapsed, cut to 200 characters (flattened transcripts end with the latest user message)."""
    for line in reversed(message.splitlines()):
        cleaned = " ".join(strip_markers(line).split())
        if cleaned:
            return cleaned[:ECHO_LIMIT]
    return ""


def plain_answer(message: str) -> str:
    """The default answer: ``"You said: <subject>  \\n\\nThis is a simulated Grok reply."``."""
    return f"You said: {echo_subject(message) or 'nothing'}  \n\n{PLAIN_SUFFIX}"


def lorem_answer(count: int) -> str:
    """Exactly ``count`` tokens: lorem-ipsum words joined by single spaces."""
    return " ".join(_LOREM[i % len(_LOREM)] for i in range(max(count, 0)))


def tokenize(text: str) -> list[str]:
    """Split like grok.com streams: ~one word per token (leading space attached), CJK in runs of 1–3
    characters, whitespace containing newlines as its own token (e.g. ``"  \\n\\n"``)."""
    tokens: list[str] = []
    for piece in _TOKEN_RE.findall(text):
        if _CJK_RUN_RE.match(piece):
            i = n = 0
            while i < len(piece):
                size = _CJK_CHUNKS[n % len(_CJK_CHUNKS)]
                tokens.append(piece[i : i + size])
                i += size
                n += 1
        else:
            tokens.append(piece)
    return tokens


def make_title(message: str) -> str:
    """A short conversation title: first five words title-cased, or the first six CJK characters
    (URLs and ``--flag=value`` options are left out)."""
    subject = " ".join(_TITLE_NOISE_RE.sub(" ", echo_subject(message)).split())
    if not subject:
        return "New conversation"
    if _CJK_RUN_RE.match(subject):
        return subject[:6]
    words = re.sub(r"[^\w\s'-]", " ", subject).split()[:5]
    return " ".join(w[:1].upper() + w[1:] for w in words) or "New conversation"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "result"
