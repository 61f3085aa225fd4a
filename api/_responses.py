"""OpenAI Responses API: ``/v1/responses`` (create, stream or not), retrieve, delete, input items, input tokens.

A thin adapter over the reply core, like the chat route: body → canonical items (+ the stored chain for
``previous_response_id``) → ``Turn``s and a ``ReplySpec`` → ``compose`` → ``gw.chat.open`` → ``AnswerRun``; the
core events are rendered as Responses output items and, when streaming, as the SDK's event sequence
(``response.created`` … exactly one of ``response.completed`` / ``response.incomplete`` / ``response.failed``).

Store commands per create: the lease, the settle (which also writes the ``store: true`` record, see
``core.responses_store``) and one GET when ``previous_response_id`` is given; a ``text.format`` answer that
needs its one repair turn adds that turn's lease and settle. The record is written *before* the
terminal event is sent, so a client chaining at once finds it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api._access import client_auth
from api._deps import gateway
from api._media import chat_media
from api._responses_schemas import (
    ResponsesRequest,
    ToolTable,
    history_items,
    input_text_for_count,
    new_id,
    to_turns,
)
from api._sse import HEARTBEAT, EventStream
from core import responses_store
from core.answer import estimate_tokens
from core.answer_run import AnswerRun, Heartbeat, repair_key, repair_turn
from core.chat import ChatRequest
from core.compose import compose
from core.errors import GatewayError, InvalidRequest, NoAccountAvailable
from core.gateway import Gateway
from core.media.chat import ChatMedia
from core.reply import Finish, ReasoningDelta, TextDelta, ToolCallEvent

log = logging.getLogger("grok2api")
router = APIRouter(prefix="/v1", dependencies=[Depends(client_auth)])
_encode = json.JSONEncoder(ensure_ascii=False).encode


def upstream_responses(stream_when: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI for a route that calls grok.com: its event stream and the upstream errors (``document_errors``
    adds the rest and keeps these)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}}
    return {
        200: {"description": "Successful Response",
              "content": {"text/event-stream": {"schema": {"type": "string"}, "description": stream_when}}},
        429: {"description": "No pooled account can serve the request right now, or grok.com rate-limited it "
                             "(see Retry-After)", **error},
        502: {"description": "grok.com failed or refused the request", **error},
        504: {"description": "grok.com did not answer in time", **error},
    }


@router.post("/responses", response_model=None, responses=upstream_responses("when `stream` is true"))
async def create_response(
    body: ResponsesRequest, gw: Gateway = Depends(gateway), media: ChatMedia = Depends(chat_media)
) -> JSONResponse | EventStream:
    body.check()
    model = gw.catalog.resolve(body.model)
    table = body.tool_table()
    spec = body.reply_spec(table)
    items = body.input_items()
    prior: list[dict[str, Any]] = []
    if body.previous_response_id:
        stored = await responses_store.load(gw.store, body.previous_response_id, param="previous_response_id")
        prior = history_items(stored.history())
    if not items and not prior:
        raise InvalidRequest("`input` is required", param="input")
    prompt = compose(to_turns([*prior, *items], table, body.instructions_text()), spec)
    if not prompt.message:
        raise InvalidRequest("input contains no text or images", param="input")
    request = ChatRequest(model=model, prompt=prompt, requested_model=body.model, sticky_key=repair_key(spec))
    stream = await gw.chat.open(request)
    run = AnswerRun(gw.settings, stream, spec, streaming=body.stream, prompt_tokens=estimate_tokens(prompt.message),
                    repair=repair_turn(gw, request), media=media)
    response = ResponseRun(gw, body, run, table, prior, items)
    if body.stream:
        return EventStream(response.sse())
    return JSONResponse(await response.collect())


@router.post("/responses/input_tokens")
async def count_input_tokens(body: ResponsesRequest, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    """An estimate (the same one usage reports), no upstream call; one GET with ``previous_response_id``."""
    table = body.tool_table()
    spec = body.reply_spec(table)
    items = body.input_items()
    if body.previous_response_id:
        stored = await responses_store.load(gw.store, body.previous_response_id, param="previous_response_id")
        items = [*history_items(stored.history()), *items]
    prompt = compose(to_turns(items, table, body.instructions_text()), spec)
    text = prompt.message or input_text_for_count(items, body.instructions_text())
    return {"object": "response.input_tokens", "input_tokens": estimate_tokens(text)}


@router.get("/responses/{response_id}")
async def retrieve_response(response_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return (await responses_store.load(gw.store, response_id)).response


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    if not await responses_store.delete(gw.store, response_id):
        raise responses_store.ResponseNotFound(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    gw: Gateway = Depends(gateway),
    limit: int = Query(20, ge=1, le=100),
    order: str = Query("desc", pattern="^(asc|desc)$"),
    after: str | None = None,
) -> dict[str, Any]:
    """This response's own input items (not those of earlier responses in its chain), paged like OpenAI."""
    stored = await responses_store.load(gw.store, response_id)
    items = list(stored.input if order == "asc" else reversed(stored.input))
    if after is not None:
        position = next((i for i, item in enumerate(items) if item.get("id") == after), None)
        items = items[position + 1:] if position is not None else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# -- rendering ------------------------------------------------------------------------------------------------------


