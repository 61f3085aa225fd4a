"""Tool calling emulated over a chat that has none: declarations, instructions, history rendering, argument checks.

grok.com's web API cannot call functions, so the gateway asks the model, in the upstream message, to write each
call as one line ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` and parses those lines back out of
the answer (``core.sieve.ToolSieve``). This module is the pure part of that contract:

* ``ToolSpec`` / ``ToolChoice`` / ``ToolCallOut``: a declared tool (its client schema checked and normalised on
  construction), the client's ``tool_choice``, and a call found in an answer.
* ``prepare_tools(tools)``: the request's tools, counted, named, de-duplicated (``InvalidRequest`` otherwise).
* ``normalise_schema(schema, tool=...)``: the schema as shown upstream (refs inlined, root made a plain object).
* ``instructions(tools, choice)``: the block (first line ``TOOLS_MARKER``) put into the upstream message.
* ``render_call`` / ``render_result`` / ``render_history``: earlier calls and results in the same format.
* ``parse_json`` / ``validate_arguments`` / ``read_call``: a call's JSON read with light repair, then checked
  against the tool's schema; anything that does not both parse and validate is no call (the caller releases it
  as text, never a broken call).

Arguments are validated against the client's *original* schema (``jsonschema``, Draft 2020-12 unless the schema's
``$schema`` names another draft); the normalised one is only what the model reads.
"""

from __future__ import annotations

import functools
import html
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn, clean_turns

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "CALL_REMINDER_MARKER",
    "NOT_JSON",
    "RESULT_CLOSE",
    "TOOLS_MARKER",
    "ToolCallOut",
    "ToolChoice",
    "ToolSpec",
    "call_reminder",
    "check_arguments",
    "declare_tools",
    "instructions",
    "new_call_id",
    "normalise_schema",
    "parse_json",
    "prepare_schema",
    "prepare_tools",
    "read_call",
    "render_call",
    "render_history",
    "render_result",
    "validate_arguments",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESULT_CLOSE = "</tool_result>"
TOOLS_MARKER = "# Tools"
CALL_REMINDER_MARKER = "# Tool call required"
MAX_REMINDER_ECHO = 2000  # characters of the call-less reply quoted back in the reminder

# Bounds on the work one request can cause (all enforced before anything reaches jsonschema or the upstream).
MAX_TOOLS = 128  # tools per request
MAX_SCHEMA_NODES = 5_000  # JSON values (objects, arrays, scalars) in one schema as sent
MAX_TOTAL_SCHEMA_NODES = 20_000  # in all of a request's tool schemas (declare_tools): bounds a cold check
MAX_SCHEMA_DEPTH = 64  # nesting of one schema as sent
MAX_EXPANDED_NODES = 50_000  # one schema with every non-recursive $ref expanded: guards validation cost
MAX_SHOWN_NODES = 5_000  # ref inlining stops here (later refs become a "same schema as" note)
MAX_SHOWN_CHARS = 256_000  # the tools' descriptions and shown schemas together, as put into the upstream message
MAX_REF_DEPTH = 8  # refs inlined inside refs
MAX_REF_CHAIN = 64  # refs inside refs at all (deeper: refused; keeps every walk far from the recursion limit)
MAX_JSON_DEPTH = 64  # nesting of a call's JSON (deeper: no call; never a RecursionError)
MAX_ARGUMENT_CHARS = 1_000_000  # a call's JSON text
MAX_AUTO_CLOSE = 2  # missing closing braces/brackets the repair may add at the end

_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,128}")
ToolChoiceMode = Literal["auto", "none", "required", "function"]


def new_call_id() -> str:
    """A fresh call id: ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


# ------------------------------------------------------------------------------------------------------------------
# Declarations
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """A declared tool. ``parameters`` is the client's JSON Schema as sent (``None``/``{}``: no arguments).

    Construction checks and normalises it (``InvalidRequest`` naming the tool): ``schema`` is what the model is
    shown, the compiled validator checks arguments against the original.
    """

    name: str
    description: str = ""
    parameters: Any = None
    schema: dict[str, Any] = field(init=False, repr=False)
    schema_text: str = field(init=False, repr=False)  # ``schema`` as compact JSON, as the instructions show it
    _validator: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InvalidRequest(
                f"tool name {self.name!r} is invalid: use 1-128 letters, digits, '_', '-', '.', ':' or '/'"
            )
        object.__setattr__(self, "description", self.description or "")
        shown, validator = _tool_schema(self.parameters, self.name)
        object.__setattr__(self, "schema", shown)
        object.__setattr__(self, "schema_text", _compact(shown))
        object.__setattr__(self, "_validator", validator)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """The client's ``tool_choice``: ``auto`` | ``none`` | ``required`` | ``function`` (with ``name``)."""

    mode: ToolChoiceMode = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "none", "required", "function"):
            raise InvalidRequest(f"tool_choice {self.mode!r} is not one of auto, none, required, function")
        if self.mode == "function" and not self.name:
            raise InvalidRequest("tool_choice names no function")

    @classmethod
    def function(cls, name: str) -> ToolChoice:
        return cls("function", name)


