"""OpenAI-compatible routes: ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api._deps import client_auth, gateway
from api._errors import sse_error
from api._openai_schemas import ChatCompletionRequest
from api._sse import HEARTBEAT, EventStream, data, with_heartbeats
from core.answer import Answer, AnswerBuilder, ContentDelta, ReasoningDelta, estimate_tokens
from core.catalog import CREATED, ModelSpec
from core.chat import ChatRequest, ChatStream, stream_error
from core.errors import FailureKind, GatewayError, InvalidRequest, UpstreamError
from core.gateway import Gateway
from core.grok.events import FinalMessage, SoftStop, StreamError
from core.prompt import flatten

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1", dependencies=[Depends(client_auth)])

INCOMPLETE = "grok.com closed the stream before the answer was complete"
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
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return model_card(model_id, gw.catalog.resolve(model_id))


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, gw: Gateway = Depends(gateway)
) -> JSONResponse | EventStream:
    body.check()
    spec = gw.catalog.resolve(body.model)
    prompt = flatten(body.to_turns())
    if not prompt.message:
        raise InvalidRequest("messages contain no text or images", param="messages")
    chat_request = ChatRequest(model=spec, prompt=prompt, requested_model=body.model)
    stream = await gw.chat.open(chat_request)
    completion = Completion(gw, body, stream, prompt_tokens=estimate_tokens(prompt.message))
    if body.stream:
        return EventStream(completion.sse())
    return JSONResponse(await completion.collect())


class Completion:
    """Renders one upstream answer as an OpenAI completion, streamed or whole."""

    def __init__(self, gw: Gateway, body: ChatCompletionRequest, stream: ChatStream, *, prompt_tokens: int) -> None:
        self.gw = gw
        self.body = body
        self.stream = stream
        self.prompt_tokens = prompt_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        settings = gw.settings
        self.builder = AnswerBuilder(
            thinking_output=settings.thinking_output,
            filter_tags=settings.filter_tags,
            asset_url=lambda path: settings.grok_assets_url.rstrip("/") + "/" + path.lstrip("/"),
            stream=body.stream,
            sources_footer=settings.sources_footer,
        )
        self._envelope: tuple[str | None, str] | None = None  # (model hash, encoded chunk head) for chunk()

    # -- shared -----------------------------------------------------------------------------------------------

    def usage(self, answer: Answer) -> dict[str, Any]:
        completion = estimate_tokens(answer.content)
        reasoning = estimate_tokens(answer.reasoning)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion + reasoning,
            "total_tokens": self.prompt_tokens + completion + reasoning,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    async def _finish(self, failure: GatewayError | None) -> None:
        answer = self.builder.answer
        await asyncio.shield(
            self.stream.finish(
                failure=failure,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=estimate_tokens(answer.content) + estimate_tokens(answer.reasoning),
            )
        )

    @property
    def keep_alive_interval(self) -> float:
        """Longest upstream silence before the lease is looked at (it lives ``lease_ttl`` unless renewed)."""
        return self.gw.settings.lease_ttl / 3

    def _check_end(self, saw_end: bool) -> None:
        if not saw_end:
            raise UpstreamError(FailureKind.STREAM, INCOMPLETE)

    # -- non-stream -------------------------------------------------------------------------------------------

    async def collect(self) -> dict[str, Any]:
        failure: GatewayError | None = None
        saw_end = False
        try:
            async for event in with_heartbeats(self.stream.events(), self.keep_alive_interval):
                if event is None:
                    await self.stream.keep_alive()
                    continue
                if isinstance(event, StreamError):
                    if not event.fatal:  # a warning (e.g. some search results failed): the answer goes on
                        log.info("grok.com warning: %s", event.message)
                        continue
                    raise stream_error(event)
                saw_end |= isinstance(event, SoftStop | FinalMessage)
                self.builder.feed(event)
            self._check_end(saw_end)
            self.builder.finish()
        except GatewayError as exc:
            failure = exc
            raise
        finally:
            await self._finish(failure)
        answer = self.builder.answer
        message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
        if answer.reasoning and self.gw.settings.thinking_output == "separate":
            message["reasoning_content"] = answer.reasoning
        annotations = citation_annotations(answer)
        if annotations:
            message["annotations"] = annotations
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": answer.model_hash,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(answer),
        }

    # -- stream -----------------------------------------------------------------------------------------------

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """``data: {"id": ..., "choices": [{"index": 0, "delta": ..., ...}]}``: the bytes ``json.dumps`` of the
        whole chunk gives, but the envelope (the same for every chunk once the model hash is known) is encoded
        once per completion and only the delta per chunk."""
        fingerprint = self.builder.answer.model_hash
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

    def delta_chunks(self, deltas: list[ContentDelta | ReasoningDelta]) -> list[bytes]:
        out = []
        for delta in deltas:
            if not delta.text:
                continue
            if isinstance(delta, ReasoningDelta):
                out.append(self.chunk({"reasoning_content": delta.text}))
            else:
                out.append(self.chunk({"content": delta.text}))
        return out

    async def sse(self) -> AsyncIterator[bytes]:
        failure: GatewayError | None = None
        saw_end = False
        interval = min(self.gw.settings.heartbeat_interval, self.keep_alive_interval)
        try:
            yield self.chunk({"role": "assistant", "content": ""})
            async for event in with_heartbeats(self.stream.events(), interval):
                if event is None:
                    await self.stream.keep_alive()
                    yield HEARTBEAT
                    continue
                if isinstance(event, StreamError):
                    if not event.fatal:
                        log.info("grok.com warning: %s", event.message)
                        continue
                    raise stream_error(event)
                saw_end |= isinstance(event, SoftStop | FinalMessage)
                for chunk in self.delta_chunks(self.builder.feed(event)):
                    yield chunk
            self._check_end(saw_end)
            for chunk in self.delta_chunks(self.builder.finish()):
                yield chunk
            yield self.chunk({}, finish_reason="stop")
            include_usage = self.body.stream_options is not None and self.body.stream_options.include_usage
            if include_usage:
                usage_payload = {
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.body.model, "system_fingerprint": self.builder.answer.model_hash,
                    "choices": [], "usage": self.usage(self.builder.answer),
                }
                yield data(json.dumps(usage_payload).encode())
        except GatewayError as exc:
            failure = exc
            yield sse_error(exc)
        except Exception as exc:  # never end a stream silently, never leak a traceback
            failure = GatewayError("internal error while streaming; the gateway logged the details")
            log.exception("stream failed: %s", exc)
            yield sse_error(failure)
        finally:
            await self._finish(failure)
        yield data(b"[DONE]")


def citation_annotations(answer: Answer) -> list[dict[str, Any]]:
    annotations = []
    for index, url, title in answer.citations:
        marker = f"[[{index}]]({url})"
        start = answer.content.find(marker)
        if start < 0:
            continue
        annotations.append({
            "type": "url_citation",
            "url_citation": {"url": url, "title": title, "start_index": start, "end_index": start + len(marker)},
        })
    return annotations
