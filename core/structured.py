"""Structured output emulated: the model is asked for JSON, the JSON is dug out of its reply and checked.

grok.com has no ``response_format``. The gateway puts ``instructions(fmt)`` (first line ``JSON_MARKER``) into the
upstream message, reads the answer with ``extract_json`` (a fenced or prose-wrapped value is found), checks it
with ``validate`` (``check`` does both) and, when there are problems, may ask once more on the same account with
``repair_prompt``. ``OutputFormat`` checks its schema on construction (``InvalidRequest``), with the same bounds
and ``$ref`` inlining as tool schemas (``core.tools.prepare_schema``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from core.errors import InvalidRequest
from core.tools import MAX_JSON_DEPTH, NOT_JSON, parse_json, prepare_schema

__all__ = ["JSON_MARKER", "OutputFormat", "check", "extract_json", "instructions", "repair_prompt", "validate"]

JSON_MARKER = "# Response format"
MAX_PROBLEMS = 10  # problems reported (and sent back in a repair prompt)
MAX_CANDIDATES = 16  # '{'/'[' positions tried when digging a value out of prose
MAX_ECHO_CHARS = 4_000  # of the previous reply quoted in a repair prompt

OutputKind = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True, eq=False)
class OutputFormat:
    """The requested reply format. ``json_schema`` needs ``schema``; ``shown`` is it with ``$ref``s inlined.

    ``strict`` is carried for the caller (what to do when the repair fails too): adherence cannot be forced.
    """

    kind: OutputKind = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool = False
    description: str | None = None
    shown: dict[str, Any] | None = field(init=False, repr=False, default=None)
    _validator: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.kind not in ("text", "json_object", "json_schema"):
            raise InvalidRequest(f"response_format type {self.kind!r} is not text, json_object or json_schema",
                                 param="response_format")
        if self.kind != "json_schema":
            return
        if not isinstance(self.schema, dict):
            raise InvalidRequest("response_format json_schema needs a schema object", param="response_format")
        try:
            shown, validator = prepare_schema(self.schema, where="response_format schema")
        except InvalidRequest as error:
            raise InvalidRequest(error.message, param="response_format") from None
        object.__setattr__(self, "shown", shown)
        object.__setattr__(self, "_validator", validator)

    @classmethod
    def from_openai(cls, value: dict[str, Any] | None) -> OutputFormat:
        """OpenAI's ``response_format`` (``{"type": "json_schema", "json_schema": {"name", "schema", ...}}``)."""
        if not value:
            return cls()
        if not isinstance(value, dict):
            raise InvalidRequest("response_format must be an object", param="response_format")
        spec = value.get("json_schema") or {}
        if not isinstance(spec, dict):
            raise InvalidRequest("response_format.json_schema must be an object", param="response_format")
        return cls(kind=value.get("type", "text"), name=spec.get("name"), schema=spec.get("schema"),
                   strict=bool(spec.get("strict")), description=spec.get("description"))

    @property
    def root(self) -> str | None:
        """``object``/``array`` when the reply must be one; None otherwise."""
        if self.kind == "json_object":
            return "object"
        kind = (self.schema or {}).get("type") if self.kind == "json_schema" else None
        return kind if kind in ("object", "array") else None


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def instructions(fmt: OutputFormat) -> str:
    """The block for the upstream message (first line ``JSON_MARKER``); empty for ``text``."""
    if fmt.kind == "text":
        return ""
    what = {"object": "one JSON object", "array": "one JSON array"}.get(fmt.root or "", "one JSON value")
    lines = [JSON_MARKER, ""]
    if fmt.kind == "json_schema":
        named = f" (named `{fmt.name}`)" if fmt.name else ""
        lines.append(f"Reply with {what} that matches this JSON Schema{named}, and nothing else:")
        if fmt.description:
            lines.append(fmt.description.strip())
        lines.append(_compact(fmt.shown))
    else:
        lines.append(f"Reply with {what}, and nothing else.")
    lines.append("No prose before or after it, no Markdown code fences, no comments: the whole reply is parsed as "
                 "JSON (double quotes, no trailing commas).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"(```|~~~)[\w.+-]*[ \t]*\n(.*?)\n[ \t]*\1", re.DOTALL)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_STARTS = {"object": re.compile(r"\{"), "array": re.compile(r"\["), None: re.compile(r"[\[{]")}


def _fits(value: Any, root: str | None) -> bool:
    if value is NOT_JSON:
        return False
    if root == "object":
        return isinstance(value, dict)
    if root == "array":
        return isinstance(value, list)
    return True


def _balanced_end(text: str, start: int) -> int | None:
    """The end of the object/array opening at ``start`` (strings and escapes minded), None if it never closes
    or nests deeper than ``MAX_JSON_DEPTH``."""
    depth = 0
    for match in _TOKENS.finditer(text, start):
        token = match.group()
        if token in "{[":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return None
        elif token in "}]":
            depth -= 1
            if depth == 0:
                return match.end()
    return None


def extract_json(text: str, *, root: str | None = None) -> Any | None:
    """The JSON value a reply holds, or None (a bare ``null`` reply reads as None too).

    In order: the whole reply as strict JSON; the content of each code fence (light repair as
    ``core.tools.parse_json``); the first balanced ``{...}``/``[...]`` in the prose that parses (at most
    ``MAX_CANDIDATES`` starts; an unclosed last one may get its missing closer); the whole reply repaired.
    ``root`` (``object``/``array``) only accepts that kind of value.
    """
    stripped = text.strip()
    if not stripped:
        return None
    value = parse_json(stripped, repair=False)
    if _fits(value, root):
        return value
    for fence in _FENCE.finditer(stripped):
        value = parse_json(fence.group(2))
        if _fits(value, root):
            return value
    for count, start in enumerate(_STARTS[root].finditer(stripped)):
        if count >= MAX_CANDIDATES:
            break
        end = _balanced_end(stripped, start.start())
        value = parse_json(stripped[start.start():end] if end else stripped[start.start():])
        if _fits(value, root):
            return value
    value = parse_json(stripped)
    return value if _fits(value, root) else None


# ------------------------------------------------------------------------------------------------------------------
# Validation and repair
# ------------------------------------------------------------------------------------------------------------------


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(fmt: OutputFormat, value: Any) -> list[str]:
    """What is wrong with ``value`` for ``fmt`` (at most ``MAX_PROBLEMS`` sentences); empty when it is valid."""
    if fmt.kind == "text":
        return []
    if fmt.kind == "json_object":
        return [] if isinstance(value, dict) else [f"the reply is not a JSON object (got {_kind(value)})"]
    try:
        found = islice(fmt._validator.iter_errors(value), MAX_PROBLEMS * 10)  # a huge wrong reply stays cheap
        errors = sorted(found, key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        return ["the reply nests too deeply to be checked"]
    except Exception as exc:  # an unresolvable reference, a pattern Python cannot compile: reported, never a 500
        return [f"the reply could not be checked against the schema ({type(exc).__name__})"]
    return [f"at {_path(e.absolute_path)}: {e.message}" for e in errors[:MAX_PROBLEMS]]


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def check(fmt: OutputFormat, text: str) -> tuple[Any | None, list[str]]:
    """``extract_json`` then ``validate``: the value (None when none was found) and the problems."""
    if fmt.kind == "text":
        return None, []
    value = extract_json(text, root=fmt.root)
    if value is None:
        what = {"object": "JSON object", "array": "JSON array"}.get(fmt.root or "", "JSON value")
        return None, [f"the reply holds no {what}"]
    return value, validate(fmt, value)


def repair_prompt(fmt: OutputFormat, text: str, problems: list[str]) -> str:
    """The follow-up message asking for the reply again, fixed: the problems, the reply quoted (truncated to
    ``MAX_ECHO_CHARS``) and the format instructions once more. Starts with ``JSON_MARKER``."""
    quoted = text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "\n[... truncated]"
    quoted = quoted.replace("</previous_reply>", "&lt;/previous_reply>")
    listed = [f"- {problem}" for problem in problems[:MAX_PROBLEMS]] or ["- it could not be read as required"]
    body = instructions(fmt).split("\n", 2)[-1]  # the instructions without their heading
    return "\n".join([
        JSON_MARKER, "",
        "Your previous reply does not follow the required response format:",
        *listed, "",
        "It was:", "<previous_reply>", quoted, "</previous_reply>", "",
        body, "",
        "Reply again now with only the corrected JSON.",
    ])
