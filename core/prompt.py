"""Flattening a chat history into Grok's single ``message`` string.

grok.com has no ``messages`` array (protocol reference §3.4): every gateway invents a transcript format. Ours is
role-labelled blocks separated by blank lines, e.g. ``[system]\\n...``; a conversation that is just one user message is
sent as that text alone so simple prompts read naturally upstream. Images are collected in order for upload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ATTACHMENT_ONLY_MESSAGE = "Refer to the attached file(s)."


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


@dataclass(frozen=True, slots=True)
class Prompt:
    message: str
    images: tuple[str, ...] = ()


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
        except ValueError:
            arguments = call.arguments
        lines.append(f"[tool call {call.id}] {call.name} {arguments}")
    return "\n".join(lines).strip()


def flatten(turns: list[Turn]) -> Prompt:
    images = tuple(image for turn in turns for image in turn.images)
    if len(turns) == 1 and turns[0].role == "user":
        message = turns[0].text.strip()
    else:
        blocks = [f"{_label(turn)}\n{body}" for turn in turns if (body := _body(turn))]
        message = "\n\n".join(blocks)
    if not message and images:
        message = ATTACHMENT_ONLY_MESSAGE
    return Prompt(message=message, images=images)
