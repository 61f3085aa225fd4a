"""Request dependencies: the process's ``Gateway`` (built lazily on first use) and authentication."""

from __future__ import annotations

import asyncio

from fastapi import Request

from api._auth import KeyChecker
from core.gateway import Gateway


class GatewayHolder:
    """Builds the engine on first request, not at import: cold starts stay cheap and config errors surface as
    clear 500/503 answers rather than a crashed function."""

    def __init__(self, factory) -> None:  # factory: () -> Gateway
        self._factory = factory
        self._gateway: Gateway | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Gateway:
        if self._gateway is None:
            async with self._lock:
                if self._gateway is None:
                    self._gateway = await asyncio.to_thread(self._factory)
        return self._gateway

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()
            self._gateway = None


async def gateway(request: Request) -> Gateway:
    return await request.app.state.gateway.get()


def keys(request: Request) -> KeyChecker:
    return request.app.state.keys


async def admin_auth(request: Request) -> None:
    await keys(request).admin(request)


async def cron_auth(request: Request) -> None:
    keys(request).cron(request)