@dataclass(frozen=True, slots=True)
class ToolCallOut:
    """A call found in an answer: ``raw`` is the exact text it was written as (tags included)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw: str = ""

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string OpenAI's ``function.arguments`` carries."""
        return json.dumps(self.arguments, ensure_ascii=False)


def prepare_tools(tools: Iterable[ToolSpec], choice: ToolChoice | None = None, *, param: str = "tools") -> list[ToolSpec]:
    """The request's tools, checked: at most ``MAX_TOOLS``, unique names, shown size within ``MAX_SHOWN_CHARS``
    (refs inlined can grow a schema), a forced function among them."""
    specs = list(tools)
    if len(specs) > MAX_TOOLS:
        raise InvalidRequest(f"too many tools: {len(specs)} (at most {MAX_TOOLS})", param=param)
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise InvalidRequest(f"tool name {spec.name!r} is declared twice", param=f"{param}[{index}]")
        seen.add(spec.name)
    shown = sum(len(spec.schema_text) + len(spec.description) for spec in specs)
    if shown > MAX_SHOWN_CHARS:
        raise InvalidRequest(f"the tools' descriptions and schemas are too large to send ({shown} characters "
                             f"once $refs are resolved, at most {MAX_SHOWN_CHARS})", param=param)
    if choice is not None and choice.mode == "function" and choice.name not in seen:
        raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not among the tools", param="tool_choice")
    if choice is not None and choice.mode in ("required", "function") and not specs:
        raise InvalidRequest(f"tool_choice {choice.mode!r} needs at least one tool", param="tool_choice")
    return specs


def declare_tools(
    declarations: Iterable[tuple[str, str | None, Any]], choice: ToolChoice | None = None, *, param: str = "tools"
) -> list[ToolSpec]:
    """The request's ``(name, description, parameters)`` declarations as checked ``ToolSpec``s.

    Their count and total schema size (``MAX_TOTAL_SCHEMA_NODES``) are checked before any schema is, then each is
    built (an error names its index: ``tools[3]``), then ``prepare_tools``' checks run.
    """
    items = list(declarations)
    if len(items) > MAX_TOOLS:
        raise InvalidRequest(f"too many tools: {len(items)} (at most {MAX_TOOLS})", param=param)
    total = 0
    for index, (_, _, parameters) in enumerate(items):
        total += _count(parameters, MAX_TOTAL_SCHEMA_NODES - total)
        if total > MAX_TOTAL_SCHEMA_NODES:
            raise InvalidRequest(f"the tools' parameter schemas are too large together (over "
                                 f"{MAX_TOTAL_SCHEMA_NODES} values)", param=f"{param}[{index}]")
    specs = []
    for index, (name, description, parameters) in enumerate(items):
        try:
            specs.append(ToolSpec(name, description or "", parameters))
        except InvalidRequest as error:
            raise InvalidRequest(error.message, param=f"{param}[{index}]") from None
    return prepare_tools(specs, choice, param=param)


def _count(value: Any, limit: int) -> int:
    """JSON values in ``value``, counting stops past ``limit``."""
    nodes, stack = 0, [value]
    while stack and nodes <= limit:
        item = stack.pop()
        nodes += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return nodes


# ------------------------------------------------------------------------------------------------------------------
# Schema normalisation
# ------------------------------------------------------------------------------------------------------------------

# Keywords whose value is one schema, a list of schemas, or a map of names to schemas (the walk must know which:
# a property may be called "$ref" or "definitions", and `default`/`enum` values are data, never rewritten).
_ONE = {"additionalProperties", "items", "not", "if", "then", "else", "contains", "propertyNames",
        "unevaluatedProperties", "unevaluatedItems", "additionalItems", "contentSchema"}
