"""An Upstash-REST-compatible server in front of a real Redis, for tests and local runs.

Upstash's docs point at an equivalent (serverless-redis-http) for local testing; this one is small, in
Python, and runs in-process. Wire format, as documented for the REST API:

* ``POST /`` with a JSON array ``["SET", "k", "v"]`` → ``{"result": ...}``; a Redis error →
  ``400 {"error": "..."}``.
* ``POST /pipeline`` with an array of arrays → ``200 [{"result": ...} | {"error": "..."}, ...]``; each command
  runs on its own, a failing one does not stop the rest.
* ``POST /multi-exec`` → same shape, run in MULTI/EXEC; a command rejected while queueing aborts the whole
  transaction with ``400 {"error": "EXECABORT ..."}``.
* ``Authorization: Bearer <token>`` (or ``?_token=``) else ``401 {"error": "Unauthorized"}``.
* ``Upstash-Encoding: base64``: every string in the result is base64-encoded, recursively, except a bare
  ``OK``; integers and null stay as they are. Without it strings are sent as UTF-8 text.

Only the POST-body command form is served; the ``/cmd/arg/...`` path form answers 400 so a client that
falls back to it is caught. Every request is recorded in ``requests`` (method, path, body) for assertions.

Run in-process with ``UpstashCompatServer(redis_url, token).start()`` or stand-alone:
``python -m tests.support.upstash_server --redis redis://127.0.0.1:6379 --token T --port 8079``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from redis.exceptions import ResponseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.net import free_port

Reply = int | bytes | list["Reply"] | None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class UpstashCompatServer:
    redis_url: str
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> Starlette:
        state: dict[str, aioredis.Redis] = {}

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            client = aioredis.Redis.from_url(self.redis_url, protocol=2)
            client.response_callbacks.clear()  # the server's raw replies, as Upstash returns them
            state["redis"] = client
            yield
            await client.aclose()

        async def single(request: Request) -> Response:
            body = await self._read(request)
            if isinstance(body, Response):
                return body
            if not _is_command(body):
                return _error("ERR failed to parse command", 400)
            try:
                result = await state["redis"].execute_command(*_args(body))
            except ResponseError as exc:
                return _error(_error_text(exc), 400)
            return JSONResponse({"result": _encode(result, _base64(request))})

        async def pipeline(request: Request) -> Response:
            body = await self._read(request)
            if isinstance(body, Response):
                return body
            if not isinstance(body, list) or not body or not all(_is_command(c) for c in body):
                return _error("ERR failed to parse pipeline request", 400)
            transaction = request.url.path == "/multi-exec"
            async with state["redis"].pipeline(transaction=transaction) as pipe:
                for command in body:
                    pipe.execute_command(*_args(command))
                try:
                    results = await pipe.execute(raise_on_error=False)
                except ResponseError:  # redis-py re-raises the queueing error; Redis itself answers EXECABORT
                    return _error("EXECABORT Transaction discarded because of previous errors.", 400)
            encode = _base64(request)
            return JSONResponse(
                [
                    {"error": _error_text(r)}
                    if isinstance(r, ResponseError)
                    else {"result": _encode(r, encode)}
                    for r in results
                ]
            )

        async def path_form(request: Request) -> Response:
            self.requests.append(
                RecordedRequest(request.method, request.url.path, None, dict(request.headers))
            )
            return _error("ERR this test server only accepts the POST-body command form", 400)

        return Starlette(
            routes=[
                Route("/", single, methods=["POST"]),
                Route("/pipeline", pipeline, methods=["POST"]),
                Route("/multi-exec", pipeline, methods=["POST"]),
                Route("/{path:path}", path_form, methods=["GET", "POST", "PUT", "HEAD"]),
            ],
            lifespan=lifespan,
        )

    async def _read(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.url.path, body, dict(request.headers)))
        supplied = request.headers.get("authorization", "")
        token = supplied[7:] if supplied.lower().startswith("bearer ") else request.query_params.get("_token")
        if token != self.token:
            return _error("Unauthorized", 401)
        if body is None:
            return _error("ERR failed to parse command", 400)
        return body

    # -- running --------------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> UpstashCompatServer:
        """Serve on a background thread (a free port unless one was given); return once it accepts."""
        if not self.port:
            self.port = free_port()
        config = uvicorn.Config(
            self.app(), host=self.host, port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="upstash-compat", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"Upstash-compatible server did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None


@contextlib.contextmanager
def running_upstash_server(redis_url: str, token: str = "test-token") -> Iterator[UpstashCompatServer]:
    server = UpstashCompatServer(redis_url, token).start()
    try:
        yield server
    finally:
        server.stop()


def _is_command(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(a, str | int | float) and not isinstance(a, bool) for a in value)
    )


def _args(command: list[str | int | float]) -> list[str]:
    return [a if isinstance(a, str) else json.dumps(a) for a in command]


def _base64(request: Request) -> bool:
    return request.headers.get("upstash-encoding", "").lower() == "base64"


def _encode(value: Reply, as_base64: bool) -> Any:
    if isinstance(value, bytes):
        if as_base64:
            return "OK" if value == b"OK" else base64.b64encode(value).decode()
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_encode(item, as_base64) for item in value]
    return value  # int or None


def _error_text(exc: ResponseError) -> str:
    # redis-py strips the error code it recognises ("ERR", "NOSCRIPT"); Upstash sends the whole line.
    code = getattr(exc, "status_code", None)
    return f"{code} {exc}" if code else str(exc)


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL to front")
    parser.add_argument("--token", required=True, help="bearer token clients must send")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8079)
    options = parser.parse_args()
    server = UpstashCompatServer(options.redis, options.token, host=options.host, port=options.port)
    print(f"Upstash-compatible REST on {server.url} → {options.redis}", flush=True)
    uvicorn.run(server.app(), host=options.host, port=options.port, log_level="info")


if __name__ == "__main__":
    main()
