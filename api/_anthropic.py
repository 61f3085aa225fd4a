"""Anthropic-compatible routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

A thin adapter over the reply core, like the OpenAI chat route: body → ``reply_spec`` → ``compose`` → one upstream
answer → ``AnswerRun`` core events → Anthropic content blocks. Streamed and whole answers share one block builder
(``Blocks``), so both always agree. ``?beta=true`` (Claude Code) and the ``anthropic-version`` /
``anthropic-beta`` headers are accepted; errors on these paths render in Anthropic's shape (``api._errors``).

Content order: thinking (reasoning, with an opaque ``signature``) first, then text, then ``tool_use`` blocks; a
new block starts whenever the kind changes. Tool calls arrive whole from the core, so a ``tool_use`` block's input
is sent as one ``input_json_delta``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api._access import client_auth
from api._anthropic_schemas import CountTokensRequest, MessagesRequest
from api._deps import gateway
from api._errors import anthropic_error_body
from api._media import chat_media
from api._sse import EventStream, settled
from core.answer import estimate_tokens
from core.answer_run import AnswerRun, Heartbeat, repair_key, repair_turn
from core.catalog import CREATED, ModelSpec
from core.chat import ChatRequest
from core.compose import compose
from core.errors import GatewayError, InvalidRequest
from core.gateway import Gateway
from core.media.chat import ChatMedia
from core.reply import Finish, ReasoningDelta, ReplyEvent, TextDelta, ToolCallEvent
from core.settings import Settings

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1", dependencies=[Depends(client_auth)])

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
STOP_REASONS = {"tool_calls": "tool_use", "length": "max_tokens", "stop": "end_turn"}


def sse(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode(payload).encode() + b"\n\n"


def sse_error(error: GatewayError) -> bytes:
    """Anthropic's ``error`` event, ending a stream that already started."""
    return sse("error", anthropic_error_body(error))


def signature(thinking: str) -> str:
    """An opaque signature for a thinking block. Clients echo it back with the block; the gateway drops thinking
    from the history it sends upstream, so it is never checked: it only has to look like one."""
    return base64.b64encode(hashlib.sha256(b"grok2api-thinking\0" + thinking.encode()).digest()).decode()


def tool_use_id(call_id: str) -> str:
    """The core's ``call_<hex>`` as Anthropic's ``toolu_<hex>`` (history echoes it back as is)."""
    return "toolu_" + call_id.removeprefix("call_")


def resolve_model(gw: Gateway, name: str) -> ModelSpec:
    return gw.catalog.resolve(name, claude_model=gw.settings.claude_model)


@router.post("/messages", response_model=None)
async def messages(
    body: MessagesRequest, gw: Gateway = Depends(gateway), media: ChatMedia = Depends(chat_media)
) -> JSONResponse | EventStream:
    model = resolve_model(gw, body.model)
    spec = body.spec()
    prompt = compose(body.to_turns(), spec)
    if not prompt.message:
        raise InvalidRequest("messages contain no text or images", param="messages")
    request = ChatRequest(model=model, prompt=prompt, requested_model=body.model, sticky_key=repair_key(spec))
    stream = await gw.chat.open(request)
    run = AnswerRun(_settings(gw.settings, body.shows_thinking), stream, spec, streaming=body.stream,
                    prompt_tokens=estimate_tokens(prompt.message), repair=repair_turn(gw, request), media=media)
    reply = Reply(gw, body, run)
    if body.stream:
        return EventStream(reply.sse())
    return JSONResponse(await reply.collect())


