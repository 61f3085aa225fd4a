"""Deterministic values for a JSON schema, taken from the user's request where that makes sense.

Required properties are filled (all of them when the schema lists none): strings from the request (quoted text,
a path-like token for ``path``/``file_path``/``filename``, the text after "with content"/"containing" for
``content``, a URL for ``url``), ``command`` arrays as ``["bash", "-lc", <quoted text or "echo hello">]``,
numbers 1 (within ``minimum``/``maximum``), booleans true, enums and consts their first value, arrays one
element (or ``minItems``), objects recursively. Local ``$ref``s, ``anyOf``/``oneOf`` (first non-null branch) and
``allOf`` (merged) are followed; depth is bounded so recursive schemas end.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from typing import Any

MAX_DEPTH = 6
_STOPWORDS = frozenset(
    "the and for with this that you your are what how can please from into use using tool tools call about will "
    "should all any not its was has have does there their them then than when where which who why want need "
    "some more make just like also".split()
)
_QUOTED_RES = (
    re.compile(r"`([^`\n]+)`"),
    re.compile(r"\"([^\"\n]+)\""),
    re.compile(r"[“”]([^“”\n]+)[“”]"),
    re.compile(r"(?<![\w])'([^'\n]+)'(?![\w])"),
)
_URL_RE = re.compile(r"https?://[^\s\"'`<>]+")
_PATH_RE = re.compile(r"(?:~|\.{1,2})?/[\w.\-/]*\w|\b[\w\-]+(?:/[\w.\-]+)*\.[A-Za-z][A-Za-z0-9]{0,7}\b")
_CONTENT_RE = re.compile(r"\b(?:with (?:the )?(?:content|contents|text)|containing|that says|saying)\s*:?\s*(.+)",
                         re.I | re.S)
_TOPIC_RE = re.compile(r"\b(?:in|for|about|of|at|on|called|named)\s+([^.?!,;:\n]+)", re.I)
_PATH_NAMES = ("path", "file", "filename", "filepath", "file_path", "dir", "directory", "folder")
_CONTENT_NAMES = ("content", "contents", "text", "body")
_COMMAND_NAMES = ("command", "cmd", "script")
_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}


def words(text: str) -> set[str]:
    """Lower-case content words (names split on ``_``, ``-`` and camelCase; plural ``s`` dropped)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    out = set()
    for word in re.findall(r"[a-z0-9]+", spaced.lower()):
        if len(word) < 3 or word in _STOPWORDS:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


class Request:
    """What the user asked, pre-digested for argument synthesis."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def quoted(self) -> list[str]:
        found = [(m.start(), m.group(1).strip()) for r in _QUOTED_RES for m in r.finditer(self.text)]
        return [q for _, q in sorted(found) if q]

    @cached_property
    def path(self) -> str | None:
        for candidate in self.quoted:
            if _PATH_RE.fullmatch(candidate):
                return candidate
        match = _PATH_RE.search(_URL_RE.sub(" ", self.text))
        return match.group(0) if match else None

    @cached_property
    def content(self) -> str:
        match = _CONTENT_RE.search(self.text)
        if match:
            tail = match.group(1).strip()
            quoted = Request(tail).quoted
            return quoted[0] if quoted else tail.rstrip(".!?") or tail
        others = [q for q in self.quoted if q != self.path]
        return others[0] if others else " ".join(self.text.split()[:8]) or "Hello"

    @cached_property
    def command(self) -> str:
        others = [q for q in self.quoted if q != self.path]
        return others[0] if others else (self.quoted[0] if self.quoted else "echo hello")

    @cached_property
    def phrase(self) -> str:
        """A short phrase: quoted text, else what follows the last "in/for/about/..." , else the request."""
        if self.quoted:
            return self.quoted[0]
        topics = _TOPIC_RE.findall(self.text)
        if topics:
            topic = " ".join(topics[-1].split()[:5])
            if topic:
                return topic
        return " ".join(self.text.split()[:8]) or "example"

    @cached_property
    def url(self) -> str:
        match = _URL_RE.search(self.text)
        return match.group(0).rstrip(".,)") if match else "https://example.com"


def _is(name: str, names: tuple[str, ...]) -> bool:
    """``name`` is one of ``names`` or ends in one (``notebook_path``, ``filePath``)."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().replace("-", "_")
    return snake in names or any(snake.endswith("_" + n) for n in names)


def _branch(branches: list[Any], deep: bool) -> Any:
    """The first non-null branch; deep down, a null or ``$ref``-free one so recursive schemas can end."""
    options = [b for b in branches if isinstance(b, dict)]
    if deep:
        ending = [b for b in options if b.get("type") == "null"] or [b for b in options if "$ref" not in b]
        if ending:
            return ending[0]
    return next((b for b in options if b.get("type") != "null"), branches[0])


