"""OpenAI-compatible routes: ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api._access import client_auth
from api._chat_video import chat_video
from api._deps import gateway
from api._errors import sse_error
from api._media import chat_media
from api._openai_schemas import ChatCompletionRequest
from api._sse import HEARTBEAT, EventStream, data, settled
from core.answer import Answer, estimate_tokens
from core.answer_run import AnswerRun, Heartbeat, repair_key, repair_turn
from core.catalog import CREATED, ModelSpec
from core.chat import ChatRequest
from core.compose import compose
from core.errors import InvalidRequest
from core.gateway import Gateway
from core.media.chat import ChatMedia
from core.reply import Finish, ReasoningDelta, ReplyEvent, TextDelta

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1", dependencies=[Depends(client_auth)])

# json.dumps(x, ensure_ascii=False) builds a new JSONEncoder on every call; one shared encoder gives the same text.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def model_card(model_id: str, spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": CREATED,
        "owned_by": "xai",
        "description": spec.description,
        "mode": spec.mode,
        "min_tier": spec.min_tier,
        "capabilities": {"reasoning": spec.reasoning, "search": spec.search, "image_input": spec.image_input},
    }


@router.get("/models")
async def list_models(gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    cards = [model_card(spec.id, spec) for spec in gw.catalog]
    cards += [model_card(alias, gw.catalog.resolve(alias)) for alias in gw.catalog.operator_aliases]
    cards += [
        {"id": spec.id, "object": "model", "created": CREATED, "owned_by": "xai", "description": spec.description,
         "mode": spec.quota, "min_tier": spec.min_tier, "capabilities": {"images": spec.operation}}
        for spec in gw.catalog.image_models.values()
    ]
    cards += [
        {"id": spec.id, "object": "model", "created": CREATED, "owned_by": "xai",
         "description": getattr(spec, "description", ""), "capabilities": {"videos": True}}
        for spec in gw.catalog.video_models.values()
    ]
    cards += [  # operator aliases of image and video models (MODEL_ALIASES)
        {"id": alias, "object": "model", "created": CREATED, "owned_by": "xai", "alias_of": target}
        for alias, target in gw.catalog.media_aliases.items()
    ]
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return model_card(model_id, gw.catalog.resolve(model_id))


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, gw: Gateway = Depends(gateway), media: ChatMedia = Depends(chat_media)
) -> JSONResponse | EventStream:
    body.check()
    video = gw.catalog.find_video(body.model)
    if video is not None:  # a video model answers with a link to the stored clip (api/_chat_video.py)
        return await chat_video(body, request, gw, video)
    model = gw.catalog.resolve(body.model)
    spec = body.reply_spec()
    prompt = compose(body.to_turns(), spec)
    if not prompt.message:
        raise InvalidRequest("messages contain no text or images", param="messages")
    request = ChatRequest(model=model, prompt=prompt, requested_model=body.model, sticky_key=repair_key(spec))
    stream = await gw.chat.open(request)
    run = AnswerRun(gw.settings, stream, spec, streaming=body.stream, prompt_tokens=estimate_tokens(prompt.message),
                    repair=repair_turn(gw, request), media=media)
    completion = Completion(gw, body, run)
    if body.stream:
        return EventStream(completion.sse())
    return JSONResponse(await completion.collect())


class Completion:
    """Renders one answer's core events as an OpenAI chat completion, streamed or whole."""

    def __init__(self, gw: Gateway, body: ChatCompletionRequest, run: AnswerRun) -> None:
        self.gw = gw
        self.body = body
        self.run = run
        self.legacy_functions = body.uses_functions  # answer with function_call, as the request was written
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self._envelope: tuple[str | None, str] | None = None  # (model hash, encoded chunk head) for chunk()

    # -- shared -----------------------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        run = self.run
        completion = run.completion_tokens
        return {
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": run.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": run.reasoning_tokens},
        }

    def finish_reason(self, finish: Finish) -> str:
        if finish.reason == "tool_calls" and self.legacy_functions:
            return "function_call"
        return finish.reason

    # -- non-stream -------------------------------------------------------------------------------------------

    async def collect(self) -> dict[str, Any]:
        finish = await self.run.collect()
        shaper, answer = self.run.shaper, self.run.answer
        content = shaper.content
        message: dict[str, Any] = {
            "role": "assistant", "content": content if content or not shaper.calls else None, "refusal": None,
        }
        if shaper.reasoning and self.gw.settings.thinking_output == "separate":
            message["reasoning_content"] = "".join(shaper.reasoning)
        if shaper.calls and self.legacy_functions:
            first = shaper.calls[0]
            message["function_call"] = {"name": first.name, "arguments": first.arguments_json}
        elif shaper.calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
                for call in shaper.calls
            ]
        annotations = citation_annotations(answer, content)
        if annotations:
            message["annotations"] = annotations
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": answer.model_hash,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": self.finish_reason(finish)}],
            "usage": self.usage(),
        }

    # -- stream -----------------------------------------------------------------------------------------------

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """``data: {"id": ..., "choices": [{"index": 0, "delta": ..., ...}]}``: the bytes ``json.dumps`` of the
        whole chunk gives, but the envelope (the same for every chunk once the model hash is known) is encoded
        once per completion and only the delta per chunk."""
        fingerprint = self.run.answer.model_hash
        if self._envelope is None or self._envelope[0] != fingerprint:
            head = _encode({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.body.model,
                "system_fingerprint": fingerprint,
            })
            self._envelope = (fingerprint, head[:-1] + ', "choices": [{"index": 0, "delta": ')
        text = (
            self._envelope[1] + _encode(delta) + ', "logprobs": null, "finish_reason": '
            + ("null" if finish_reason is None else _encode(finish_reason)) + "}]}"
        )
        return data(text.encode())

    def event_chunks(self, event: ReplyEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            return [self.chunk({"content": event.text})]
        if isinstance(event, ReasoningDelta):
            return [self.chunk({"reasoning_content": event.text})]
        call = event.call
        if self.legacy_functions:
            if event.index > 0:
                return []  # function_call carries one call
            return [self.chunk({"function_call": {"name": call.name, "arguments": ""}}),
                    self.chunk({"function_call": {"arguments": call.arguments_json}})]
        head = {"index": event.index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        return [self.chunk({"tool_calls": [head]}),
                self.chunk({"tool_calls": [{"index": event.index, "function": {"arguments": call.arguments_json}}]})]

    async def sse(self) -> AsyncIterator[bytes]:
        async for frame in settled(self.run, self._frames(), sse_error):
            yield frame
        yield data(b"[DONE]")

    async def _frames(self) -> AsyncIterator[bytes]:
        yield self.chunk({"role": "assistant", "content": ""})
        async for event in self.run.events(self.gw.settings.heartbeat_interval):
            if isinstance(event, Heartbeat):
                yield HEARTBEAT
            elif isinstance(event, Finish):
                yield self.chunk({}, finish_reason=self.finish_reason(event))
            else:
                for chunk in self.event_chunks(event):
                    yield chunk
        include_usage = self.body.stream_options is not None and self.body.stream_options.include_usage
        if include_usage:
            usage_payload = {
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.body.model, "system_fingerprint": self.run.answer.model_hash,
                "choices": [], "usage": self.usage(),
            }
            yield data(json.dumps(usage_payload).encode())


def citation_annotations(answer: Answer, content: str) -> list[dict[str, Any]]:
    annotations = []
    for index, url, title in answer.citations:
        marker = f"[[{index}]]({url})"
        start = content.find(marker)
        if start < 0:
            continue
        annotations.append({
            "type": "url_citation",
            "url_citation": {"url": url, "title": title, "start_index": start, "end_index": start + len(marker)},
        })
    return annotations
