"""Error bodies. Every failure a client sees is one of these JSON shapes — never a traceback.

OpenAI routes answer ``{"error": {"message", "type", "param", "code"}}``; Anthropic routes (``/v1/messages``)
answer ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import ledger
from core.errors import GatewayError, InvalidRequest

log = logging.getLogger("grok2api")

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def openai_error_body(error: GatewayError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def anthropic_error_body(error: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(error.status, "api_error"),
                                        "message": error.message}}


def is_anthropic(request: Request) -> bool:
    return request.url.path.rstrip("/").endswith("/v1/messages") or request.url.path.startswith("/v1/messages")


def error_response(request: Request, error: GatewayError) -> JSONResponse:
    body = anthropic_error_body(error) if is_anthropic(request) else openai_error_body(error)
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    record = ledger.current()
    if record is not None:  # the request log says what the client was told
        record.fail(error.status, error.code or error.type, error.message)
    return JSONResponse(body, status_code=error.status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    # Unions report one error per alternative; the location still names the offending field.
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"function-after", "tagged-union"})))
    param = _location(loc)
    if first.get("type") == "json_invalid":
        return InvalidRequest("request body is not valid JSON", param="body")
    if first.get("type") == "missing":
        return InvalidRequest(f"`{param}` is required", param=param)
    return InvalidRequest(f"invalid `{param}`: {first.get('msg', 'invalid value')}", param=param)


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.message)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = GatewayError(str(exc.detail))
        error.status = exc.status_code
        error.type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        error.code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        if exc.status_code == 404:
            error.message = f"Unknown path {request.method} {request.url.path}"
        elif exc.status_code == 400 and "parsing the body" in error.message:  # FastAPI: not UTF-8, not JSON
            error.message, error.param = "request body is not valid UTF-8 JSON", "body"
        response = error_response(request, error)
        for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405, as HTTP requires
            response.headers[name] = value
        return response

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # The body middleware bounds the body's own nesting; JSON *inside* strings (tool-call arguments) is
        # parsed later and may still recurse too deep. That is the request's fault, not a server error.
        log.warning("%s %s -> 400: RecursionError: %s", request.method, request.url.path, exc)
        return error_response(request, InvalidRequest(
            "request nests data too deeply to process", param="body", code="json_too_deep"
        ))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, GatewayError("internal error; the gateway logged the details"))


def sse_error(error: GatewayError) -> bytes:
    """An OpenAI-style error event ending a stream that already sent its first byte."""
    return b"data: " + json.dumps(openai_error_body(error), ensure_ascii=False).encode() + b"\n\n"


# -- OpenAPI: the error responses the routes really return --------------------------------------------------------

_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }},
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {"type": "object", "required": ["type", "message"],
                  "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
    },
}
_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, a failed validation (never 422), or JSON nested too deeply",
    401: "Missing or wrong API key / admin or cron secret",
    403: "This API is disabled (e.g. no ADMIN_PASSWORD set)",
    404: "Unknown model, account, job or path",
    413: "Request body larger than MAX_REQUEST_BYTES (with or without Content-Length)",
    429: "No pooled account can serve the request right now, or grok.com rate-limited it (see Retry-After)",
    500: "Internal error; the gateway logged the details (never a traceback)",
    502: "grok.com failed or refused the request",
    503: "The state store (or, for /health, a dependency) is unavailable",
    504: "grok.com did not answer in time",
}
_UPSTREAM_PATHS = ("/v1/chat/", "/v1/messages", "/admin/tokens/refresh", "/admin/refresh/")
# Successful answers that are not JSON, by path suffix: (media type, when).
_OTHER_CONTENT = {
    "/chat/completions": ("text/event-stream", "when `stream` is true"),
    "/v1/messages": ("text/event-stream", "when `stream` is true"),
    "/tokens/export": ("text/plain", "`format=text` (the default): one token per line"),
}
_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The statuses an operation can answer besides 200, from the middleware, handlers and dependencies."""
    statuses = {400, 413, 500}
    if path.startswith(("/v1/", "/admin", "/cron")):
        statuses |= {401, 503}  # authentication, then the store (the pool, usage counters)
    if path.startswith(("/admin", "/cron")):
        statuses.add(403)
    if "{" in path or path.startswith("/v1/"):
        statuses.add(404)  # unknown model (also in a chat request), account or job
    if path.startswith(_UPSTREAM_PATHS) or path.endswith("/test"):
        statuses |= {429, 502, 504}  # upstream calls: chat, account tests and refreshes
    if path == "/health":
        statuses = {400, 413, 503}
    return sorted(statuses)


def _error_response(status: int, anthropic: bool, health: bool) -> dict[str, Any]:
    if health and status == 503:  # /health answers its usual report, with status "degraded"
        return {"description": "Degraded: a configured dependency does not answer (same report as 200)",
                "content": {"application/json": {"schema": {"type": "object"}}}}
    ref = "#/components/schemas/" + ("AnthropicError" if anthropic else "OpenAIError")
    return {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": {"$ref": ref}}}}


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the errors the gateway really sends: every route's 4xx/5xx in the
    route's shape, no FastAPI default 422 (validation failures are 400s here), event streams on chat, and one
    operation id per operation. Call once in ``create_app`` after the routers are included."""
    if getattr(app.state, "errors_documented", False):
        return
    app.state.errors_documented = True
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        _add_error_responses(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_responses(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["OpenAIError"] = _OPENAI_ERROR
    components["AnthropicError"] = _ANTHROPIC_ERROR
    seen_ids: set[str] = set()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            anthropic = path.startswith("/v1/messages")
            for status in _statuses(path, method, operation):
                responses.setdefault(str(status), _error_response(status, anthropic, path == "/health"))
            for suffix, (media_type, when) in _OTHER_CONTENT.items():
                if path.endswith(suffix):
                    ok = responses.setdefault("200", {"description": "Successful Response"})
                    ok.setdefault("content", {}).setdefault(media_type, {"schema": {"type": "string"},
                                                                         "description": when})
            op_id = operation.get("operationId")
            if op_id in seen_ids:  # one function serving several methods (cron tick): ids must be unique
                base = next((op_id[: -len(m) - 1] for m in _METHODS if op_id.endswith(f"_{m}")), op_id)
                operation["operationId"] = f"{base}_{method}"
            seen_ids.add(operation.get("operationId", ""))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema.get("paths", {})):
            components.pop(unused, None)