def _resolve(schema: Any, root: dict[str, Any], deep: bool = False) -> dict[str, Any]:
    """Follow local ``$ref``s and pick a branch of ``anyOf``/``oneOf``; merge ``allOf``."""
    for _ in range(MAX_DEPTH):
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            target: Any = root
            for part in ref.lstrip("#").strip("/").split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if part and isinstance(
                    target, dict) else target
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **(target if isinstance(target, dict)
                                                                             else {})}
            continue
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                pick = _branch(branches, deep)
                schema = {**{k: v for k, v in schema.items() if k != key}, **(pick if isinstance(pick, dict) else {})}
                break
        else:
            parts = schema.get("allOf")
            if isinstance(parts, list):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in parts:
                    part = _resolve(part, root, deep)
                    merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                    merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                    merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
                schema = merged
                continue
            return schema
    return schema if isinstance(schema, dict) else {}


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _bound(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """1, moved inside ``minimum``/``maximum`` and their exclusive forms when it lies outside."""
    low, ex_low = _bound(schema, "minimum"), _bound(schema, "exclusiveMinimum")
    high, ex_high = _bound(schema, "maximum"), _bound(schema, "exclusiveMaximum")
    floor = max((b for b in (low, ex_low) if b is not None), default=None)
    value: float = 1
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    if ex_low is not None and value <= ex_low:
        value = math.floor(ex_low) + 1 if integer else ex_low + 1
    if high is not None and value > high:
        value = math.floor(high) if integer else high
    if ex_high is not None and value >= ex_high:
        if integer:
            value = math.ceil(ex_high) - 1
        else:
            value = (floor + ex_high) / 2 if floor is not None else ex_high - 1
    return int(value) if integer else value


def _string(schema: dict[str, Any], name: str, request: Request) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        value = request.url if fmt in ("uri", "url") else _FORMATS[fmt]
    elif _is(name, ("url", "uri", "link")):
        value = request.url
    elif _is(name, _PATH_NAMES):
        value = request.path or (request.quoted[0] if request.quoted else "notes.txt")
    elif _is(name, _CONTENT_NAMES):
        value = request.content
    elif _is(name, _COMMAND_NAMES):
        value = request.command
    else:
        value = request.phrase
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    if isinstance(low, int) and len(value) < low:
        value = value + "x" * (low - len(value))
    return value


def fill(schema: Any, request: Request, *, name: str = "", root: bool = False, depth: int = 0,
         defs: dict[str, Any] | None = None) -> Any:
    """A value valid for ``schema``. ``root``: the value must be an object (tool arguments)."""
    top = defs if defs is not None else (schema if isinstance(schema, dict) else {})
    schema = _resolve(schema, top, depth >= MAX_DEPTH - 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = "object" if root and "type" not in schema else _type(schema)
    if depth >= MAX_DEPTH and kind in ("object", "array"):
        return {} if kind == "object" else []  # recursive schemas end here
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else list(props)
        out: dict[str, Any] = {}
        for key in dict.fromkeys(names):
            sub = props.get(key)
            if sub is None:
                extra = schema.get("additionalProperties")
                sub = extra if isinstance(extra, dict) else {"type": "string"}
            out[key] = fill(sub, request, name=key, depth=depth + 1, defs=top)
        return out
    if kind == "array":
        return _array(schema, name, request, depth, top)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name, request)


def _array(schema: dict[str, Any], name: str, request: Request, depth: int, top: dict[str, Any]) -> list[Any]:
    items = _resolve(schema.get("items"), top) if isinstance(schema.get("items"), dict) else {}
    prefix = schema.get("prefixItems", schema.get("items"))  # a list of schemas: one value each
    if isinstance(prefix, list) and prefix:
        return [fill(p, request, name=name, depth=depth + 1, defs=top) for p in prefix]
    high = schema.get("maxItems")
    if isinstance(high, int) and high <= 0:
        return []
    if _is(name, ("command", "cmd", "argv")) and _type(items) == "string" and "enum" not in items:
        return ["bash", "-lc", request.command][: high if isinstance(high, int) else None]
    low = schema.get("minItems")
    count = max(1, min(low if isinstance(low, int) else 1, 3))
    values = [fill(items, request, name=name, depth=depth + 1, defs=top) for _ in range(count)]
    if schema.get("uniqueItems") and count > 1:
        values = [f"{v}{i}" if isinstance(v, str) else v for i, v in enumerate(values)]
    return values
