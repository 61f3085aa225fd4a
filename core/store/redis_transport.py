"""Transport over redis-py's asyncio client: any ``redis://`` / ``rediss://`` / ``unix://`` URL.

The client is pinned to RESP2 with every response callback removed, so replies are the server's raw shapes
(``HGETALL`` a flat list, ``SET`` ``"OK"``): exactly what the Upstash REST transport returns. redis-py 8 would
otherwise speak RESP3 (maps, doubles, booleans) and reshape replies per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.store.base import Command, CommandError, ScriptMissing
from core.store.urls import mask_url


class RedisTransport:
    name = "redis"

    def __init__(self, client: aioredis.Redis, *, target: str = "") -> None:
        client.response_callbacks.clear()  # shared with the client's pipelines: raw replies everywhere
        self.client = client
        self.target = target  # masked address, safe to log

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisTransport:
        client = aioredis.Redis.from_url(url, **client_options(timeout))
        return cls(client, target=mask_url(url))

    async def execute(self, command: Command) -> Any:
        try:
            return await self.client.execute_command(*command)
        except NoScriptError as exc:
            raise ScriptMissing(error_text(exc)) from None
        except ResponseError as exc:
            raise CommandError(error_text(exc)) from None

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        return [CommandError(error_text(r)) if isinstance(r, ResponseError) else r for r in replies]

    async def close(self) -> None:
        await self.client.aclose()


def error_text(exc: ResponseError) -> str:
    """The error line as the server sent it: redis-py strips known codes (``ERR``, ``NOSCRIPT``) off it."""
    code = getattr(exc, "status_code", None)
    return f"{code} {exc}" if code else str(exc)


def client_options(timeout: float) -> dict[str, Any]:
    """redis-py settings shared by the URL and embedded transports."""
    return {
        "protocol": 2,
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One immediate retry, only when a pooled connection turns out dead (server restart, idle close);
        # never on timeouts, and Store's own timeout bounds the whole call anyway.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "health_check_interval": 30,
    }
