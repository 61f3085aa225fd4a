"""OpenAI Chat Completions request bodies (validated at the edge) and their conversion to core ``Turn``s."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn
from core.reply import MAX_STOP_CHARS, MAX_STOP_SEQUENCES, ReplySpec
from core.structured import OutputFormat
from core.tools import ToolChoice, declare_tools


def _stops(value: str | list[str] | None) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else list(value or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences", param="stop")
    if any(len(stop) > MAX_STOP_CHARS for stop in stops):
        raise InvalidRequest(f"a stop sequence is longer than {MAX_STOP_CHARS} characters", param="stop")
    return tuple(stop for stop in stops if stop)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    url: str = Field(min_length=1)
    detail: str | None = None


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _bare_string(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


class OtherPart(BaseModel):
    """Any other part type: rejected with a clear message instead of a schema dump."""

    model_config = ConfigDict(extra="allow")
    type: str


ContentPart = Annotated[TextPart | ImagePart | OtherPart, Field(union_mode="left_to_right")]


class FunctionCall(BaseModel):
    name: str
    arguments: str = ""


class ToolCallIn(BaseModel):
    id: str = ""
    type: str = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class FunctionDef(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    type: str = "function"
    function: FunctionDef | None = None


class NamedFunction(BaseModel):
    name: str = Field(min_length=1)


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class ChatCompletionRequest(BaseModel):
    """Fields we act on are typed; sampling knobs grok.com has no equivalent for (temperature, top_p, seed,
    penalties...) are accepted and ignored (extra="allow"; listed in the README's limits)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    user: str | None = None
    web_search_options: dict[str, Any] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDef] | None = None  # the legacy form of tools
    function_call: Literal["auto", "none"] | NamedFunction | None = None
    response_format: dict[str, Any] | None = None
    stop: str | list[str] | None = None

    def check(self) -> None:
        if self.n not in (None, 1):
            raise InvalidRequest("only n=1 is supported", param="n")
        if self.tools and self.functions:
            raise InvalidRequest("send `tools` or the legacy `functions`, not both", param="functions")
        extra = self.model_extra or {}
        if extra.get("logprobs") or extra.get("top_logprobs"):
            raise InvalidRequest("logprobs are not available: grok.com does not expose token probabilities",
                                 param="logprobs")
        modalities = extra.get("modalities")
        if extra.get("audio") or (isinstance(modalities, list) and any(m != "text" for m in modalities)):
            raise InvalidRequest("only text output is available (no audio)", param="modalities")
        if extra.get("prediction"):
            raise InvalidRequest("predicted outputs are not available", param="prediction")

    @property
    def uses_functions(self) -> bool:
        return bool(self.functions) and not self.tools

    def reply_spec(self) -> ReplySpec:
        """What this request asks of the answer: tools and the tool choice, output format, stop, token limit."""
        declarations: list[tuple[str, str | None, Any]] = []
        param = "tools"
        if self.tools:
            for index, tool in enumerate(self.tools):
                if tool.type != "function" or tool.function is None:
                    raise InvalidRequest(
                        f"tool type `{tool.type}` is not supported (only `function` tools)", param=f"tools[{index}].type"
                    )
                declarations.append((tool.function.name, tool.function.description, tool.function.parameters))
        elif self.functions:
            param = "functions"
            declarations = [(f.name, f.description, f.parameters) for f in self.functions]
        choice = self._choice()
        tools = declare_tools(declarations, choice, param=param) if declarations else []
        if choice is not None and choice.mode in ("required", "function") and not tools:
            raise InvalidRequest("`tool_choice` asks for a tool call but no tools are declared", param="tool_choice")
        return ReplySpec(
            tools=tools,
            choice=choice,
            output=OutputFormat.from_openai(self.response_format) if self.response_format else None,
            stop=_stops(self.stop),
            max_tokens=self.max_completion_tokens or self.max_tokens,
            parallel_calls=self.parallel_tool_calls is not False and not self.uses_functions,
        )

    def _choice(self) -> ToolChoice | None:
        value = self.tool_choice if self.tools or self.tool_choice is not None else self.function_call
        if value is None:
            return None
        if isinstance(value, str):
            return ToolChoice(mode=value)  # type: ignore[arg-type]
        name = value.function.name if isinstance(value, NamedToolChoice) else value.name
        return ToolChoice.function(name)

    def to_turns(self) -> list[Turn]:
        turns = []
        for index, message in enumerate(self.messages):
            role = "tool" if message.role == "function" else message.role
            turn = Turn(role=role, name=message.name, tool_call_id=message.tool_call_id)
            if isinstance(message.content, str):
                turn.text = message.content
            elif isinstance(message.content, list):
                texts = []
                for part_index, part in enumerate(message.content):
                    if isinstance(part, TextPart):
                        texts.append(part.text)
                    elif isinstance(part, ImagePart):
                        turn.images.append(part.image_url.url)
                    else:
                        raise InvalidRequest(
                            f"content part type `{part.type}` is not supported (use text or image_url)",
                            param=f"messages[{index}].content[{part_index}].type",
                        )
                turn.text = "\n".join(texts)
            for call in message.tool_calls or []:
                turn.tool_calls.append(ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments))
            turns.append(turn)
        return turns
