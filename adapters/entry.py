"""The ASGI app every platform entry point serves (Vercel's ``api/index.py``, the Lambda handler, the Lambda Web
Adapter run script).

``load_app()`` builds the real app; when the environment is misconfigured it returns ``ConfigErrorApp`` instead,
which answers every request with a 500 listing the problems, one plain line each. A serverless platform shows a
function that crashes at import as an opaque "invocation failed"; a JSON answer on ``/health`` tells the operator
what to fix. Nothing here reads secrets into the answer: ``SettingsError`` lines name variables, never values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.settings import SettingsError

log = logging.getLogger("grok2api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ConfigErrorApp:
    """A dependency-free ASGI app that answers 500 with the configuration problems on every route."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        message = "The gateway is misconfigured: " + " ".join(self.problems)
        body = {
            "error": {
                "message": message,
                "type": "configuration_error",
                "param": None,
                "code": "invalid_configuration",
                "problems": self.problems,
            }
        }
        self.body = json.dumps(body, ensure_ascii=False).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return  # websockets: closing without accepting is a refusal
        await send({
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        })
        await send({"type": "http.response.body", "body": self.body})


def load_app() -> ASGIApp:
    """``create_app()`` from the environment, or a ``ConfigErrorApp`` that explains what is wrong."""
    from api._app import create_app

    try:
        return create_app()
    except SettingsError as exc:
        log.error("%s", exc)  # the platform's log shows the same lines the HTTP answer does
        return ConfigErrorApp(exc.problems)
