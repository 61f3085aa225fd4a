"""The instruction-following model (``SimConfig.agent_model``): reads the gateway's emulation instructions in the
upstream message and answers the way a cooperative model would, deterministically.

* a ``# Tools`` block and the user spoke last → one ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
  for the most plausible tool, arguments synthesised from its JSON schema (``schema_fill.py``);
* the last thing is a ``<tool_result>`` → ``The tool returned: <result>`` (or JSON when a format is asked for);
* a ``# Response format`` block → JSON valid for its schema (``{"answer": ...}`` for a plain JSON object).

Blocks start at a line ``# Tools`` / ``# Response format`` and end at the other one, at a transcript role label
(``[user]``, ``[assistant]``, ...) outside a code fence, or at the end of the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from simulator.rules import Plan
from simulator.schema_fill import Request, fill, words
from simulator.text import ECHO_LIMIT, echo_subject, strip_markers

_FENCE_RE = re.compile(r"^\s*```")
# A tool heading (``##`` or ``###``, the level of the first one) names an identifier; other headings
# ("## Available tools", "## When to use" inside a description) are text.
_TOOL_HEADING_RE = re.compile(r"^(#{2,3})[ \t]+`?([A-Za-z0-9_.:/-]+)`?[ \t]*$")
# The gateway's one-line schema: "Parameters (JSON Schema): {...}".
_PARAMS_RE = re.compile(r"^[ \t]*(?:parameters|input[ _]schema|arguments|schema)\b[^:\n{]*:[ \t]*(?=\{)", re.I | re.M)
_JSON_LINE_RE = re.compile(r"^[ \t]*(?=[{\[])", re.M)
_DISABLED_RE = re.compile(r"tool calling is disabled", re.I)
_ARRAY_RE = re.compile(r"\bone JSON array\b", re.I)
_ROLE_LINE_RE = re.compile(r"^\[(system|developer|user|assistant|tool)\b[^\]\n]*\][ \t]*$", re.M | re.I)
_JSON_FENCE_RE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)\n[ \t]*```", re.S | re.I)
_FORCED_RE = re.compile(r"you must call the tool\s+`([^`]+)`", re.I)
_REQUIRED_RE = re.compile(r"you must call", re.I)
_CALL_RE = re.compile(r"<tool_call>.*?</tool_call>", re.S)
_RESULT_RE = re.compile(r"<tool_result\b[^>]*>(.*?)</tool_result>", re.S)
_RESULT_LIMIT = 500
_REQUEST_LIMIT = 2000
# Context agent clients wrap around the request (<system-reminder>, <environment_context>, ...): not the request.
_CONTEXT_RE = re.compile(r"<([a-z]+[_-][a-z_-]+)\b[^>]*>.*?</\1>", re.S)
TOOLS_HEADING = "# Tools"
FORMAT_HEADING = "# Response format"


@dataclass(slots=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]


@dataclass(slots=True)
class Instructions:
    tools: list[Tool] = field(default_factory=list)
    forced: str | None = None  # tool name the model must call
    required: bool = False  # some tool must be called
    calls_disabled: bool = False  # a `# Tools` block that lists tools for context only (tool_choice none)
    response_format: dict[str, Any] | None = None  # {"schema": ..., "array": bool}; None = no format asked for
    transcript: str = ""  # the message without the instruction blocks
    blocks: set[str] = field(default_factory=set)  # the headings found


def _lines_with_fences(message: str) -> list[tuple[str, bool]]:
    """Each line and whether it lies inside (or opens/closes) a ``` fence."""
    out, inside = [], False
    for line in message.split("\n"):
        if _FENCE_RE.match(line):
            out.append((line, True))
            inside = not inside
        else:
            out.append((line, inside))
    return out


def split_blocks(message: str) -> tuple[dict[str, str], str]:
    """The instruction blocks by heading (body only) and the rest of the message."""
    blocks: dict[str, list[str]] = {}
    rest: list[str] = []
    current: list[str] | None = None
    for line, fenced in _lines_with_fences(message):
        stripped = line.strip()
        if not fenced and stripped in (TOOLS_HEADING, FORMAT_HEADING):
            current = blocks.setdefault(stripped, [])
            continue
        # Not at any "# heading": tool descriptions (Claude Code's Bash) carry their own.
        if current is not None and not fenced and _ROLE_LINE_RE.match(stripped):
            current = None
        (rest if current is None else current).append(line)
    return {k: "\n".join(v) for k, v in blocks.items()}, "\n".join(rest)


def _first_json(text: str) -> Any:
    """The first ```json fence that parses, else the first line that starts a JSON object or array."""
    for match in _JSON_FENCE_RE.finditer(text):
        try:
            return json.loads(match.group(1))
        except ValueError:
            continue
    for match in _JSON_LINE_RE.finditer(text):
        value = _json_at(text, match.end())
        if value is not None:
            return value
    return None


def _json_at(text: str, start: int) -> Any:
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except ValueError:
        return None


def _unwrap(schema: Any, *keys: str) -> dict[str, Any]:
    """Accept a bare schema or one wrapped as ``{"parameters": ...}`` / ``{"input_schema": ...}`` / ``{"schema"}``."""
    if not isinstance(schema, dict):
        return {}
    if "type" not in schema and "properties" not in schema:
        for key in keys:
            if isinstance(schema.get(key), dict):
                return schema[key]
    return schema


def _parse_tools(body: str) -> list[Tool]:
    tools: list[Tool] = []
    section: list[str] | None = None
    sections: list[tuple[str, list[str]]] = []
    level: int | None = None
    for line, fenced in _lines_with_fences(body):
        heading = None if fenced else _TOOL_HEADING_RE.match(line)
        if heading and level in (None, len(heading.group(1))):
            level, section = len(heading.group(1)), []
            sections.append((heading.group(2), section))
        elif section is not None:
            section.append(line)
    for name, lines in sections:
        text = "\n".join(lines)
        params = _PARAMS_RE.search(text)
        if params:  # the gateway's form; a fence in the description must not be taken for the schema
            schema, cut = _json_at(text, params.end()), params.start()
        else:
            schema, cut = _first_json(text), text.find("```")
        description = " ".join((text if cut < 0 else text[:cut]).split())
        tools.append(Tool(name, description, _unwrap(schema, "parameters", "input_schema", "schema")))
    return tools


def parse_instructions(message: str) -> Instructions:
    blocks, transcript = split_blocks(message)
    found = Instructions(transcript=transcript, blocks=set(blocks))
    if TOOLS_HEADING in blocks:
        body = blocks[TOOLS_HEADING]
        found.tools = _parse_tools(body)
        found.calls_disabled = not found.tools or _DISABLED_RE.search(body) is not None
        forced = _FORCED_RE.search(body)
        found.forced = forced.group(1).strip() if forced else None
        found.required = forced is not None or _REQUIRED_RE.search(body) is not None
    if FORMAT_HEADING in blocks:
        body = _CONTEXT_RE.sub(" ", blocks[FORMAT_HEADING])  # a repair prompt quotes the <previous_reply>
        schema = _first_json(body)
        found.response_format = {"schema": _unwrap(schema, "schema", "json_schema") if schema is not None else None,
                                 "array": _ARRAY_RE.search(body) is not None}
    return found


# -- the transcript --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class LastTurn:
    user_text: str  # the user's latest words (tool elements and markers removed)
    results: list[str]  # tool results after them; non-empty = the model must now answer from them


def _segments(transcript: str) -> list[tuple[str, int, str]]:
    """(role, offset, text) per role-labelled block; unlabelled text counts as the user's."""
    labels = [(m.start(), m.end(), m.group(1).lower()) for m in _ROLE_LINE_RE.finditer(transcript)]
    if not labels:
        return [("user", 0, transcript)]
    out = []
    for i, (_, end, role) in enumerate(labels):
        stop = labels[i + 1][0] if i + 1 < len(labels) else len(transcript)
        out.append((role, end, transcript[end:stop]))
    return out


