"""The store every piece of state goes through.

``Store`` is written once against Redis semantics; a ``Transport`` only knows how to send one command or a batch
to a particular kind of Redis (embedded, redis-py, Upstash REST). Every call has a timeout and a failure becomes
``StoreUnavailable`` (HTTP 503), never a hang. Read-modify-write logic lives in Lua ``Script``s run with EVALSHA,
falling back to EVAL once when the server does not know the script yet.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import StoreUnavailable

Command = Sequence[str | int | float | bytes]


class ScriptMissing(Exception):
    """Raised by a transport when EVALSHA answers NOSCRIPT."""


class Transport(Protocol):
    """Sends raw commands. Replies are decoded to ``str``/``int``/``list``/``None`` (RESP2 shapes)."""

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


class Store:
    def __init__(self, transport: Transport, *, prefix: str = "g2a:", timeout: float = 2.0) -> None:
        self.transport = transport
        self.prefix = prefix
        self.timeout = timeout
        self.commands_sent = 0  # billed commands (Upstash counts each command of a pipeline)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def call(self, *command: str | int | float | bytes) -> Any:
        self.commands_sent += 1
        return await self._guard(self.transport.execute(list(command)), command[0])

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        self.commands_sent += len(commands)
        return await self._guard(self.transport.pipeline([list(c) for c in commands]), "pipeline")

    async def run(self, script: Script, keys: Sequence[str] = (), args: Sequence[str | int | float] = ()) -> Any:
        """Run a Lua script atomically: EVALSHA, then EVAL once if the server lacks it."""
        self.commands_sent += 1
        evalsha = ["EVALSHA", script.sha, len(keys), *keys, *args]
        try:
            return await self._guard(self.transport.execute(evalsha), script.name)
        except ScriptMissing:
            self.commands_sent += 1
            return await self._guard(
                self.transport.execute(["EVAL", script.source, len(keys), *keys, *args]), script.name
            )

    async def ping(self) -> bool:
        return await self.call("PING") in ("PONG", True, b"PONG")

    async def close(self) -> None:
        await self.transport.close()

    async def _guard(self, awaitable: Any, what: object) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except ScriptMissing:
            raise
        except TimeoutError:
            raise StoreUnavailable(
                f"state store ({self.transport.name}) did not answer {what!s} within {self.timeout:g}s"
            ) from None
        except StoreUnavailable:
            raise
        except Exception as exc:  # connection refused, auth, protocol errors: all mean "store unusable"
            raise StoreUnavailable(
                f"state store ({self.transport.name}) failed on {what!s}: {type(exc).__name__}: {exc}"
            ) from exc
