"""Legacy OpenAI ``/v1/completions``: one prompt string answered as a ``text_completion``, streamed or whole.

The same core as chat: the prompt is one user turn (sent upstream as it is), ``stop`` and ``max_tokens`` are
enforced by the ``ReplyShaper``. Reasoning has no place in this format and is not shown. Parameters that would
change the shape of the answer are refused (``echo``, ``suffix``, ``logprobs``, ``best_of`` > 1, ``n`` > 1,
token-array prompts, several prompts); sampling knobs (``temperature``, ``top_p``, penalties, ``logit_bias``,
``seed``, ``user``) are accepted and ignored.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api._access import client_auth
from api._deps import gateway
from api._errors import sse_error
from api._media import chat_media
from api._openai_schemas import StreamOptions, _stops
from api._responses import upstream_responses
from api._sse import HEARTBEAT, EventStream, data, settled
from core.answer import estimate_tokens
from core.answer_run import AnswerRun, Heartbeat
from core.chat import ChatRequest
from core.compose import compose
from core.errors import InvalidRequest
from core.gateway import Gateway
from core.media.chat import ChatMedia
from core.prompt import Turn
from core.reply import Finish, ReplySpec, TextDelta

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1", dependencies=[Depends(client_auth)])


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: Any = None
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1)
    best_of: int | None = Field(None, ge=1)
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    user: str | None = None

    def prompt_text(self) -> str:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("send one prompt (a string, or a list of one string)", param="prompt")
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string: token-array prompts are not supported", param="prompt")
        if not prompt.strip():
            raise InvalidRequest("prompt is empty", param="prompt")
        return prompt

    def check(self) -> None:
        if self.n not in (None, 1):
            raise InvalidRequest("only n=1 is supported", param="n")
        if self.best_of not in (None, 1):
            raise InvalidRequest("only best_of=1 is supported", param="best_of")
        if self.echo:
            raise InvalidRequest("echo is not supported", param="echo")
        if self.suffix:
            raise InvalidRequest("suffix (insertion) is not supported", param="suffix")
        if self.logprobs is not None:
            raise InvalidRequest("logprobs are not available from grok.com", param="logprobs")


@router.post("/completions", response_model=None, responses=upstream_responses("when `stream` is true"))
async def completions(
    body: CompletionRequest, gw: Gateway = Depends(gateway), media: ChatMedia = Depends(chat_media)
) -> JSONResponse | EventStream:
    body.check()
    text = body.prompt_text()
    model = gw.catalog.resolve(body.model)
    spec = ReplySpec(stop=_stops(body.stop), max_tokens=body.max_tokens)
    prompt = compose([Turn(role="user", text=text)], spec)
    if not prompt.message:
        raise InvalidRequest("prompt contains no text", param="prompt")
    stream = await gw.chat.open(ChatRequest(model=model, prompt=prompt, requested_model=body.model))
    run = AnswerRun(gw.settings, stream, spec, streaming=body.stream, prompt_tokens=estimate_tokens(prompt.message),
                    media=media)
    completion = TextCompletion(gw, body, run)
    if body.stream:
        return EventStream(completion.sse())
    return JSONResponse(await completion.collect())


class TextCompletion:
    def __init__(self, gw: Gateway, body: CompletionRequest, run: AnswerRun) -> None:
        self.gw = gw
        self.body = body
        self.run = run
        self.id = f"cmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def usage(self) -> dict[str, Any]:
        run = self.run
        completion = run.completion_tokens
        return {"prompt_tokens": run.prompt_tokens, "completion_tokens": completion,
                "total_tokens": run.prompt_tokens + completion}

    def envelope(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": self.run.answer.model_hash,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
        }

    async def collect(self) -> dict[str, Any]:
        finish = await self.run.collect()
        return {**self.envelope(self.run.shaper.content, finish.reason), "usage": self.usage()}

    def chunk(self, text: str, finish_reason: str | None = None) -> bytes:
        return data(json.dumps(self.envelope(text, finish_reason), ensure_ascii=False).encode())

    async def sse(self) -> AsyncIterator[bytes]:
        async for frame in settled(self.run, self._frames(), sse_error):
            yield frame
        yield data(b"[DONE]")

    async def _frames(self) -> AsyncIterator[bytes]:
        async for event in self.run.events(self.gw.settings.heartbeat_interval):
            if isinstance(event, Heartbeat):
                yield HEARTBEAT
            elif isinstance(event, Finish):
                yield self.chunk("", finish_reason=event.reason)
            elif isinstance(event, TextDelta):
                yield self.chunk(event.text)
        if self.body.stream_options is not None and self.body.stream_options.include_usage:
            usage = {**self.envelope("", None), "choices": [], "usage": self.usage()}
            yield data(json.dumps(usage).encode())
