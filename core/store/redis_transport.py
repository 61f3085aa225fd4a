"""Transport over redis-py's asyncio client: any ``redis://`` / ``rediss://`` URL or a unix socket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from core.store.base import Command, ScriptMissing


class RedisTransport:
    name = "redis"

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisTransport:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=30,
        )
        return cls(client)

    async def execute(self, command: Command) -> Any:
        try:
            return await self.client.execute_command(*command)
        except NoScriptError as exc:
            raise ScriptMissing(str(exc)) from None

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        await self.client.aclose()
