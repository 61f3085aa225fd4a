"""OpenAI Responses API request bodies: validated at the edge, normalised to canonical items, turned into core
``Turn``s and a ``ReplySpec``.

Input items are read leniently (Codex replays shapes the strict schema would refuse: ``content: null``, parts
without ``type``, ``function_call_output.output`` as a list of parts) and normalised once into *canonical items*:
the shapes the SDK's ``ResponseItem`` models expect (``message`` with ``input_text``/``output_text``/``input_image``
parts, ``function_call``, ``function_call_output``), each with an id. Those are what ``store: true`` keeps, what
``GET /v1/responses/{id}/input_items`` lists and what a ``previous_response_id`` chain rebuilds its history from.

Tools: ``function`` tools as declared; ``namespace`` tools (Codex) flattened to ``<namespace>.<tool>`` for the
model and answered as ``function_call`` items carrying ``name`` and ``namespace`` (as the SDK's
``ResponseFunctionToolCall`` does); ``web_search``/``web_search_preview`` leave Grok's own search on; every other
tool type (``custom``, ``local_shell``, ``file_search``, ``computer_use_preview``, ``mcp``, ...) is ignored with a
logged note.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn
from core.reply import ReplySpec
from core.structured import OutputFormat
from core.tools import ToolChoice, declare_tools

log = logging.getLogger("grok2api")

SEARCH_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"})
NAMESPACE_SEPARATOR = "."
ROLES = frozenset({"user", "assistant", "system", "developer"})
MAX_INPUT_ITEMS = 10_000


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``. Fields acted on are typed; accepted and ignored: ``temperature``, ``top_p``,
    ``truncation``, ``user``, ``metadata`` (echoed), ``service_tier``, ``prompt_cache_key``,
    ``safety_identifier``, ``max_tool_calls``, ``top_logprobs``, ``stream_options``, ``include`` (nothing extra is
    ever included; ``reasoning.encrypted_content`` is accepted and no encrypted content is produced)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any] | None = None
    instructions: str | list[Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    truncation: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None

    @property
    def stores(self) -> bool:
        return self.store is not False

    def check(self) -> None:
        if self.background:
            raise InvalidRequest("background responses are not supported", param="background")
        if self.conversation is not None:
            raise InvalidRequest("`conversation` is not supported: chain with previous_response_id",
                                 param="conversation")
        if self.prompt is not None:
            raise InvalidRequest("reusable prompt templates (`prompt`) are not supported", param="prompt")

    # -- input -----------------------------------------------------------------------------------------------

    def input_items(self) -> list[dict[str, Any]]:
        """This request's input as canonical items (reasoning items dropped)."""
        if self.input is None or self.input == "":
            return []
        if isinstance(self.input, str):
            return [_message("user", [{"type": "input_text", "text": self.input}])]
        if len(self.input) > MAX_INPUT_ITEMS:
            raise InvalidRequest(f"at most {MAX_INPUT_ITEMS} input items", param="input")
        items = []
        for index, raw in enumerate(self.input):
            item = normalise_item(raw, f"input[{index}]")
            if item is not None:
                items.append(item)
        return items

    def instructions_text(self) -> str:
        if isinstance(self.instructions, str):
            return self.instructions
        if isinstance(self.instructions, list):  # instructions given as input items: their texts
            texts = []
            for index, raw in enumerate(self.instructions):
                item = normalise_item(raw, f"instructions[{index}]")
                if item is not None and item["type"] == "message":
                    texts.append(_text_of(item["content"]))
            return "\n\n".join(t for t in texts if t)
        return ""

    # -- tools and the reply spec ----------------------------------------------------------------------------

    def tool_table(self) -> ToolTable:
        table = ToolTable()
        for index, tool in enumerate(self.tools or []):
            kind = tool.get("type", "function") if isinstance(tool, dict) else None
            if kind == "function":
                table.add(tool, None, f"tools[{index}]")
            elif kind == "namespace":
                namespace = tool.get("name")
                if not isinstance(namespace, str) or not namespace:
                    raise InvalidRequest("a namespace tool needs a `name`", param=f"tools[{index}].name")
                for inner_index, inner in enumerate(tool.get("tools") or []):
                    where = f"tools[{index}].tools[{inner_index}]"
                    if isinstance(inner, dict) and inner.get("type", "function") == "function":
                        table.add(inner, namespace, where, namespace_description=tool.get("description"))
                    else:
                        table.ignored.append(f"{namespace}.{inner.get('type') if isinstance(inner, dict) else '?'}")
            elif kind in SEARCH_TOOLS:
                table.search = True
            else:
                table.ignored.append(str(kind))
        if table.ignored:
            log.info("responses: ignoring tool types grok.com cannot run: %s", ", ".join(sorted(set(table.ignored))))
        return table

    def reply_spec(self, table: ToolTable) -> ReplySpec:
        choice = self._choice(table)
        declarations = [(name, description, parameters) for name, description, parameters in table.declarations]
        tools = declare_tools(declarations, choice, param="tools") if declarations else []
        if choice is not None and choice.mode in ("required", "function") and not tools:
            raise InvalidRequest("`tool_choice` asks for a tool call but no function tools are declared",
                                 param="tool_choice")
        return ReplySpec(
            tools=tools,
            choice=choice,
            output=self.output_format(),
            max_tokens=self.max_output_tokens,
            parallel_calls=self.parallel_tool_calls is not False,
        )

    def _choice(self, table: ToolTable) -> ToolChoice | None:
        value = self.tool_choice
        if value is None:
            return None
        if isinstance(value, str):
            if value not in ("auto", "none", "required"):
                raise InvalidRequest(f"tool_choice {value!r} is not auto, none or required", param="tool_choice")
            return ToolChoice(mode=value)  # type: ignore[arg-type]
        kind = value.get("type")
        if kind == "function":
            name = value.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("tool_choice names no function", param="tool_choice.name")
            namespace = value.get("namespace")
            return ToolChoice.function(table.flat_name(name, namespace if isinstance(namespace, str) else None))
        if kind == "allowed_tools":
            mode = value.get("mode", "auto")
            return ToolChoice(mode="required" if mode == "required" else "auto")
        return None  # hosted-tool choices (web_search_preview, file_search, ...): the model decides

    def output_format(self) -> OutputFormat | None:
        fmt = (self.text or {}).get("format")
        if fmt is None:
            return None
        if not isinstance(fmt, dict):
            raise InvalidRequest("text.format must be an object", param="text.format")
        kind = fmt.get("type", "text")
        try:
            if kind == "json_schema":
                return OutputFormat(kind="json_schema", name=fmt.get("name"), schema=fmt.get("schema"),
                                    strict=bool(fmt.get("strict")), description=fmt.get("description"))
            return OutputFormat(kind=kind)
        except InvalidRequest as error:
            raise InvalidRequest(error.message.replace("response_format", "text.format"),
                                 param="text.format") from None