def last_turn(transcript: str, full: str = "") -> LastTurn:
    """The user's latest words in ``transcript`` and the tool results after them (``full``: the whole message,
    for the fallback)."""
    user_end, user_text = -1, ""
    results: list[tuple[int, str]] = []
    for role, offset, text in _segments(transcript):
        found = list(_RESULT_RE.finditer(text))
        results.extend((offset + m.end(), m.group(1)) for m in found)
        if role == "tool" and not found and text.strip():  # an older label-only result format
            results.append((offset + len(text.rstrip()), text))
        if role != "user":
            continue
        remainder = text
        for element in (_CALL_RE, _RESULT_RE, _CONTEXT_RE):  # masked, keeping offsets
            remainder = element.sub(lambda m: "\0" * len(m.group(0)), remainder)
        for piece in re.finditer(r"[^\0]+", remainder):
            if strip_markers(piece.group(0)).strip():
                user_end, user_text = offset + piece.end(), piece.group(0)
    after = [" ".join(r.split())[:_RESULT_LIMIT] for end, r in results if end > user_end]
    if not user_text.strip() and not after and not _ROLE_LINE_RE.search(transcript):
        # No user text outside the blocks: the request was probably written right after a block, unlabelled.
        user_text = echo_subject(_CALL_RE.sub(" ", full))
    return LastTurn(" ".join(strip_markers(user_text).split())[:_REQUEST_LIMIT], after)


