"""Flattening a chat history into Grok's single ``message`` string.

grok.com has no ``messages`` array (protocol reference §3.4): every gateway invents a transcript format. Ours is
role-labelled blocks separated by blank lines, e.g. ``[system]\\n...``; a conversation that is just one user message is
sent as that text alone so simple prompts read naturally upstream. Images are collected in order for upload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from core.errors import InvalidRequest

ATTACHMENT_ONLY_MESSAGE = "Refer to the attached file(s)."
# C0 controls other than tab, newline and carriage return (and DEL): invisible, meaningless to the model, and
# some break upstream's JSON handling. Removed at the edge.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A surrogate code point left in a decoded str is always unpaired (json joins valid pairs): it cannot be encoded
# as UTF-8, so no upstream can take it. Rejected, not guessed at.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Turn:
    """One message of the client's history, already validated by the HTTP layer."""

    role: str  # system | developer | user | assistant | tool
    text: str = ""
    images: list[str] = field(default_factory=list)  # data: URIs or http(s) URLs, in order
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    is_error: bool = False  # a tool result that reports a failure (Anthropic ``is_error``)


@dataclass(frozen=True, slots=True)
class Prompt:
    message: str
    images: tuple[str, ...] = ()


def clean_text(text: str, *, param: str) -> str:
    """``text`` without stray control characters; ``InvalidRequest`` when it holds an unpaired surrogate."""
    if not text.isascii() and (bad := _SURROGATE.search(text)):
        raise InvalidRequest(
            f"`{param}` contains an unpaired UTF-16 surrogate (\\u{ord(bad.group()):04x} at character "
            f"{bad.start()}): send valid Unicode text",
            param=param,
        )
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def clean_turns(turns: list[Turn]) -> list[Turn]:
    """Clean every text a turn sends upstream (see ``clean_text``), naming the offending message."""
    for index, turn in enumerate(turns):
        param = f"messages[{index}]"
        turn.text = clean_text(turn.text, param=f"{param}.content")
        if turn.name:
            turn.name = clean_text(turn.name, param=f"{param}.name")
        turn.tool_calls = [
            ToolCall(
                id=clean_text(call.id, param=f"{param}.tool_calls"),
                name=clean_text(call.name, param=f"{param}.tool_calls"),
                arguments=clean_text(call.arguments, param=f"{param}.tool_calls"),
            )
            for call in turn.tool_calls
        ]
    return turns


def _label(turn: Turn) -> str:
    if turn.role in ("system", "developer"):
        return "[system]"
    if turn.role == "tool":
        return f"[tool result for {turn.tool_call_id or turn.name or 'call'}]"
    if turn.name:
        return f"[{turn.role} {turn.name}]"
    return f"[{turn.role}]"


def _body(turn: Turn) -> str:
    lines = [turn.text] if turn.text else []
    for call in turn.tool_calls:
        try:
            arguments = json.dumps(json.loads(call.arguments), ensure_ascii=False)
        except RecursionError:  # JSON inside a JSON string escapes the body's depth check
            raise InvalidRequest(
                f"tool call `{call.id or call.name}`: arguments nest JSON too deeply",
                param="messages[].tool_calls[].function.arguments", code="json_too_deep",
            ) from None
        except ValueError:
            arguments = call.arguments
        lines.append(f"[tool call {call.id}] {call.name} {arguments}")
    return "\n".join(lines).strip()


def flatten(turns: list[Turn]) -> Prompt:
    """The upstream message for ``turns``; their texts are cleaned first (``clean_turns``)."""
    turns = clean_turns(turns)
    images = tuple(image for turn in turns for image in turn.images)
    if len(turns) == 1 and turns[0].role == "user":
        message = turns[0].text.strip()
    else:
        blocks = [f"{_label(turn)}\n{body}" for turn in turns if (body := _body(turn))]
        message = "\n\n".join(blocks)
    if not message and images:
        message = ATTACHMENT_ONLY_MESSAGE
    return Prompt(message=message, images=images)