_MANY = {"anyOf", "oneOf", "allOf", "prefixItems"}
_MAP = {"properties", "patternProperties", "dependentSchemas", "dependencies"}
_DROPPED = {"$defs", "definitions", "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "nullable"}


def normalise_schema(schema: Any, *, tool: str = "tool") -> dict[str, Any]:
    """``schema`` as shown upstream for ``tool``; ``InvalidRequest`` when it is not a usable object schema.

    Inlines local ``$ref`` (``#/$defs/X``, ``#/definitions/X``, any JSON pointer; recursive or too deep refs
    become a ``same schema as`` note), drops ``$defs``/``$schema``/``nullable``, makes a nullable root
    (``type: [object, null]``) an object, merges a root ``anyOf``/``oneOf``/``allOf`` of objects into one object
    (alternatives described), and adds a missing root ``type: object``. The original is checked as a schema.
    """
    return _tool_schema(schema, tool)[0]


def _tool_schema(schema: Any, tool: str) -> tuple[dict[str, Any], Any]:
    if schema is None or schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise InvalidRequest(f"tool {tool!r}: parameters must be a JSON Schema object, not {_kind(schema)}")
    return prepare_schema(schema, where=f"tool {tool!r}: parameters", tool=tool)


# Checked schemas by their JSON text: agents send the same tools every turn, and the metaschema check is the
# expensive part (~10 µs per schema value). Entries are shared, read-only.
SCHEMA_CACHE_SIZE = 512
_CACHE: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()


def prepare_schema(schema: dict[str, Any], *, where: str, tool: str | None = None) -> tuple[dict[str, Any], Any]:
    """``schema`` checked and shown: ``(shown, validator)``; ``InvalidRequest`` starting with ``where`` otherwise.

    Checks its size (``MAX_SCHEMA_NODES``, ``MAX_SCHEMA_DEPTH``) and validity as a JSON Schema, inlines its local
    ``$ref``s; with ``tool``, also rewrites the root into a plain object (see ``normalise_schema``). The validator
    (Draft 2020-12 unless ``$schema`` names another draft) checks instances against the schema as sent. Results
    are cached by the schema's JSON text (``SCHEMA_CACHE_SIZE``); treat them as read-only.
    """
    _check_size(schema, where)
    try:
        key = ("T" if tool is not None else "S") + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidRequest(f"{where}: the schema is not JSON") from None
    if (hit := _CACHE.get(key)) is not None:
        _CACHE.move_to_end(key)
        return hit
    _check_schema(schema, where)
    try:
        shown = _Inliner(schema, where).run()
    except RecursionError:
        raise InvalidRequest(f"{where}: $refs nested too deeply") from None
    if tool is not None:
        shown = _object_root(shown, tool)
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    result = shown, validator_for(schema, default=Draft202012Validator)(schema)
    _CACHE[key] = result
    if len(_CACHE) > SCHEMA_CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _check_size(schema: dict, where: str) -> None:
    nodes, stack = 0, [(schema, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise InvalidRequest(f"{where}: schema too large (over {MAX_SCHEMA_NODES} values)")
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidRequest(f"{where}: schema nested deeper than {MAX_SCHEMA_DEPTH}")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _flat_2020_12() -> Any:
    """A validator for Draft 2020-12's metaschema merged into one document (its vocabularies inlined,
    ``$dynamicRef: #meta`` made ``$ref: #``): the same verdicts as ``check_schema``, about six times faster,
    because the official one resolves dynamic references across seven documents at every level."""
    from urllib.parse import urljoin

    from jsonschema import Draft202012Validator
    from jsonschema_specifications import REGISTRY

    def static(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: static(v) for k, v in node.items() if k != "$dynamicRef"}
            if isinstance(out.get("$ref"), str) and "#/$defs/" in out["$ref"]:  # meta/core#/$defs/X: merged here
                out["$ref"] = "#/$defs/" + out["$ref"].split("#/$defs/", 1)[1]
            return {"$ref": "#", **out} if node.get("$dynamicRef") == "#meta" else out
        return [static(v) for v in node] if isinstance(node, list) else node

    main = Draft202012Validator.META_SCHEMA
    flat: dict[str, Any] = {"type": ["object", "boolean"], "properties": {}, "$defs": {}}
    for part in main["allOf"]:
        vocabulary = REGISTRY.contents(urljoin(main["$id"], part["$ref"]))
        flat["properties"].update(static(vocabulary.get("properties", {})))
        flat["$defs"].update(static(vocabulary.get("$defs", {})))
    flat["properties"].update(static(main.get("properties", {})))
    return Draft202012Validator(flat, format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def _meta_2020_12() -> Any:
    """Built on first use: jsonschema costs ~50 ms to import, which a cold start without tools should not pay."""
    try:
        return _flat_2020_12()
    except Exception:  # a jsonschema layout this was not written for: the official (slower) check still works
        return None


def _check_schema(schema: dict, where: str) -> None:
    from jsonschema import Draft202012Validator, SchemaError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=Draft202012Validator)
    meta = _meta_2020_12()
    try:
        if cls is Draft202012Validator and meta is not None:
            error = best_match(meta.iter_errors(schema))
            if error is not None:
                raise SchemaError.create_from(error)
        else:
            cls.check_schema(schema)
    except SchemaError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidRequest(f"{where}: not a valid JSON Schema at {path}: {error.message}") from None
    except RecursionError:
        raise InvalidRequest(f"{where}: schema nested too deeply") from None


def _pointer(root: dict, ref: str, where: str) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise InvalidRequest(f"{where}: unsupported $ref {ref!r} (only local '#/...' references)")
    node: Any = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdecimal() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidRequest(f"{where}: $ref {ref!r} points at nothing")
    if not isinstance(node, dict | bool):
        raise InvalidRequest(f"{where}: $ref {ref!r} does not point at a schema")
    return node


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] or "root"


class _Inliner:
    """One schema's ``$ref``s inlined, bounded by ``MAX_REF_DEPTH``, ``MAX_SHOWN_NODES`` and (for the cost of
    validating against the original) ``MAX_EXPANDED_NODES``."""

    def __init__(self, root: dict, where: str) -> None:
        self.root, self.where = root, where
        self.nodes = 0
        self.titled: dict[str, list[dict]] = {}  # ref -> its inlined copies (titled if a note refers to it)
        self.noted: set[str] = set()
        self.sizes: dict[str, int] = {}

    def run(self) -> dict[str, Any]:
        if self._expanded(self.root, ()) > MAX_EXPANDED_NODES:
            raise InvalidRequest(
                f"{self.where}: schema expands past {MAX_EXPANDED_NODES} values once its $refs are resolved")
        shown = self._walk(self.root, ())
        for ref in self.noted:
            for copy in self.titled.get(ref, ()):
                copy.setdefault("title", _ref_name(ref))
        return shown if isinstance(shown, dict) else {}

    def _expanded(self, node: Any, stack: tuple[str, ...]) -> int:
        """Node count with refs expanded (memoised per ref; recursion counts 1): linear in the schema."""
        if not isinstance(node, dict):
            return 1
        total = 1
        ref = node.get("$ref")
        if isinstance(ref, str):
            if len(stack) >= MAX_REF_CHAIN:
                raise InvalidRequest(f"{self.where}: $refs nested deeper than {MAX_REF_CHAIN}")
            if ref in stack:
                total += 1
            elif ref in self.sizes:
                total += self.sizes[ref]
            else:
                size = self._expanded(_pointer(self.root, ref, self.where), (*stack, ref))
                self.sizes[ref] = size
                total += size
            if total > MAX_EXPANDED_NODES:
                return total
        for key, value in node.items():
            for child in _children(key, value):
                total += self._expanded(child, stack)
                if total > MAX_EXPANDED_NODES:
                    return total
        return total

    def _walk(self, node: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node  # boolean schema
        self.nodes += 1
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = _pointer(self.root, ref, self.where)
            if ref in stack or len(stack) >= MAX_REF_DEPTH or self.nodes > MAX_SHOWN_NODES:
                self.noted.add(ref)
                out = _note(target, ref, recursive=ref in stack)
            else:
                inlined = self._walk(target, (*stack, ref))
                if isinstance(inlined, dict):
                    out = dict(inlined)
                    self.titled.setdefault(ref, []).append(out)
        for key, value in node.items():
            if key == "$ref" or key in _DROPPED:
                continue
            if key in _ONE:
                out[key] = [self._walk(v, stack) for v in value] if isinstance(value, list) else self._walk(value, stack)
            elif key in _MANY and isinstance(value, list):
                out[key] = [self._walk(v, stack) for v in value]
            elif key in _MAP and isinstance(value, dict):
                out[key] = {name: self._walk(v, stack) for name, v in value.items()}
            else:
                out[key] = value
        return out


def _children(key: str, value: Any) -> Iterable[Any]:
    if key in _ONE:
        return value if isinstance(value, list) else (value,)
    if key in _MANY and isinstance(value, list):
        return value
    if key in _MAP and isinstance(value, dict):
        return value.values()
    return ()


def _note(target: Any, ref: str, *, recursive: bool) -> dict[str, Any]:
    name = _ref_name(ref)
    why = "the enclosing" if recursive else "the"
    out: dict[str, Any] = {"description": f"same schema as {why} `{name}` above"}
    if isinstance(target, dict) and isinstance(target.get("type"), str):
        out = {"type": target["type"], **out}
    return out


def _object_like(alt: Any) -> bool:
    if not isinstance(alt, dict):
        return alt is True
    kind = alt.get("type")
    if kind is None:
        return True
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _is_null(alt: Any) -> bool:
    return isinstance(alt, dict) and (alt.get("type") == "null" or alt.get("type") == ["null"])


def _object_root(schema: dict[str, Any], tool: str) -> dict[str, Any]:
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, list):
        if "object" not in kind:
            raise InvalidRequest(f"tool {tool!r}: parameters must describe a JSON object, not {kind!r}")
        out["type"] = "object"
    elif kind is not None and kind != "object":
        raise InvalidRequest(f"tool {tool!r}: parameters must describe a JSON object, not {kind!r}")
    for key in ("anyOf", "oneOf"):
        alts = out.pop(key, None)
        if isinstance(alts, list):
            _merge_alternatives(out, [a for a in alts if not _is_null(a)], tool, exclusive=key == "oneOf")
    alts = out.get("allOf")
    if isinstance(alts, list) and all(isinstance(a, dict) and _object_like(a) for a in alts):
        del out["allOf"]
        for alt in alts:
            out.setdefault("properties", {}).update(alt.get("properties") or {})
            out["required"] = _unique([*out.get("required", []), *alt.get("required", [])])
    out.pop("type", None)
    out.setdefault("properties", {})
    return {"type": "object", **out}


def _merge_alternatives(out: dict[str, Any], alts: list[Any], tool: str, *, exclusive: bool) -> None:
    objects = [a for a in alts if isinstance(a, dict) and _object_like(a)]
    if not objects:
        raise InvalidRequest(f"tool {tool!r}: no alternative of the parameters' anyOf/oneOf is a JSON object")
    properties = dict(out.get("properties") or {})
    required: set[str] | None = None
    forms = []
    for alt in objects:
        for name, sub in (alt.get("properties") or {}).items():
            if name in properties and properties[name] != sub:
                properties[name] = {"anyOf": [properties[name], sub]}
            else:
                properties[name] = sub
        needed = [r for r in alt.get("required", []) if isinstance(r, str)]
        required = set(needed) if required is None else required & set(needed)
        label = alt.get("title") or alt.get("description")
        keys = ", ".join(needed or list(alt.get("properties") or {})) or "no arguments"
        forms.append(f"{label}: {keys}" if label else keys)
    out["properties"] = properties
    if len(objects) > 1:
        base = out.get("required", [])
        out["required"] = _unique([*base, *sorted(required or ())])
        which = "exactly one" if exclusive else "one"
        text = f"Arguments take {which} of these forms: " + "; ".join(f"({n}) {f}" for n, f in enumerate(forms, 1))
        out["description"] = f"{out['description']} {text}" if out.get("description") else text
    else:
        alt = objects[0]
        out["required"] = _unique([*out.get("required", []), *alt.get("required", [])])
        for key, value in alt.items():
            if key not in ("properties", "required", "type"):
                out.setdefault(key, value)
    if not out["required"]:
        del out["required"]


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(i for i in items if isinstance(i, str)))


# ------------------------------------------------------------------------------------------------------------------
# Instructions and history
# ------------------------------------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def instructions(tools: Sequence[ToolSpec], choice: ToolChoice | None = None) -> str:
    """The tool block for the upstream message; its first line is ``TOOLS_MARKER``.

    ``auto``/``required``/``function``: every tool (name, description, normalised schema), the call format and
    its rules, then the choice rule. ``none``: names and descriptions only, for context (earlier calls in the
    history stay readable), without the call format, and the rule not to call any.
    """
    choice = choice or ToolChoice()
    if choice.mode == "none":
        lines = [TOOLS_MARKER, "", "These tools were available earlier in this conversation:"]
        lines += [f"- {tool.name}" + (f": {_one_line(tool.description)}" if tool.description else "") for tool in tools]
        lines += ["", f"Tool calling is disabled for this reply: do not write {CALL_OPEN} blocks. Answer in plain "
                  "text, using any tool results above."]
        return "\n".join(lines)
    lines = [TOOLS_MARKER, "",
             "You can call the tools below. They run on the user's side: you request a call, the result comes "
             "back in the next message.", "", "## Available tools"]
    for tool in tools:
        lines += ["", f"### {tool.name}"]
        if tool.description:
            lines.append(tool.description.strip())
        lines.append(f"Parameters (JSON Schema): {tool.schema_text}")
    example = '{"name": "TOOL_NAME", "arguments": {"ARGUMENT": "VALUE"}}'
    lines += [
        "", "## How to call a tool",
        "To call a tool, write a line of exactly this form, with nothing else on that line:",
        f"{CALL_OPEN}{example}{CALL_CLOSE}",
        "Rules:",
        "- \"name\" is one of the tools above; \"arguments\" is a JSON object that matches that tool's parameters "
        "schema (valid JSON: double quotes, no comments, no trailing commas).",
        f"- To call several tools at once, write one {CALL_OPEN} line per call.",
        f"- Never put {CALL_OPEN} lines in code blocks or quotes, and never write one you do not mean to make.",
        "- After your tool calls, stop and end your reply: wait for the results. They arrive as "
        "<tool_result id=\"...\" name=\"...\">...</tool_result> blocks; never write those yourself or guess "
        "results.",
        f"- {_choice_rule(choice)}",
    ]
    return "\n".join(lines)


def call_reminder(choice: ToolChoice, previous: str) -> str:
    """The follow-up turn after a reply without the call ``choice`` requires: the reply quoted (truncated to
    ``MAX_REMINDER_ECHO``), the rule again, and the call format's name. Starts with ``CALL_REMINDER_MARKER``."""
    quoted = previous if len(previous) <= MAX_REMINDER_ECHO else previous[:MAX_REMINDER_ECHO] + "\n[... truncated]"
    quoted = quoted.replace("</previous_reply>", "&lt;/previous_reply>")
    return "\n".join([
        CALL_REMINDER_MARKER, "",
        "Your previous reply called no tool, but this reply must call one. It was:",
        "<previous_reply>", quoted, "</previous_reply>", "",
        _choice_rule(choice),
        f"Reply again now with only the {CALL_OPEN} line(s), in the form given under \"How to call a tool\".",
    ])


def _choice_rule(choice: ToolChoice) -> str:
    if choice.mode == "required":
        return "In this reply you MUST call at least one tool."
    if choice.mode == "function":
        return f"In this reply you MUST call the tool `{choice.name}` (exactly that tool, no other)."
    return "Call a tool when it helps answer the user; otherwise reply normally, without tool calls."


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_call(call: ToolCall | ToolCallOut) -> str:
    """An earlier assistant call, as the model writes them, with its id: ``<tool_call>{"id": ...}</tool_call>``."""
    arguments: Any = call.arguments
    if isinstance(arguments, str):
        if _too_deep(arguments):  # JSON inside a JSON string escapes the request body's depth check
            raise InvalidRequest(
                f"tool call `{call.id or call.name}`: arguments nest JSON deeper than {MAX_JSON_DEPTH} levels",
                param="messages[].tool_calls[].function.arguments", code="json_too_deep",
            )
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # shown as the string the client sent
    body = json.dumps({"id": call.id, "name": call.name, "arguments": arguments}, ensure_ascii=False)
    return CALL_OPEN + body.replace("</", "<\\/") + CALL_CLOSE  # "<\/" is valid JSON: no early close


_RESULT_TAGS = re.compile(r"<(/?)(tool_result|tool_call)", re.IGNORECASE)


def render_result(call_id: str, name: str | None, content: str, is_error: bool = False) -> str:
    """A tool result block; tags inside ``content`` are escaped (``&lt;/tool_result``) so it cannot end early."""
    attrs = f'id="{html.escape(call_id or "", quote=True)}"'
    if name:
        attrs += f' name="{html.escape(name, quote=True)}"'
    if is_error:
        attrs += ' error="true"'
    body = _RESULT_TAGS.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", content.strip("\n"))
    return f"<tool_result {attrs}>\n{body}\n{RESULT_CLOSE}"


def render_history(turns: list[Turn]) -> str:
    """``core.prompt.flatten``'s message with tool turns in this format (texts cleaned the same way).

    Role-labelled blocks (``[system]``, ``[user]``, ``[assistant]``) separated by blank lines, like ``flatten``;
    an assistant's calls follow its text as ``render_call`` lines, and consecutive tool results become one
    ``[tool results]`` block of ``render_result`` blocks, named from the call they answer. Images are not
    touched: collect them as ``flatten`` does.
    """
    turns = clean_turns(turns)
    names = {call.id: call.name for turn in turns for call in turn.tool_calls}
    blocks: list[str] = []
    results: list[str] = []
    for turn in turns:
        if turn.role == "tool":
            name = turn.name or names.get(turn.tool_call_id or "")
            is_error = bool(getattr(turn, "is_error", False))  # should Turn ever carry Anthropic's is_error
            results.append(render_result(turn.tool_call_id or "", name, turn.text, is_error))
            continue
        if results:
            blocks.append("[tool results]\n" + "\n".join(results))
            results = []
        lines = [turn.text.strip()] if turn.text.strip() else []
        lines += [render_call(call) for call in turn.tool_calls]
        if not lines:
            continue
        if turn.role in ("system", "developer"):
            label = "[system]"
        else:
            label = f"[{turn.role} {turn.name}]" if turn.name else f"[{turn.role}]"
        blocks.append(label + "\n" + "\n".join(lines))
    if results:
        blocks.append("[tool results]\n" + "\n".join(results))
    return "\n\n".join(blocks)


# ------------------------------------------------------------------------------------------------------------------
# Reading calls: JSON with light repair, arguments checked against the schema
# ------------------------------------------------------------------------------------------------------------------

class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Any = _NotJson()  # parse_json's "no JSON here" (distinct from a JSON null)
_FAIL = NOT_JSON
_FENCED = re.compile(r"\A\s*(```|~~~)[\w.+-]*[ \t]*\n(.*?)\n?[ \t]*\1\s*\Z", re.DOTALL)
_DEPTH_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(text: str) -> bool:
    """Nesting beyond ``MAX_JSON_DEPTH`` (counted outside double-quoted strings), checked before json.loads."""
    if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _DEPTH_TOKENS.finditer(text):
        token = match.group()
        if token in "{[":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def parse_json(text: str, *, repair: bool = True) -> Any:
    """The JSON value ``text`` holds, or ``NOT_JSON``; never raises.

    Strict JSON first (raw control characters inside strings allowed). With ``repair``, then a lenient reading
    that undoes common slips, only as a whole: a surrounding code fence, trailing commas, smart quotes (“ ” ‘ ’)
    and single quotes as string delimiters, and up to ``MAX_AUTO_CLOSE`` missing closing braces/brackets at the
    end. Nesting deeper than ``MAX_JSON_DEPTH`` or text over ``MAX_ARGUMENT_CHARS`` fail. NaN/Infinity fail.
    """
    if len(text) > MAX_ARGUMENT_CHARS or _too_deep(text):
        return _FAIL
    try:
        return _sendable(json.loads(text, strict=False, parse_constant=_reject_constant), text)
    except (ValueError, RecursionError):
        pass
    if not repair:
        return _FAIL
    fenced = _FENCED.match(text)
    if fenced:
        return parse_json(fenced.group(2), repair=True)
    try:
        return _sendable(_Lenient(text).document(), text)
    except (_Fail, ValueError, RecursionError):
        return _FAIL


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _sendable(value: Any, text: str) -> Any:
    """``value`` unless a ``\\ud800``-style escape left an unpaired surrogate in it (it could not be encoded
    as UTF-8 for the client): then ValueError."""
    if _SURROGATE_ESCAPE.search(text):
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError is a ValueError
    return value


class _Fail(Exception):
    pass


_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s*")
_LITERALS = {"true": True, "false": False, "null": None}
# Opening quote -> the characters that close it, and whether backslash escapes apply.
_QUOTES = {'"': ('"', True), "'": ("'", True), "“": ("”“", False), "”": ("”“", False), "„": ("”“", False),
           "‘": ("’‘", False), "’": ("’‘", False)}
_STOPS = {(closers, escapes): re.compile("[" + re.escape(closers + ("\\" if escapes else "")) + "]")
          for closers, escapes in _QUOTES.values()}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'"}


class _Lenient:
    """A small recursive-descent JSON reader for the repairs ``parse_json`` documents (depth-bounded)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.closed = 0

    def document(self) -> Any:
        value = self.value(0)
        self.space()
        if self.i != len(self.s):
            raise _Fail
        return value

    def space(self) -> None:
        self.i = _SPACE.match(self.s, self.i).end()  # type: ignore[union-attr]

    def value(self, depth: int) -> Any:
        if depth >= MAX_JSON_DEPTH:
            raise _Fail
        self.space()
        if self.i >= len(self.s):
            raise _Fail
        c = self.s[self.i]
        if c == "{":
            return self.container(depth, "}")
        if c == "[":
            return self.container(depth, "]")
        if c in _QUOTES:
            return self.string()
        number = _NUMBER.match(self.s, self.i)
        if number:
            self.i = number.end()
            return json.loads(number.group())
        for word, literal in _LITERALS.items():
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return literal
        raise _Fail

    def container(self, depth: int, close: str) -> Any:
        self.i += 1
        out: Any = {} if close == "}" else []
        while True:
            self.space()
            if self.i >= len(self.s):  # missing closer(s) at the very end
                self.closed += 1
                if self.closed > MAX_AUTO_CLOSE:
                    raise _Fail
                return out
            if self.s[self.i] == close:
                self.i += 1
                return out
            if close == "}":
                if self.s[self.i] not in _QUOTES:
                    raise _Fail
                key = self.string()
                self.space()
                if not self.s.startswith(":", self.i):
                    raise _Fail
                self.i += 1
                out[key] = self.value(depth + 1)
            else:
                out.append(self.value(depth + 1))
            self.space()
            if self.s.startswith(",", self.i):
                self.i += 1  # a trailing comma is taken care of by the closer check above
            elif self.i < len(self.s) and self.s[self.i] != close:
                raise _Fail

    def string(self) -> str:
        closers, escapes = _QUOTES[self.s[self.i]]
        stop = _STOPS[closers, escapes]
        self.i += 1
        out: list[str] = []
        s = self.s
        while True:
            m = stop.search(s, self.i)  # copy plain runs at once: long strings stay cheap
            if m is None:
                raise _Fail
            out.append(s[self.i: m.start()])
            self.i = m.start()
            c = s[self.i]
            if c in closers:
                self.i += 1
                text = "".join(out)
                if "\\u" in s:  # \\u escapes decoded one by one: join surrogate pairs (lone ones fail later)
                    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
                return text
            nxt = s[self.i + 1: self.i + 2]  # c is a backslash: ``stop`` matches one only where escapes apply
            if nxt == "u" and _HEX4.fullmatch(s, self.i + 2, self.i + 6):
                out.append(chr(int(s[self.i + 2: self.i + 6], 16)))
                self.i += 6
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                self.i += 2
            else:
                raise _Fail


def check_arguments(tool: ToolSpec, value: Any) -> str | None:
    """Why ``value`` is not a valid argument object for ``tool`` (None when it is)."""
    if not isinstance(value, dict):
        return f"arguments for {tool.name!r} are not a JSON object"
    try:
        error = next(iter(tool._validator.iter_errors(value)), None)
    except RecursionError:
        return f"arguments for {tool.name!r} nest too deeply"
    except Exception as exc:  # an unresolvable reference, a pattern Python cannot compile: no call, never a 500
        return f"arguments for {tool.name!r} could not be checked: {type(exc).__name__}"
    if error is None:
        return None
    where = "".join(f"[{p!r}]" for p in error.absolute_path) or "(root)"
    return f"arguments for {tool.name!r} do not match its schema at {where}: {error.message}"


def validate_arguments(tool: ToolSpec, raw: str) -> dict[str, Any] | None:
    """The argument object in ``raw`` (JSON, light repair as ``parse_json``) if it matches ``tool``'s schema."""
    value = parse_json(raw) if raw.strip() else {}
    if value is _FAIL or check_arguments(tool, value) is not None:
        return None
    return value


def read_call(body: str, tools: Mapping[str, ToolSpec], *, raw: str = "") -> ToolCallOut | str:
    """The call ``body`` (the text between the tags) writes, with a fresh id, or why it is none.

    ``{"name": ..., "arguments": {...}}``; ``input``/``parameters`` are read as ``arguments``, arguments given as
    a JSON string are decoded, missing arguments are ``{}``; an ``id`` the model copied from history is ignored.
    """
    value = parse_json(body.strip())
    if value is _FAIL or not isinstance(value, dict):
        return "the tool call is not a JSON object"
    name = value.get("name")
    if not isinstance(name, str) or name not in tools:
        return f"the tool call names an undeclared tool {name!r}"
    arguments = next((value[key] for key in ("arguments", "input", "parameters") if key in value), {})
    if isinstance(arguments, str):
        arguments = parse_json(arguments) if arguments.strip() else {}
    problem = check_arguments(tools[name], arguments)
    if problem:
        return problem
    return ToolCallOut(id=new_call_id(), name=name, arguments=arguments, raw=raw)
