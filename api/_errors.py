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

from core.errors import GatewayError, InvalidRequest, NoAccountAvailable, UpstreamError

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
    504: "api_error",
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
    if isinstance(error, NoAccountAvailable | UpstreamError) and retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
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
        error.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        if exc.status_code == 404:
            error.message = f"Unknown path {request.method} {request.url.path}"
        return error_response(request, error)

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
