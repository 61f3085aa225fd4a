"""The store every piece of state goes through.

``Store`` is written once against Redis semantics; a ``Transport`` only knows how to send one command or a batch
to a particular kind of Redis (embedded, redis-py, Upstash REST). Every call has a timeout and a failure becomes
``StoreUnavailable`` (HTTP 503), never a hang. Read-modify-write logic lives in Lua ``Script``s run with EVALSHA,
falling back to EVAL once when the server does not know the script yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from core.errors import StoreUnavailable

Command = Sequence[str | int | float | bytes]
log = logging.getLogger("grok2api")


class ScriptMissing(Exception):
    """Raised by a transport when EVALSHA answers NOSCRIPT."""


class CommandError(Exception):
    """Redis answered with an error reply (WRONGTYPE, a Lua ``error_reply``, ...).

    The store is up and the command reached it: this is a bug or a data problem, not unavailability, so it is
    not turned into ``StoreUnavailable``. Inside ``Store.pipeline`` results it is *returned* in place, not raised.
    """


class Transport(Protocol):
    """Sends raw commands and returns raw RESP2 replies, identical on every transport.

    Bulk and simple strings are ``str`` (UTF-8), integers ``int``, nil ``None``, arrays ``list`` (nested as
    the server sent them): no client-side reshaping, so ``HGETALL`` is a flat list and ``SET`` is ``"OK"``.
    An error reply raises ``CommandError`` (``ScriptMissing`` for NOSCRIPT); in ``pipeline`` it is returned in
    place so one failing command does not hide the others' results.
    """

    name: str

    async def execute(self, command: Command) -> Any: ...

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def lua_source(package: str, name: str) -> str:
    """The text of ``<package>/lua/<name>.lua``, where each package keeps its Lua scripts."""
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text("utf-8")


class Store:
    def __init__(self, transport: Transport, *, prefix: str = "g2a:", timeout: float = 2.0) -> None:
        self.transport = transport
        self.prefix = prefix
        self.timeout = timeout
        self.commands_sent = 0  # billed commands (Upstash counts each command of a pipeline)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def call(self, *command: str | int | float | bytes) -> Any:
        """One command; raw RESP2 reply (see ``Transport``)."""
        _check(command)
        self.commands_sent += 1
        return await self._guard(self.transport.execute(list(command)), command[0])

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip, not atomic; a failed one is a ``CommandError`` in its slot."""
        if not commands:
            return []
        for command in commands:
            _check(command)
        self.commands_sent += len(commands)
        return await self._guard(self.transport.pipeline([list(c) for c in commands]), "pipeline")

    async def run(
        self, script: Script, keys: Sequence[str] = (), args: Sequence[str | int | float] = ()
    ) -> Any:
        """Run a Lua script atomically: EVALSHA, then EVAL once if the server lacks it."""
        evalsha = ["EVALSHA", script.sha, len(keys), *keys, *args]
        _check(evalsha)
        self.commands_sent += 1
        try:
            return await self._guard(self.transport.execute(evalsha), script.name)
        except ScriptMissing:
            self.commands_sent += 1
            return await self._guard(
                self.transport.execute(["EVAL", script.source, len(keys), *keys, *args]), script.name
            )

    async def ping(self) -> bool:
        return await self.call("PING") in ("PONG", True, b"PONG")

    def describe(self) -> dict[str, Any]:
        """Transport, masked address and counters: safe for logs and the admin health page."""
        return {
            "transport": self.transport.name,
            "target": getattr(self.transport, "target", ""),
            "prefix": self.prefix,
            "timeout": self.timeout,
            "commands_sent": self.commands_sent,
        }

    async def health(self) -> dict[str, Any]:
        """``describe()`` plus a PING: ``ok``, ``latency_ms`` and the error message if it failed."""
        started = time.perf_counter()
        try:
            ok, error = await self.ping(), None
        except StoreUnavailable as exc:
            ok, error = False, exc.message
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return {**self.describe(), "ok": ok, "latency_ms": latency_ms, "error": error}

    async def close(self) -> None:
        await self.transport.close()

    async def _guard(self, awaitable: Any, what: object) -> Any:
        try:
            async with asyncio.timeout(self.timeout):  # no extra task per call, unlike wait_for (hot path)
                return await awaitable
        except (ScriptMissing, CommandError, StoreUnavailable):
            raise
        except TimeoutError:
            log.warning("state store %s did not answer %s within %gs", self._label(), what, self.timeout)
            raise StoreUnavailable(
                f"state store ({self.transport.name}) did not answer {what!s} within {self.timeout:g}s"
            ) from None
        except Exception as exc:  # connection refused, auth, protocol errors: all mean "store unusable"
            # The raw text names hosts, ports, socket paths: the server log gets it, the client a plain reason.
            log.warning("state store %s failed on %s: %s: %s", self._label(), what, type(exc).__name__, exc)
            raise StoreUnavailable(
                f"state store ({self.transport.name}) failed on {what!s}: {type(exc).__name__}: {plain_reason(exc)}"
            ) from exc

    def _label(self) -> str:
        """Transport and masked address: for the server log only, never for clients."""
        target = getattr(self.transport, "target", "")
        return f"{self.transport.name} at {target}" if target else self.transport.name


# Substrings of driver errors (redis-py, httpx, the embedded server) → what a client may be told.
_REASONS = (
    (("refused", "error 111 ", "errno 111]"), "connection refused"),  # 111: ECONNREFUSED
    (("connection attempts failed", "connect call failed", "connecterror", "error connecting"), "could not connect"),
    (("timed out", "timeout"), "timed out"),
    (("name or service not known", "nodename nor servname", "getaddrinfo", "name resolution", "no address"),
     "host name not found"),
    (("wrongpass", "noauth", "invalid password", "authentication", "unauthorized", "invalid username"),
     "authentication failed"),
    (("ssl", "certificate", "tls"), "TLS handshake failed"),
    (("could not run", "did not come up", "still loading", "no redis-server"), "the embedded redis-server did not start"),
    (("reset", "closed", "broken pipe", "eof"), "connection lost"),
)


def plain_reason(exc: BaseException) -> str:
    """A short reason for a store failure that names no address, path or credential."""
    text = f"{type(exc).__name__} {exc}".lower()
    for needles, reason in _REASONS:
        if any(needle in text for needle in needles):
            return reason
    return "unavailable (details in the server log)"


def _check(command: Command) -> None:
    """Reject arguments Redis cannot carry, the same way on every transport (a bug, not an outage)."""
    if not command:
        raise TypeError("empty store command")
    for arg in command:
        if isinstance(arg, bool) or not isinstance(arg, str | bytes | int | float):
            raise TypeError(f"invalid store argument {arg!r} in {command[0]!s}")
