"""The ASGI app every platform entry point serves (Vercel's ``api/index.py``, the Lambda handler, the Lambda Web
Adapter run script), and the container server (``python -m adapters.entry``, the Dockerfile's CMD).

``load_app()`` builds the real app; when the environment is misconfigured it returns ``ConfigErrorApp`` instead,
which answers every request with a 500 listing the problems, one plain line each. A serverless platform shows a
function that crashes at import as an opaque "invocation failed"; a JSON answer on ``/health`` tells the operator
what to fix. Nothing here reads secrets into the answer: ``SettingsError`` lines name variables, never values.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from core.settings import Settings, SettingsError

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


# -- the container server ----------------------------------------------------------------------------------------
#
# ``python -m adapters.entry`` serves the app with uvicorn the way container platforms expect (Docker, compose,
# Cloud Run, Kubernetes): on $HOST:$PORT, one log line per record on stdout, and a graceful SIGTERM: the listening
# socket closes at once (new connections are refused), requests and streams in flight get GRACEFUL_SHUTDOWN
# seconds to finish, then the process exits 0. The platform's own kill deadline must be longer than the grace
# (compose: ``stop_grace_period``; Cloud Run: 10 s, fixed).
#
# Variables read here (the container's, not the gateway's, so they are not in core/settings.py):
#   PORT (8000), HOST (0.0.0.0), GRACEFUL_SHUTDOWN (seconds, 25), LOG_FORMAT (`plain` | `json`),
#   LOG_LEVEL (info), ACCESS_LOG (true), FORWARDED_ALLOW_IPS (read by uvicorn itself: the proxies whose
#   X-Forwarded-* headers are believed, 127.0.0.1 by default).

CONTAINER_VARIABLES = ("PORT", "HOST", "GRACEFUL_SHUTDOWN", "LOG_FORMAT", "LOG_LEVEL", "ACCESS_LOG",
                       "FORWARDED_ALLOW_IPS")
DEFAULT_PORT = 8000
DEFAULT_GRACE = 25.0
STORE_REQUIRED = (
    "REDIS_URL: required in a container, which does not run the embedded Redis (its disk is not meant to last). "
    "Set REDIS_URL (redis://host:6379/0 or rediss://...) or UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN."
)


class ContainerConfig:
    """The container server's own settings, from the environment; ``problems`` lists what is wrong."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.problems: list[str] = []
        self.host = env.get("HOST") or "0.0.0.0"
        self.port = self._number(env, "PORT", DEFAULT_PORT, int, low=1, high=65535)
        self.grace = self._number(env, "GRACEFUL_SHUTDOWN", DEFAULT_GRACE, float, low=0, high=3600)
        self.log_format = (env.get("LOG_FORMAT") or "plain").strip().lower()
        if self.log_format not in ("plain", "json"):
            self.problems.append(f"LOG_FORMAT: must be `plain` or `json`, not {self.log_format!r}.")
            self.log_format = "plain"
        self.log_level = (env.get("LOG_LEVEL") or "info").strip().lower()
        if self.log_level not in ("critical", "error", "warning", "info", "debug"):
            self.problems.append("LOG_LEVEL: must be one of critical, error, warning, info, debug.")
            self.log_level = "info"
        self.access_log = (env.get("ACCESS_LOG") or "true").strip().lower() not in ("0", "false", "no", "off")

    def _number(self, env: Mapping[str, str], name: str, default: Any, kind: type, *, low: float,
                high: float) -> Any:
        raw = env.get(name)
        if raw in (None, ""):
            return default
        try:
            value = kind(raw)
        except ValueError:
            self.problems.append(f"{name}: not a number ({raw!r}).")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}: must be between {low:g} and {high:g}.")
            return default
        return value


class LineFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``, one line per record: a traceback's newlines become ``\\n``."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the field names Cloud Logging reads (``severity``, ``message``, ``time``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn: every logger (uvicorn's, the gateway's) to stdout."""
    formatter = JsonFormatter if log_format == "json" else LineFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "line"}},
        "root": {"handlers": ["stdout"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }


def container_problems(settings: Settings) -> list[str]:
    """What the container refuses to run without: a real store (it never starts the embedded Redis)."""
    from core.store import describe

    return [STORE_REQUIRED] if describe(settings)["transport"] == "embedded" else []


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    log.critical("uncaught exception, exiting", exc_info=(kind, value, tb))


def _ignore_signal(signum: int, frame: object) -> None:
    """Handler uvicorn restores (and re-raises the signal into) after its graceful shutdown: exit 0, not 143."""


def serve(env: Mapping[str, str] | None = None) -> int:
    """Run the gateway until SIGTERM/SIGINT; 0 after a graceful stop, 2 when the configuration is unusable."""
    started = time.monotonic()
    env = os.environ if env is None else env
    config = ContainerConfig(env)
    logging.config.dictConfig(log_config(config.log_format, config.log_level))
    logging.captureWarnings(True)  # Python's warnings as log records too (one line each), not bare stderr text
    sys.excepthook = _log_uncaught
    problems = list(config.problems)
    settings = None
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        problems += exc.problems
    if settings is not None:
        problems += container_problems(settings)
    if problems:
        for problem in problems:  # one record per problem: platforms show the log, not a 500 page
            log.error("configuration: %s", problem)
        log.error("the gateway did not start: fix the variables above")
        return 2
    assert settings is not None

    import uvicorn

    from api._app import create_app

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_config=log_config(config.log_format, config.log_level),
        log_level=config.log_level, access_log=config.access_log, timeout_keep_alive=75,
        timeout_graceful_shutdown=config.grace, server_header=False,
    ))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore_signal)
    log.info("grok2api on %s:%d (store: %s, graceful shutdown %gs, ready to bind after %.2fs)", config.host, config.port,
             _store_name(settings), config.grace, time.monotonic() - started)
    server.run()
    log.info("stopped")
    return 0 if server.started else 1  # not started: the port could not be bound (uvicorn logged why)


def _store_name(settings: Settings) -> str:
    from core.store import describe

    store = describe(settings)
    return f"{store['transport']} {store['target']}"


def healthcheck(env: Mapping[str, str] | None = None, timeout: float = 4.0) -> int:
    """``GET http://127.0.0.1:$PORT/health``: 0 when it answers 200 (the image's HEALTHCHECK, no curl needed)."""
    import urllib.error
    import urllib.request

    env = os.environ if env is None else env
    port = env.get("PORT") or str(DEFAULT_PORT)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"health: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.entry",
                                     description="Run the gateway in a container (configuration from the environment).")
    parser.add_argument("--healthcheck", action="store_true", help="probe the running server's /health and exit")
    args = parser.parse_args(argv)
    return healthcheck() if args.healthcheck else serve()


if __name__ == "__main__":
    sys.exit(main())
