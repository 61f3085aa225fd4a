"""Control API under ``/__sim/`` so tests in other processes can configure and inspect a running simulator."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.replies import ALL
from simulator.state import SimError, SimState

_ACCOUNT_KEYS = ("tier", "user_id", "blocked", "quotas", "concurrency_limit", "cf_clearance", "user_agent",
                 "email")


def _sim(request: Request) -> SimState:
    return request.app.state.sim


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def _body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw else {}


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    """Turn bad input into a 400/404 JSON answer instead of a 500."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except SimError as exc:
            return _error(str(exc), 404 if "unknown account" in str(exc) else 400)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            return _error(f"{type(exc).__name__}: {exc}")

    return wrapper


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def config(request: Request) -> Response:
    state = _sim(request)
    if request.method != "GET":
        state.config.update(await _body(request))
    return JSONResponse(state.config.to_dict())


async def reset(request: Request) -> Response:
    _sim(request).reset()
    return JSONResponse({"ok": True})


async def accounts(request: Request) -> Response:
    state = _sim(request)
    if request.method == "POST":
        body = await _body(request)
        account = state.add_account(body["token"], **{k: body[k] for k in _ACCOUNT_KEYS if k in body})
        return JSONResponse(account.to_dict(), 201)
    return JSONResponse([a.to_dict() for a in list(state.accounts.values())])


async def account(request: Request) -> Response:
    state = _sim(request)
    token = request.path_params["token"]
    if request.method == "DELETE":
        state.remove_account(token)
        return JSONResponse({"ok": True})
    for mode in list(state.require_account(token).quotas):
        state.quota(token, mode)  # apply due resets before reporting
    return JSONResponse(state.require_account(token).to_dict())


async def block(request: Request) -> Response:
    body = await _body(request)
    _sim(request).block(request.path_params["token"], bool(body.get("blocked", True)))
    return JSONResponse({"ok": True})


async def quota(request: Request) -> Response:
    body = await _body(request)
    window = _sim(request).set_quota(
        request.path_params["token"], body["mode"], total=body.get("total"), remaining=body.get("remaining"),
        window=body.get("window"),
    )
    return JSONResponse(window.to_dict())


async def concurrency(request: Request) -> Response:
    body = await _body(request)
    _sim(request).set_concurrency_limit(request.path_params["token"], body.get("limit"))
    return JSONResponse({"ok": True})


async def fault(request: Request) -> Response:
    body = await _body(request)
    _sim(request).set_fault(request.path_params["token"], body.get("status"), times=body.get("times"),
                            retry_after=body.get("retry_after"), message=body.get("message"))
    return JSONResponse({"ok": True})


async def clearances(request: Request) -> Response:
    body = await _body(request)
    _sim(request).register_clearance(body["value"], body.get("user_agent"))
    return JSONResponse({"ok": True})


async def rules(request: Request) -> Response:
    table = _sim(request).rules
    if request.method == "POST":
        body = await _body(request)
        table.add(body["pattern"], body.get("scenario"), **(body.get("params") or {}))
    elif request.method == "PUT":
        table.set(await _body(request))
    elif request.method == "DELETE":
        table.clear()
    return JSONResponse(table.to_list())


async def replies(request: Request) -> Response:
    """POST appends ``{"token": str | null, "replies": [...], "replace": bool}``; DELETE clears everything, or
    ``?token=T`` one account's queue, or ``?global=1`` the global one."""
    state = _sim(request)
    if request.method == "POST":
        body = await _body(request)
        token, items = body.get("token"), body.get("replies")
        if (token is not None and not isinstance(token, str)) or not isinstance(items, list):
            raise ValueError('expected {"token": str | null, "replies": [str | {"text", "thinking"}, ...]}')
        state.script_replies(token, items, replace=bool(body.get("replace", False)))
    elif request.method == "DELETE":
        query = request.query_params
        state.clear_replies(query["token"] if "token" in query else None if "global" in query else ALL)
    return JSONResponse(state.scripted_replies())


async def ledger(request: Request) -> Response:
    state = _sim(request)
    if request.method == "DELETE":
        state.reset_ledger()
    token = request.query_params.get("token")
    return JSONResponse(state.ledger(token))


async def requests(request: Request) -> Response:
    state = _sim(request)
    if request.method == "DELETE":
        state.clear_requests()
        return JSONResponse([])
    limit = request.query_params.get("limit")
    return JSONResponse(state.requests(limit=int(limit) if limit else None, path=request.query_params.get("path")))


async def clock(request: Request) -> Response:
    state = _sim(request)
    body = await _body(request)
    if "advance" in body:
        state.advance_time(float(body["advance"]))
    return JSONResponse({"now": state.clock.now(), "offset": state.clock.offset})


async def conversation(request: Request) -> Response:
    conv = _sim(request).conversations.get(request.path_params["conversation_id"])
    if conv is None:
        return _error("unknown conversation", 404)
    return JSONResponse(conv.to_dict())


async def files(request: Request) -> Response:
    return JSONResponse([
        {"id": f.id, "owner_uid": f.owner_uid, "name": f.name, "mime": f.mime, "size": f.size, "uri": f.uri,
         "source": f.source}
        for f in list(_sim(request).files.values())
    ])


def _route(path: str, handler: Handler, methods: list[str]) -> Route:
    return Route(path, _guarded(handler), methods=methods)


routes = [
    _route("/__sim/health", health, ["GET"]),
    _route("/__sim/config", config, ["GET", "POST", "PATCH"]),
    _route("/__sim/reset", reset, ["POST"]),
    _route("/__sim/accounts", accounts, ["GET", "POST"]),
    _route("/__sim/accounts/{token}", account, ["GET", "DELETE"]),
    _route("/__sim/accounts/{token}/block", block, ["POST"]),
    _route("/__sim/accounts/{token}/quota", quota, ["POST"]),
    _route("/__sim/accounts/{token}/concurrency", concurrency, ["POST"]),
    _route("/__sim/accounts/{token}/fault", fault, ["POST"]),
    _route("/__sim/clearances", clearances, ["POST"]),
    _route("/__sim/rules", rules, ["GET", "POST", "PUT", "DELETE"]),
    _route("/__sim/replies", replies, ["GET", "POST", "DELETE"]),
    _route("/__sim/ledger", ledger, ["GET", "DELETE"]),
    _route("/__sim/requests", requests, ["GET", "DELETE"]),
    _route("/__sim/clock", clock, ["POST"]),
    _route("/__sim/conversations/{conversation_id}", conversation, ["GET"]),
    _route("/__sim/files", files, ["GET"]),
]