@router.post("/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, gw: Gateway = Depends(gateway)) -> dict[str, int]:
    """The same estimate ``usage.input_tokens`` reports, over the same composed upstream message; no upstream
    call, no store access beyond authentication."""
    resolve_model(gw, body.model)
    prompt = compose(body.to_turns(), body.reply_spec())
    return {"input_tokens": estimate_tokens(prompt.message)}


def _settings(settings: Settings, shows_thinking: bool) -> Settings:
    """Reasoning as thinking blocks (``separate``) when the client asked for thinking and the operator does not
    hide it; hidden otherwise. (``inline`` is an OpenAI-client workaround: Anthropic has real thinking blocks.)"""
    wanted = "separate" if shows_thinking and settings.thinking_output != "hidden" else "hidden"
    if settings.thinking_output == wanted:
        return settings
    return settings.model_copy(update={"thinking_output": wanted})


class Blocks:
    """Core events → Anthropic content blocks, as stream events (``feed``/``close``) and as the final list
    (``content``)."""

    def __init__(self) -> None:
        self.content: list[dict[str, Any]] = []
        self._open: str | None = None  # type of the block being streamed
        self._thinking: list[str] = []

    @property
    def index(self) -> int:
        return len(self.content) - 1

    def feed(self, event: ReplyEvent) -> list[bytes]:
        if isinstance(event, ReasoningDelta):
            out = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._thinking.append(event.text)
            self.content[-1]["thinking"] += event.text
            out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
            return out
        if isinstance(event, TextDelta):
            out = self._start("text", {"type": "text", "text": ""})
            self.content[-1]["text"] += event.text
            out.append(self._delta({"type": "text_delta", "text": event.text}))
            return out
        assert isinstance(event, ToolCallEvent)
        call = event.call
        out = self.close()
        self.content.append({"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": {}})
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": self.content[-1]}))  # encoded now
        self.content[-1]["input"] = call.arguments
        out.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments_json}))
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        return out

    def close(self) -> list[bytes]:
        """End the block being streamed (a thinking block gets its signature first)."""
        out: list[bytes] = []
        if self._open == "thinking":
            sig = signature("".join(self._thinking))
            self.content[-1]["signature"] = sig
            out.append(self._delta({"type": "signature_delta", "signature": sig}))
            self._thinking = []
        if self._open is not None:
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": self.index}))
            self._open = None
        return out

    def _start(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        if self._open == kind:
            return []
        out = self.close()
        self.content.append(block)
        self._open = kind
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": dict(block)}))
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})


class Reply:
    """Renders one answer's core events as an Anthropic message, streamed or whole."""

    def __init__(self, gw: Gateway, body: MessagesRequest, run: AnswerRun) -> None:
        self.gw = gw
        self.body = body
        self.run = run
        self.id = "msg_" + secrets.token_hex(12)
        self.blocks = Blocks()

    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.run.prompt_tokens, "output_tokens": self.run.completion_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    @staticmethod
    def stop(finish: Finish) -> tuple[str, str | None]:
        if finish.stop_sequence is not None and finish.reason == "stop":
            return "stop_sequence", finish.stop_sequence
        return STOP_REASONS[finish.reason], None

    def message(self, content: list[dict[str, Any]], finish: Finish | None) -> dict[str, Any]:
        stop_reason, stop_sequence = self.stop(finish) if finish is not None else (None, None)
        return {
            "id": self.id, "type": "message", "role": "assistant", "model": self.body.model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": self.usage(),
        }

    async def collect(self) -> dict[str, Any]:
        finish = await self.run.collect(self.blocks.feed)
        self.blocks.close()
        return self.message(self.blocks.content, finish)

    async def sse(self) -> AsyncIterator[bytes]:
        async for frame in settled(self.run, self._frames(), sse_error):
            yield frame

    async def _frames(self) -> AsyncIterator[bytes]:
        start = self.message([], None)
        start["usage"] = {**start["usage"], "output_tokens": 0}
        yield sse("message_start", {"type": "message_start", "message": start})
        async for event in self.run.events(self.gw.settings.heartbeat_interval):
            if isinstance(event, Heartbeat):
                yield PING
            elif isinstance(event, Finish):
                for chunk in self.blocks.close():
                    yield chunk
                stop_reason, stop_sequence = self.stop(event)
                yield sse("message_delta", {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": self.run.completion_tokens},
                })
                yield sse("message_stop", {"type": "message_stop"})
            else:
                for chunk in self.blocks.feed(event):
                    yield chunk


# -- model discovery in Anthropic's shape (for GET /v1/models when called with `anthropic-version`) --------------

def model_info(model_id: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    created = datetime.fromtimestamp(CREATED, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": created}


def model_list(gw: Gateway) -> dict[str, Any]:
    """``GET /v1/models`` as Anthropic's SDK reads it (``models.list()``): one page with everything."""
    ids = gw.catalog.public_ids()
    return {"data": [model_info(i) for i in ids], "has_more": False,
            "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}
