"""Lambda events from the recorded AWS payload shapes in ``events/``, filled in per request, and a runtime that
drives a handler the way the Lambda Python runtime does (one thread, one invocation at a time)."""

from __future__ import annotations

import base64
import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from adapters.lambda_handler import LambdaHandler

EVENTS = Path(__file__).parent / "events"
Kind = Literal["http_api_v2", "rest_api_v1", "function_url"]


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def http_event(kind: Kind, method: str, path: str, *, query: str = "", headers: dict[str, str] | None = None,
               body: bytes | str | dict | None = None, base64_body: bool = False) -> dict[str, Any]:
    event = copy.deepcopy(load(kind))
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, dict):
        body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    raw = body.encode() if isinstance(body, str) else body
    if raw is not None:
        headers["content-length"] = str(len(raw))
    encoded = None if raw is None else (base64.b64encode(raw).decode() if base64_body else raw.decode())
    if kind == "rest_api_v1":
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        params = parse_qs(query, keep_blank_values=True)
        event["queryStringParameters"] = {k: v[-1] for k, v in params.items()} or None
        event["multiValueQueryStringParameters"] = params or None
        event["headers"].update(headers)
        event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    else:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["rawQueryString"] = query
        params = parse_qs(query, keep_blank_values=True)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in params.items()} or None
        event["headers"].update(headers)
    event["body"] = encoded
    event["isBase64Encoded"] = base64_body
    return event


def scheduled_event() -> dict[str, Any]:
    return load("eventbridge_scheduled")


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response_body(response))


@dataclass
class FakeContext:
    """The attributes of the Lambda context object that code reads."""

    remaining_ms: int = 29_000
    function_name: str = "grok2api-prod-api"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class LambdaRuntime:
    """One worker thread owns the handler and its event loop, like a Lambda execution environment."""

    def __init__(self, app_factory: Any) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda")
        self.handler: LambdaHandler = self._thread.submit(lambda: LambdaHandler(app_factory())).result()

    def invoke(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return self._thread.submit(self.handler, event, context or FakeContext()).result(timeout=60)

    def close(self) -> None:
        def shutdown() -> None:
            import asyncio

            holder = getattr(getattr(self.handler.app, "state", None), "gateway", None)
            if holder is not None:
                asyncio.get_event_loop().run_until_complete(holder.aclose())

        self._thread.submit(shutdown).result(timeout=30)
        self._thread.shutdown()


class InvokeApi:
    """The Lambda Invoke API's asynchronous form (``POST /2015-03-31/functions/{name}/invocations`` with
    ``X-Amz-Invocation-Type: Event``), over HTTP on loopback: botocore reaches it through
    ``AWS_ENDPOINT_URL_LAMBDA`` and signs as it would for AWS. It answers as Lambda does (202 and an empty body,
    or an error with ``x-amzn-ErrorType``) and keeps each accepted event, so a test delivers it to a second
    execution environment — the later, separate invocation Lambda would run. ``deny`` answers what a role
    without ``lambda:InvokeFunction`` gets; ``answer_after`` delays the answer to an event already queued (the
    caller's read timeout then cannot tell whether it was)."""

    def __init__(self, functions: set[str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.functions = functions
        self.events: list[tuple[str, dict[str, Any]]] = []  # (function name, payload)
        self.seen: list[dict[str, str]] = []  # every request's headers
        self.deny = False
        self.answer_after = 0.0  # seconds to sit on an accepted event before answering (a slow network)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                api.seen.append({k.lower(): v for k, v in self.headers.items()})
                parts = self.path.split("?")[0].split("/")
                if len(parts) != 5 or parts[1:3] != ["2015-03-31", "functions"] or parts[4] != "invocations":
                    return self.error(404, "UnknownOperationException", "unknown operation")
                name = parts[3]
                if "authorization" not in {k.lower() for k in self.headers}:
                    return self.error(403, "MissingAuthenticationTokenException", "missing signature")
                if api.deny:
                    return self.error(403, "AccessDeniedException", f"User is not authorized to perform: "
                                      f"lambda:InvokeFunction on resource: {name}")
                if name not in api.functions:
                    return self.error(404, "ResourceNotFoundException", f"Function not found: {name}")
                if self.headers.get("x-amz-invocation-type") != "Event":
                    return self.error(400, "InvalidParameterValueException", "this stand-in only queues events")
                api.events.append((name, json.loads(body)))  # queued, whether or not the caller hears back
                if api.answer_after:
                    time.sleep(api.answer_after)
                self.send_response(202)
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.send_header("content-length", "0")
                self.end_headers()

            def error(self, status: int, kind: str, message: str) -> None:
                data = json.dumps({"Type": "User", "message": message}).encode()
                self.send_response(status)
                self.send_header("x-amzn-ErrorType", kind)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
