"""Anthropic Messages request bodies (validated at the edge) and their conversion to core ``Turn``s and a
``ReplySpec``.

Content blocks are read by hand rather than as a pydantic union, so an unsupported block is one clear 400 naming
its place (``messages[2].content[1].type``) instead of a schema dump. ``cache_control`` is accepted everywhere and
ignored (grok.com has no prompt cache).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn
from core.reply import MAX_STOP_CHARS, MAX_STOP_SEQUENCES, ReplySpec
from core.structured import OutputFormat
from core.tools import ToolChoice, declare_tools

# Accepted and ignored: sampling knobs grok.com has no equivalent for, and Anthropic platform features.
IGNORED_FIELDS = (
    "temperature", "top_p", "top_k", "metadata", "service_tier", "context_management", "container",
    "inference_geo", "output_config.effort",
)
# Server tools (``type`` set) mapped onto Grok's own web search, which is on for every request.
SEARCH_TOOL_PREFIXES = ("web_search_",)


def _text_of(value: Any, param: str) -> str:
    """A ``system`` value or a tool result's ``content``: a string or a list of text blocks, joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"`{param}` must be a string or a list of text blocks", param=param)
    texts = []
    for index, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"`{param}[{index}]` must be a text block ({{\"type\": \"text\", \"text\": ...}})",
                                 param=f"{param}[{index}]")
        texts.append(block["text"])
    return "\n".join(texts)


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"`{param}.source` is required for an image block", param=f"{param}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type, payload = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type.startswith("image/"):
            raise InvalidRequest(f"`{param}.source.media_type` must be an image type such as image/png",
                                 param=f"{param}.source.media_type")
        if not isinstance(payload, str) or not payload:
            raise InvalidRequest(f"`{param}.source.data` must be base64 image data", param=f"{param}.source.data")
        return f"data:{media_type};base64,{payload}"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"`{param}.source.url` is required", param=f"{param}.source.url")
        return url
    raise InvalidRequest(f"image source type `{kind}` is not supported (use base64 or url)",
                         param=f"{param}.source.type")


def _unsupported(kind: Any, param: str, allowed: str) -> InvalidRequest:
    return InvalidRequest(f"content block type `{kind}` is not supported here (use {allowed})", param=f"{param}.type")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class ToolChoiceIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None  # accepted; grok.com decides how long it thinks


