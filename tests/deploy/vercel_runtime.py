"""Serve a Python entrypoint the way Vercel's Python runtime does, for tests.

Vercel runs ``vercel_runtime.vc_init`` (PyPI ``vercel-runtime``, here modelled on 0.24.1) in the function: a
trampoline sets ``__VC_HANDLER_*`` variables, the runtime connects to the platform's IPC socket
(``VERCEL_IPC_PATH``), imports the entrypoint *by file path* under the module name ``api.index``, finds the
top-level ``app``, decides ASGI vs WSGI from its call signature, wraps an ASGI app in a middleware that answers
``/_vercel/ping`` and strips ``x-vercel-internal-*`` headers, binds 127.0.0.1 on an ephemeral port, announces it
with a ``server-started`` IPC message, and runs uvicorn (``lifespan="auto"``). The platform's proxy then forwards
each request over plain HTTP and streams the response back. An import error is reported as
``unrecoverable-error`` and the process exits 1: the function is dead.

The real package needs Python 3.12+; this module follows its ASGI path step by step so the tests can run the
entrypoint under the project's own interpreter. Run: ``python -m tests.deploy.vercel_runtime`` with
``VERCEL_IPC_PATH`` pointing at a Unix socket the test listens on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import socket
import sys
import time
import traceback
from typing import Any

import uvicorn

PING_PATH = "/_vercel/ping"
INTERNAL_HEADERS = ("x-vercel-internal-",)

_boot = time.time()
_ipc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
_ipc.connect(os.environ["VERCEL_IPC_PATH"])


def send_message(message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        _ipc.sendall((json.dumps(message) + "\0").encode())


def fatal(message: str) -> None:
    sys.stderr.write(message + "\n")
    send_message({"type": "unrecoverable-error", "payload": {"exitCode": 1, "message": message}})
    sys.exit(1)


def import_entrypoint(name: str, path: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def is_asgi(app: Any) -> bool:
    """vercel_runtime.resolver.detect_app_type: an async callable taking (scope, receive, send)."""
    is_async = inspect.iscoroutinefunction(app) or (callable(app) and inspect.iscoroutinefunction(app.__call__))
    params = [p for p in inspect.signature(app).parameters.values()
              if p.default is inspect.Parameter.empty
              and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return is_async and len(params) == 3


class ASGIMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == PING_PATH:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        invocation_id, request_id, headers = "0", 0, []
        for key, value in scope.get("headers", []):
            name = key.decode("latin1").lower()
            if name == "x-vercel-internal-invocation-id":
                invocation_id = value.decode()
            elif name == "x-vercel-internal-request-id":
                request_id = int(value) if value.isdigit() else 0
            elif not name.startswith(INTERNAL_HEADERS):
                headers.append((key, value))
        context = {"invocationId": invocation_id, "requestId": request_id}
        send_message({"type": "handler-started",
                      "payload": {"handlerStartedAt": int(time.time() * 1000), "context": context}})
        try:
            await self.app({**scope, "headers": headers}, receive, send)
        finally:
            send_message({"type": "end", "payload": {"context": context}})


def main() -> None:
    root = os.getcwd()  # the function's task root: the trampoline's directory
    sys.path.insert(0, root)
    entrypoint = os.environ.get("__VC_HANDLER_ENTRYPOINT", "api/index.py")
    modname = entrypoint.replace("/", ".").removesuffix(".py")
    try:
        module = import_entrypoint(modname, os.path.join(root, entrypoint))
    except Exception:
        fatal(f'could not import "{entrypoint}":\n{traceback.format_exc()}')
    app = getattr(module, os.environ.get("__VC_HANDLER_VARIABLE_NAME") or "app", None)
    if app is None or not is_asgi(app):
        fatal(f'"{entrypoint}" has no ASGI `app`')

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(app=ASGIMiddleware(app), lifespan="auto", access_log=False, log_config=None,
                            log_level="warning")
    send_message({"type": "server-started",
                  "payload": {"initDuration": int((time.time() - _boot) * 1000), "httpPort": sock.getsockname()[1]}})
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