@dataclass
class ToolTable:
    """The request's function tools as the model sees them (flat names) and how to name them back."""

    declarations: list[tuple[str, str | None, Any]] = field(default_factory=list)
    origin: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # flat name → (name, namespace)
    search: bool = False
    ignored: list[str] = field(default_factory=list)

    def add(self, tool: dict[str, Any], namespace: str | None, where: str, *,
            namespace_description: Any = None) -> None:
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool  # chat-style nesting
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("a function tool needs a `name`", param=f"{where}.name")
        flat = self.flat_name(name, namespace)
        description = function.get("description")
        if namespace and isinstance(namespace_description, str) and namespace_description:
            description = f"({namespace}: {namespace_description}) {description or ''}".strip()
        self.declarations.append((flat, description if isinstance(description, str) else None,
                                  function.get("parameters")))
        self.origin[flat] = (name, namespace)

    @staticmethod
    def flat_name(name: str, namespace: str | None) -> str:
        return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name

    def split(self, flat: str) -> tuple[str, str | None]:
        return self.origin.get(flat, (flat, None))


# -- items ------------------------------------------------------------------------------------------------------


def _message(role: str, content: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    return {"type": "message", "id": item_id or new_id("msg"), "role": role, "status": "completed",
            "content": content}


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "\n".join(part["text"] for part in parts if part.get("type") in ("input_text", "output_text") and
                     part.get("text"))


def _parts(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    text_type = "output_text" if role == "assistant" else "input_text"
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_part(text_type, content)]
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of parts", param=f"{where}.content")
    parts = []
    for index, part in enumerate(content):
        here = f"{where}.content[{index}]"
        if isinstance(part, str):
            parts.append(_text_part(text_type, part))
            continue
        if not isinstance(part, dict):
            raise InvalidRequest("a content part must be an object", param=here)
        kind = part.get("type")
        if kind in (None, "input_text", "output_text", "text", "summary_text") and isinstance(part.get("text"), str):
            parts.append(_text_part(text_type, part["text"]))
        elif kind in ("input_image", "image_url") or (kind is None and ("image_url" in part or "file_id" in part)):
            url = part.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if part.get("file_id") and not url:
                raise InvalidRequest("input_image by file_id is not supported: send image_url (a data: URI or an "
                                     "http(s) URL)", param=f"{here}.file_id")
            if not isinstance(url, str) or not url:
                raise InvalidRequest("input_image needs an image_url", param=f"{here}.image_url")
            parts.append({"type": "input_image", "image_url": url, "detail": part.get("detail") or "auto"})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(_text_part(text_type, part["refusal"]))
        elif kind == "input_file":
            raise InvalidRequest("input_file parts are not supported", param=f"{here}.type")
        else:
            raise InvalidRequest(f"content part type `{kind}` is not supported (use input_text or input_image)",
                                 param=f"{here}.type")
    return parts


def _text_part(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text, "annotations": []} if kind == "output_text" else {"type": kind, "text": text}


def _output_text(output: Any) -> str:
    """``function_call_output.output``: a string, or a list of parts (texts joined; images noted)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for part in output:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") == "input_image":
                texts.append("[image]")
        return "\n".join(texts)
    if output is None:
        return ""
    return json.dumps(output, ensure_ascii=False)


def normalise_item(raw: Any, where: str) -> dict[str, Any] | None:
    """One input item as a canonical item; None for items that carry nothing upstream (reasoning, ...)."""
    if isinstance(raw, str):
        return _message("user", [{"type": "input_text", "text": raw}])
    if not isinstance(raw, dict):
        raise InvalidRequest("an input item must be an object", param=where)
    kind = raw.get("type")
    if kind is None and "role" in raw:
        kind = "message"
    if kind == "message":
        role = raw.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"message role {role!r} is not user, assistant, system or developer",
                                 param=f"{where}.role")
        item_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
        return _message(role, _parts(raw.get("content"), role, where), item_id)
    if kind == "function_call":
        call_id = raw.get("call_id") or raw.get("id")
        name = raw.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("a function_call item needs a call_id", param=f"{where}.call_id")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("a function_call item needs a name", param=f"{where}.name")
        arguments = raw.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        item = {"type": "function_call", "id": raw.get("id") if str(raw.get("id") or "").startswith("fc") else
                new_id("fc"), "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}
        if isinstance(raw.get("namespace"), str) and raw["namespace"]:
            item["namespace"] = raw["namespace"]
        return item
    if kind in ("function_call_output", "custom_tool_call_output"):
        call_id = raw.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"a {kind} item needs a call_id", param=f"{where}.call_id")
        return {"type": "function_call_output", "id": new_id("fco"), "call_id": call_id,
                "output": _output_text(raw.get("output")), "status": "completed"}
    if kind in ("reasoning", "item_reference", "compaction", "web_search_call", "additional_tools"):
        return None  # nothing grok.com can use: reasoning is its own, references/search results not replayable
    if kind == "custom_tool_call":
        return {"type": "function_call", "id": new_id("fc"), "call_id": str(raw.get("call_id") or new_id("call")),
                "name": str(raw.get("name") or "custom"), "arguments": json.dumps({"input": raw.get("input")}),
                "status": "completed"}
    raise InvalidRequest(f"input item type `{kind}` is not supported", param=f"{where}.type")


def history_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items worth carrying into the next turn of a chain: messages, calls and results (not reasoning)."""
    return [item for item in items if item.get("type") in ("message", "function_call", "function_call_output")]


def to_turns(items: list[dict[str, Any]], table: ToolTable, instructions: str = "") -> list[Turn]:
    """Canonical items → core turns. Calls following an assistant message join its turn; results are tool
    turns named from the call they answer."""
    turns: list[Turn] = [Turn(role="system", text=instructions)] if instructions else []
    names: dict[str, str] = {}
    for item in items:
        kind = item["type"]
        if kind == "message":
            parts = item["content"]
            turn = Turn(role=item["role"], text=_text_of(parts))
            turn.images = [part["image_url"] for part in parts if part.get("type") == "input_image"]
            turns.append(turn)
        elif kind == "function_call":
            flat = table.flat_name(item["name"], item.get("namespace"))
            names[item["call_id"]] = flat
            call = ToolCall(id=item["call_id"], name=flat, arguments=item["arguments"])
            last = turns[-1] if turns else None
            if last is not None and last.role == "assistant":
                last.tool_calls.append(call)
            else:
                turns.append(Turn(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            turns.append(Turn(role="tool", text=item["output"], tool_call_id=item["call_id"],
                              name=names.get(item["call_id"])))
    return turns


def input_text_for_count(items: list[dict[str, Any]], instructions: str) -> str:
    """Everything a request would show the model, as text (for the token estimate)."""
    pieces = [instructions] if instructions else []
    for item in items:
        if item["type"] == "message":
            pieces.append(_text_of(item["content"]))
        elif item["type"] == "function_call":
            pieces.append(f"{item['name']} {item['arguments']}")
        elif item["type"] == "function_call_output":
            pieces.append(item["output"])
    return "\n\n".join(pieces)