class CountTokensRequest(BaseModel):
    """``/v1/messages/count_tokens``: a Messages request without ``max_tokens``. Fields we do not act on are
    accepted and ignored (``IGNORED_FIELDS``, and anything new: extra="allow")."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingConfig | None = None
    output_format: dict[str, Any] | None = None  # structured outputs, beta form
    output_config: dict[str, Any] | None = None  # its GA form: {"format": {...}} (``effort`` etc. ignored)

    # -- reply spec -------------------------------------------------------------------------------------------

    @property
    def shows_thinking(self) -> bool:
        """Reasoning becomes ``thinking`` blocks only when the client asked for thinking (``enabled`` or
        ``adaptive``), as Anthropic does; clients that read ``content[0].text`` keep working otherwise."""
        return self.thinking is not None and self.thinking.type != "disabled"

    def tool_declarations(self) -> list[tuple[str, str | None, Any]]:
        declarations = []
        for index, tool in enumerate(self.tools or []):
            param = f"tools[{index}]"
            kind = tool.get("type")
            if kind not in (None, "custom"):
                if isinstance(kind, str) and kind.startswith(SEARCH_TOOL_PREFIXES):
                    continue  # Grok searches the web on its own
                raise InvalidRequest(
                    f"tool type `{kind}` is not supported: declare it as a custom tool "
                    "(name, description, input_schema); web_search is served by Grok's own search",
                    param=f"{param}.type",
                )
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"`{param}.name` is required", param=f"{param}.name")
            description = tool.get("description")
            if description is not None and not isinstance(description, str):
                raise InvalidRequest(f"`{param}.description` must be a string", param=f"{param}.description")
            if "input_schema" not in tool:
                raise InvalidRequest(f"`{param}.input_schema` is required", param=f"{param}.input_schema")
            declarations.append((name, description, tool["input_schema"]))
        return declarations

    def reply_spec(self, max_tokens: int | None = None, stop_sequences: list[str] | None = None) -> ReplySpec:
        if (self.model_extra or {}).get("mcp_servers"):
            raise InvalidRequest("`mcp_servers` (the MCP connector) is not supported: declare the tools instead",
                                 param="mcp_servers")
        declarations = self.tool_declarations()
        choice = self._choice()
        tools = declare_tools(declarations, choice, param="tools") if declarations else []
        if choice is not None and choice.mode in ("required", "function") and not tools:
            raise InvalidRequest(f"`tool_choice` {self.tool_choice.type!r} needs at least one tool",  # type: ignore[union-attr]
                                 param="tool_choice")
        parallel = not (self.tool_choice is not None and self.tool_choice.disable_parallel_tool_use)
        return ReplySpec(tools=tools, choice=choice, output=self._output(), stop=_stops(stop_sequences),
                         max_tokens=max_tokens, parallel_calls=parallel)

    def _choice(self) -> ToolChoice | None:
        value = self.tool_choice
        if value is None:
            return None
        if value.type == "tool":
            if not value.name:
                raise InvalidRequest("`tool_choice.name` is required for type `tool`", param="tool_choice.name")
            return ToolChoice.function(value.name)
        return ToolChoice(mode={"auto": "auto", "any": "required", "none": "none"}[value.type])  # type: ignore[arg-type]

    def _output(self) -> OutputFormat | None:
        fmt = self.output_format
        param = "output_format"
        if fmt is None and self.output_config is not None:
            fmt, param = self.output_config.get("format"), "output_config.format"
        if fmt is None:
            return None
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise InvalidRequest(f"`{param}` must be {{\"type\": \"json_schema\", \"schema\": {{...}}}}", param=param)
        try:
            # Anthropic guarantees schema-valid output, hence strict: an answer that does not fit is an error.
            return OutputFormat(kind="json_schema", schema=fmt.get("schema"), strict=True)
        except InvalidRequest as error:
            raise InvalidRequest(error.message, param=param) from None

    # -- history ----------------------------------------------------------------------------------------------

    def to_turns(self) -> list[Turn]:
        """``system`` and ``messages`` as core turns: tool_use → an assistant turn's tool calls, tool_result → a
        ``tool`` turn (``is_error`` kept), thinking blocks dropped. A tool_result must answer an earlier tool_use,
        and a tool_use must name a declared tool."""
        turns: list[Turn] = []
        system = _text_of(self.system, "system")
        if system.strip():
            turns.append(Turn(role="system", text=system))
        declared = {name for name, _, _ in self.tool_declarations()}
        calls: dict[str, str] = {}  # tool_use id -> tool name, from earlier assistant messages
        for index, message in enumerate(self.messages):
            param = f"messages[{index}]"
            if isinstance(message.content, str):
                turns.append(Turn(role=message.role, text=message.content))
                continue
            if message.role == "assistant":
                turns.append(self._assistant(message.content, param, declared, calls))
            elif message.role == "system":
                turns.append(Turn(role="system", text=_text_of(message.content, f"{param}.content")))
            else:
                turns.extend(self._user(message.content, param, calls))
        return turns

    def _assistant(self, blocks: list[dict[str, Any]], param: str, declared: set[str],
                   calls: dict[str, str]) -> Turn:
        turn = Turn(role="assistant")
        texts = []
        for index, block in enumerate(blocks):
            where = f"{param}.content[{index}]"
            kind = block.get("type")
            if kind == "text":
                texts.append(_str(block, "text", where))
            elif kind in ("thinking", "redacted_thinking"):
                continue  # our own reasoning echoed back: upstream keeps its own context
            elif kind == "tool_use":
                call_id, name = _str(block, "id", where), _str(block, "name", where)
                if not declared:
                    raise InvalidRequest("requests that include tool_use or tool_result blocks must define tools",
                                         param="tools")
                if name not in declared:
                    raise InvalidRequest(f"`{where}` calls tool `{name}`, which is not among the tools",
                                         param=f"{where}.name")
                arguments = block.get("input", {})
                if not isinstance(arguments, dict):
                    raise InvalidRequest(f"`{where}.input` must be an object", param=f"{where}.input")
                calls[call_id] = name
                turn.tool_calls.append(ToolCall(id=call_id, name=name,
                                                arguments=json.dumps(arguments, ensure_ascii=False)))
            else:
                raise _unsupported(kind, where, "text, tool_use or thinking")
        turn.text = "\n".join(texts)
        return turn

    def _user(self, blocks: list[dict[str, Any]], param: str, calls: dict[str, str]) -> list[Turn]:
        turns: list[Turn] = []
        current: Turn | None = None  # text and images between tool results
        for index, block in enumerate(blocks):
            where = f"{param}.content[{index}]"
            kind = block.get("type")
            if kind == "tool_result":
                current = None
                call_id = _str(block, "tool_use_id", where)
                if call_id not in calls:
                    raise InvalidRequest(f"`{where}.tool_use_id` {call_id!r} answers no earlier tool_use block",
                                         param=f"{where}.tool_use_id")
                result = Turn(role="tool", tool_call_id=call_id, name=calls[call_id],
                              is_error=bool(block.get("is_error")))
                self._result_content(result, block.get("content"), f"{where}.content")
                turns.append(result)
                continue
            if current is None:
                current = Turn(role="user")
                turns.append(current)
            if kind == "text":
                current.text = "\n".join(filter(None, [current.text, _str(block, "text", where)]))
            elif kind == "image":
                current.images.append(_image_url(block, where))
            else:
                raise _unsupported(kind, where, "text, image or tool_result")
        return turns

    @staticmethod
    def _result_content(turn: Turn, content: Any, param: str) -> None:
        if content is None or isinstance(content, str):
            turn.text = content or ""
            return
        if not isinstance(content, list):
            raise InvalidRequest(f"`{param}` must be a string or a list of blocks", param=param)
        texts = []
        for index, block in enumerate(content):
            where = f"{param}[{index}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(_str(block, "text", where))
            elif kind == "image":
                turn.images.append(_image_url(block, where))
            else:
                raise _unsupported(kind, where, "text or image")
        turn.text = "\n".join(texts)


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None

    def spec(self) -> ReplySpec:
        return self.reply_spec(self.max_tokens, self.stop_sequences)


def _str(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"`{where}.{key}` is required (a string)", param=f"{where}.{key}")
    return value


def _stops(stops: list[str] | None) -> tuple[str, ...]:
    stops = list(stops or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences", param="stop_sequences")
    if any(len(stop) > MAX_STOP_CHARS for stop in stops):
        raise InvalidRequest(f"a stop sequence is longer than {MAX_STOP_CHARS} characters", param="stop_sequences")
    return tuple(stop for stop in stops if stop)
