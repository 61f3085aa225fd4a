"""REST chat: ``POST /rest/app-chat/conversations/new`` and ``/conversations/{id}/responses`` (§3, §4)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from simulator import gates
from simulator.chat_request import ChatRequest, TurnContext, trace_id_from
from simulator.responses import (
    ANTI_BOT,
    TOO_MANY_REQUESTS,
    edge_headers,
    invalid_argument,
    json_response,
    mode_unavailable,
    not_found,
)
from simulator.rest import RestRenderer
from simulator.scenarios import usage_limit_script
from simulator.state import Account, Fault, SimState
from simulator.stream import ScriptedStream, accepts_gzip
from simulator.turns import Refusal, prepare_turn


async def read_json(request: Request) -> dict[str, Any] | None:
    """Bodies arrive as application/json or (D0/D1 uploads) text/plain; parse either."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


# ``#crash`` in a prompt: grok.com fails with a 500 on this content, as it did on a lone UTF-16 surrogate.
CRASH_MARKER = re.compile(r"#crash(?![\w])")


def _sim(request: Request) -> SimState:
    return request.app.state.sim


async def new_conversation(request: Request) -> Response | ScriptedStream:
    return await _chat(request, None)


async def continue_conversation(request: Request) -> Response | ScriptedStream:
    return await _chat(request, request.path_params["conversation_id"])


async def _chat(request: Request, conversation_id: str | None) -> Response | ScriptedStream:
    state = _sim(request)
    config = state.config
    trace_id = trace_id_from(request.headers.get("traceparent"))
    use_gzip = config.gzip and accepts_gzip(request.headers.get("accept-encoding"))

    account = gates.check(state, request.headers, statsig=True)
    if isinstance(account, gates.GateFailure):
        if account.reason == "anti_bot" and config.anti_bot_in_stream:
            line = (json.dumps(ANTI_BOT, separators=(",", ":")) + "\n").encode()
            return ScriptedStream([("none", line)], config, headers=edge_headers(trace_id), gzip=use_gzip)
        return account.response(request.url.path)
    fault = state.take_fault(account)
    if fault is not None:
        return fault_response(fault)

    body = await read_json(request)
    if body is None:
        return json_response(invalid_argument("Invalid JSON body"), 400)
    req = ChatRequest.parse(body)
    if CRASH_MARKER.search(req.message):  # content this upstream chokes on, whichever account sends it
        return fault_response(Fault(status=500, message="Internal error"))
    outcome = prepare_turn(
        state, account, req, conversation_id=conversation_id, trace_id=trace_id, transport="rest",
        path=request.url.path,
    )
    if isinstance(outcome, Refusal):
        if outcome.reason == "quota_exhausted" and config.quota_in_stream:
            return _usage_limit_stream(state, account, req, conversation_id, trace_id, use_gzip)
        return refusal_response(outcome)

    renderer = RestRenderer(outcome.ctx, flat=conversation_id is not None, clock=state.clock.now)
    try:
        items = renderer.render(outcome.script)
    except BaseException:
        outcome.admission.release()
        raise
    return ScriptedStream(
        items, config, headers=edge_headers(trace_id), gzip=use_gzip, on_close=outcome.admission.release
    )


def refusal_response(refusal: Refusal) -> Response:
    if refusal.reason == "not_found":
        return not_found()
    if refusal.reason == "invalid_parent":
        return json_response(invalid_argument("Invalid parent response id"), 400)
    if refusal.reason == "invalid_post":
        return json_response(invalid_argument("Invalid source post id"), 400)
    if refusal.reason == "mode_unavailable":
        return json_response(mode_unavailable(refusal.mode), 403)
    return json_response(TOO_MANY_REQUESTS, 429)


def fault_response(fault: Fault) -> Response:
    """A forced failure: 429 in grok.com's shape, else a gRPC-style error body with the status."""
    if fault.status == 429:
        body: dict[str, Any] = TOO_MANY_REQUESTS if fault.message is None else {
            "error": {"code": 8, "message": fault.message, "details": []}}
    else:
        code = 14 if fault.status in (502, 503, 504) else 13 if fault.status >= 500 else 9
        body = {"error": {"code": code, "message": fault.message or "Service temporarily unavailable",
                          "details": []}}
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
    return json_response(body, fault.status, headers)


def _usage_limit_stream(
    state: SimState,
    account: Account,
    req: ChatRequest,
    conversation_id: str | None,
    trace_id: str,
    use_gzip: bool,
) -> ScriptedStream:
    """Exhausted quota reported the in-stream way: 200, (conversation line,) the usage-limit error line."""
    now = state.clock.now()
    ctx = TurnContext(
        user_id=account.user_id, mode=req.mode, message=req.message,
        conversation_id=conversation_id or str(uuid.uuid4()), conversation_created=now,
        user_response_id=str(uuid.uuid4()), assistant_response_id=str(uuid.uuid4()),
        parent_response_id=req.parent_response_id, trace_id=trace_id,
        new_conversation=conversation_id is None, temporary=req.temporary, created=now,
    )
    renderer = RestRenderer(ctx, flat=conversation_id is not None, clock=state.clock.now)
    items = renderer.render(usage_limit_script())
    return ScriptedStream(items, state.config, headers=edge_headers(trace_id), gzip=use_gzip)
