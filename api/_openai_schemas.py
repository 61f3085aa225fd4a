"""OpenAI Chat Completions request bodies (validated at the edge) and their conversion to core ``Turn``s."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn


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


class ChatCompletionRequest(BaseModel):
    """Fields we act on are typed; the rest of OpenAI's surface is accepted and ignored (extra="allow")."""

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

    def check(self) -> None:
        if self.n not in (None, 1):
            raise InvalidRequest("only n=1 is supported", param="n")

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