# -- choosing and answering ------------------------------------------------------------------------------------


# Verbs people use for what the tool names say.
_SYNONYMS = {
    "create": ("write",), "save": ("write",), "make": ("write",), "put": ("write",),
    "run": ("bash", "shell", "exec", "execute", "command"), "execute": ("bash", "shell", "exec", "command"),
    "open": ("read",), "show": ("read", "view"), "cat": ("read",), "look": ("read", "view"),
    "find": ("search", "grep", "glob"), "search": ("grep", "find"), "fetch": ("get", "web"),
    "change": ("edit",), "modify": ("edit",), "replace": ("edit",), "update": ("edit",),
}


def choose_tool(found: Instructions, user_text: str) -> Tool:
    """The forced tool; else the one whose name's words are most asked for (verbs widened by synonyms); else
    the one whose description shares most words with the request; else the first. Ties: the earlier tool."""
    if found.forced:
        forced = next((t for t in found.tools if t.name == found.forced), None)
        return forced or Tool(found.forced, "", {})
    asked = words(user_text)
    widened = asked.union(*(_SYNONYMS.get(w, ()) for w in asked))
    def named(tool: Tool) -> float:  # the share of the name's words asked for: Write beats TodoWrite
        name = words(tool.name)
        return len(name & widened) / len(name) if name else 0.0

    best_named = max(found.tools, key=named)
    if named(best_named) > 0:
        return best_named
    best = max(found.tools, key=lambda t: len(words(t.description) & asked))
    return best if words(best.description) & asked else found.tools[0]


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_answer(fmt: dict[str, Any], request: Request, echo: str, plan: Plan) -> str:
    schema = fmt.get("schema")
    if isinstance(schema, dict) and schema:
        value = fill(schema, request)
    else:
        value = [echo] if fmt.get("array") else {"answer": echo}
    text = _dump(value)
    if plan.fenced:
        text = f"```json\n{text}\n```"
    if plan.prose:
        text = f"Here is the JSON you asked for:\n\n{text}\n\nLet me know if you need anything else."
    return text


def agent_answer(message: str, plan: Plan) -> str | None:
    """The answer text for a message carrying the gateway's instructions, or None (then the usual answer)."""
    found = parse_instructions(message)
    if TOOLS_HEADING not in found.blocks and found.response_format is None:
        return None
    turn = last_turn(found.transcript, message)
    request = Request(turn.user_text)
    if found.tools and not found.calls_disabled and not turn.results:
        tool = choose_tool(found, turn.user_text)
        call = f"<tool_call>{_dump({'name': tool.name, 'arguments': fill(tool.schema, request, root=True)})}</tool_call>"
        return f"I'll use the {tool.name} tool.\n\n{call}" if plan.prose else call
    summary = f"The tool returned: {'; '.join(turn.results)}" if turn.results else ""
    if found.response_format is not None:
        echo = summary or turn.user_text[:ECHO_LIMIT] or "nothing"
        return _json_answer(found.response_format, request, echo, plan)
    return summary or None
