"""The FastAPI application: routes, error handlers, limits. ``create_app`` is the one way to build it."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import (
    _admin,
    _admin_keys,
    _admin_ledger,
    _admin_media,
    _admin_settings,
    _anthropic,
    _completions,
    _console,
    _cron,
    _errors,
    _health,
    _images,
    _media,
    _openai,
    _responses,
    _session,
    _videos,
)
from api._auth import KeyChecker
from api._deps import GatewayHolder
from api._ledger import RequestLedger
from api._limits import BodyLimit
from core.fetch import aclose_shared_client
from core.gateway import Gateway
from core.settings import Settings


def create_app(settings: Settings | None = None, *, gateway_factory: Callable[[], Gateway] | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    factory = gateway_factory or (lambda: Gateway.from_settings(settings))
    holder = GatewayHolder(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.instance_id:  # a restart of a named instance: free what its previous run left leased
            log = logging.getLogger("grok2api")
            try:
                gateway = await holder.get()
                freed = await gateway.pool.reclaim_instance()
                if freed:
                    log.warning(
                        "instance %s: freed %d lease(s) left by its previous run", settings.instance_id, freed
                    )
            except Exception as exc:  # the store may be down: serve anyway, leases then expire after LEASE_TTL
                log.warning("instance %s: could not reclaim earlier leases: %s", settings.instance_id, exc)
        # Everything imported and built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall the event loop for tens of milliseconds under load.
        gc.freeze()
        yield
        await holder.aclose()
        await aclose_shared_client()

    app = FastAPI(
        title="Grok2API",
        version="0.1.0",
        description="OpenAI- and Anthropic-compatible gateway for Grok Web accounts.",
        lifespan=lifespan,
        docs_url=None if settings.is_production else "/docs",
        openapi_url=None if settings.is_production else "/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.gateway = holder
    app.state.keys = KeyChecker(settings.api_keys, settings.admin_password, settings.cron_secret)
    _errors.install(app)
    app.router.dependencies.append(Depends(_admin_settings.fresh_settings))  # before the routers: all get it
    app.include_router(_openai.router)
    app.include_router(_responses.router)
    app.include_router(_completions.router)
    app.include_router(_anthropic.router)
    app.include_router(_admin.router)
    app.include_router(_console.router)
    app.include_router(_admin_keys.router)
    app.include_router(_admin_ledger.router)
    app.include_router(_admin_settings.router)
    app.include_router(_session.router)
    app.include_router(_cron.router)
    app.include_router(_health.router)
    app.include_router(_media.router)
    app.include_router(_images.router)
    app.include_router(_videos.router)
    app.include_router(_admin_media.router)
    _errors.document_errors(app)  # the OpenAPI schema states the error shapes routes really return
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestLedger)  # outermost: logs what the client was really answered
    log = logging.getLogger("grok2api")
    log.setLevel(logging.INFO)
    if app.state.keys.open_access and settings.is_production:
        log.info("API_KEYS is not set: clients need a store-managed key (create them in the console)")
    elif app.state.keys.open_access:
        log.warning("API_KEYS is not set: the OpenAI API accepts any client (development only)")
    return app