def error_code(error: GatewayError) -> str:
    """The ``response.error.code`` clients act on (Codex retries ``rate_limit_exceeded`` and ``server_error``)."""
    if isinstance(error, NoAccountAvailable) or error.status == 429:
        return "rate_limit_exceeded"
    if isinstance(error, InvalidRequest) or error.status == 400:
        return "invalid_prompt"
    return "server_error"


def error_message(error: GatewayError) -> str:
    """The error's text; with a known wait, OpenAI's "Please try again in Ns." (Codex reads its retry delay
    from that sentence)."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        return f"{error.message.rstrip('.')}. Please try again in {max(1, math.ceil(retry_after))}s."
    return error.message


class ResponseRun:
    """Renders one answer's core events as a Responses API response: output items in order (reasoning, message,
    function calls), the stream's events with ``sequence_number``, and the final object (stored if asked)."""

    def __init__(self, gw: Gateway, body: ResponsesRequest, run: AnswerRun, table: ToolTable,
                 prior: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
        self.gw = gw
        self.body = body
        self.run = run
        self.table = table
        self.prior = prior
        self.items = items
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []
        self.sequence = 0
        self._open: dict[str, Any] | None = None  # the output item being streamed (reasoning or message)
        self._text: list[str] = []
        self.closed = False

    # -- the response object ------------------------------------------------------------------------------------

    def response(self, status: str, *, error: GatewayError | None = None,
                 incomplete: str | None = None) -> dict[str, Any]:
        body = self.body
        reasoning = body.reasoning or {}
        done = status != "in_progress"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": {"code": error_code(error), "message": error_message(error)} if error is not None else None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": [dict(item) for item in self.output] if done else [],
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": body.stores,
            "temperature": body.temperature if body.temperature is not None else 1.0,
            "text": body.text or {"format": {"type": "text"}},
            "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
            "tools": body.tools or [],
            "top_p": body.top_p if body.top_p is not None else 1.0,
            "truncation": body.truncation or "disabled",
            "usage": self.usage() if done else None,
            "user": body.user,
            "metadata": body.metadata or {},
        }

    def usage(self) -> dict[str, Any]:
        run = self.run
        output = run.completion_tokens
        return {
            "input_tokens": run.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": run.reasoning_tokens},
            "total_tokens": run.prompt_tokens + output,
        }

    # -- events → items -----------------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return payload

    def _start(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.output.append(item)
        return [self.event("response.output_item.added", output_index=len(self.output) - 1, item=dict(item))]

    def _reasoning(self, text: str) -> list[dict[str, Any]]:
        out = []
        if self._open is None or self._open["type"] != "reasoning":
            out += self.close_open()
            item = {"type": "reasoning", "id": new_id("rs"), "summary": []}
            if "reasoning.encrypted_content" in (self.body.include or []):
                item["encrypted_content"] = None  # nothing to encrypt: reasoning is not replayable upstream
            out += self._start(item)
            self._open, self._text = item, []
            out.append(self.event("response.reasoning_summary_part.added", item_id=item["id"],
                                  output_index=len(self.output) - 1, summary_index=0,
                                  part={"type": "summary_text", "text": ""}))
        self._text.append(text)
        out.append(self.event("response.reasoning_summary_text.delta", item_id=self._open["id"],
                              output_index=len(self.output) - 1, summary_index=0, delta=text))
        return out

    def _message_text(self, text: str) -> list[dict[str, Any]]:
        out = []
        if self._open is None or self._open["type"] != "message":
            out += self.close_open()
            item = {"type": "message", "id": new_id("msg"), "status": "in_progress", "role": "assistant",
                    "content": []}
            out += self._start(item)
            self._open, self._text = item, []
            out.append(self.event("response.content_part.added", item_id=item["id"],
                                  output_index=len(self.output) - 1, content_index=0,
                                  part={"type": "output_text", "text": "", "annotations": []}))
        self._text.append(text)
        out.append(self.event("response.output_text.delta", item_id=self._open["id"],
                              output_index=len(self.output) - 1, content_index=0, delta=text, logprobs=[]))
        return out

    def close_open(self, status: str = "completed") -> list[dict[str, Any]]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.output.index(item)
        text = "".join(self._text)
        if item["type"] == "reasoning":
            part = {"type": "summary_text", "text": text}
            item["summary"] = [part]
            return [
                self.event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                           summary_index=0, text=text),
                self.event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                           summary_index=0, part=part),
                self.event("response.output_item.done", output_index=index, item=dict(item)),
            ]
        part = {"type": "output_text", "text": text, "annotations": []}
        item["content"], item["status"] = [part], status
        return [
            self.event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                       text=text, logprobs=[]),
            self.event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                       part=part),
            self.event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _call(self, event: ToolCallEvent) -> list[dict[str, Any]]:
        out = self.close_open()
        call = event.call
        name, namespace = self.table.split(call.name)
        item: dict[str, Any] = {"type": "function_call", "id": "fc_" + call.id.removeprefix("call_"),
                                "call_id": call.id, "name": name, "arguments": "", "status": "in_progress"}
        if namespace:
            item["namespace"] = namespace
        out += self._start(item)
        index = len(self.output) - 1
        arguments = call.arguments_json
        out.append(self.event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                              delta=arguments))
        out.append(self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                              name=name, arguments=arguments))
        item["arguments"], item["status"] = arguments, "completed"
        out.append(self.event("response.output_item.done", output_index=index, item=dict(item)))
        return out

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return self._message_text(event.text)
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text)
        if isinstance(event, ToolCallEvent):
            return self._call(event)
        return []

    # -- the end ------------------------------------------------------------------------------------------------

    def finished(self, finish: Finish) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Close what is open; the closing events and the final response object (completed or incomplete)."""
        incomplete = finish.reason == "length"
        out = self.close_open("incomplete" if incomplete else "completed")
        if incomplete:
            return out, self.response("incomplete", incomplete="max_output_tokens")
        return out, self.response("completed")

    def failed(self, error: GatewayError) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        out = self.close_open("incomplete")
        return out, self.response("failed", error=error)

    async def close(self, failure: GatewayError | None, final: dict[str, Any] | None) -> None:
        """Settle once; with ``store: true`` the final object is written by the same command."""
        if self.closed:
            return
        self.closed = True
        keep = None
        if final is not None and self.body.stores:
            value = responses_store.encode_record(final, self.prior, self.items)
            keep = (responses_store.key(self.gw.store, self.id), value, self.gw.settings.response_ttl)
        await self.run.close(failure, keep=keep)

    # -- non-stream ---------------------------------------------------------------------------------------------

    async def collect(self) -> dict[str, Any]:
        failure: GatewayError | None = None
        final: dict[str, Any] | None = None
        try:
            async for event in self.run.events():
                if isinstance(event, Finish):
                    _, final = self.finished(event)
                else:
                    self.feed(event)
        except GatewayError as exc:
            failure = exc
            raise
        finally:
            await self.close(failure, final)
        assert final is not None
        return final

    # -- stream -------------------------------------------------------------------------------------------------

    @staticmethod
    def frame(payload: dict[str, Any]) -> bytes:
        return f"event: {payload['type']}\ndata: {_encode(payload)}\n\n".encode()

    async def sse(self) -> AsyncIterator[bytes]:
        failure: GatewayError | None = None
        terminal: list[dict[str, Any]] = []
        try:
            yield self.frame(self.event("response.created", response=self.response("in_progress")))
            yield self.frame(self.event("response.in_progress", response=self.response("in_progress")))
            async for event in self.run.events(self.gw.settings.heartbeat_interval):
                if isinstance(event, Heartbeat):
                    yield HEARTBEAT
                elif isinstance(event, Finish):
                    closing, final = self.finished(event)
                    for payload in closing:
                        yield self.frame(payload)
                    await self.close(None, final)  # stored before the client hears it is done
                    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
                    terminal = [self.event(kind, response=final)]
                else:
                    for payload in self.feed(event):
                        yield self.frame(payload)
        except GatewayError as exc:
            failure = exc
        except Exception as exc:  # never end a stream silently, never leak a traceback
            failure = GatewayError("internal error while streaming; the gateway logged the details")
            log.exception("responses stream failed: %s", exc)
        finally:
            if not self.closed and failure is None and not terminal:
                # The client went away (the generator is being closed): settle as the chat route does (the
                # answer was produced), store nothing, send nothing more.
                await self.close(None, None)
        if failure is not None:
            closing, final = self.failed(failure)
            await self.close(failure, final)
            for payload in closing:
                yield self.frame(payload)
            terminal = [self.event("response.failed", response=final)]
        for payload in terminal:
            yield self.frame(payload)
