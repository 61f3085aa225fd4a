"""Health: what is configured and reachable, without secrets.

``GET /health`` answers 200 when every configured dependency answers, 503 otherwise (platform health checks and
``grok2api smoke`` read the same JSON). The store is named by kind (``embedded``, ``redis``, ``upstash``) and
whether it answers; its address, socket path and credentials never appear (the server log has the details).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.errors import GatewayError
from core.settings import SettingsError
from core.store import describe
from core.store.base import plain_reason

router = APIRouter()
log = logging.getLogger("grok2api")


@router.head("/health", include_in_schema=False)  # uptime checkers probe with HEAD
@router.get("/health")
async def health(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    report: dict[str, Any] = {
        "status": "ok",
        "env": settings.app_env,
        "chat_transport": settings.chat_transport,
        "auth": {"api_keys": len(settings.api_keys) > 0, "admin": settings.admin_password is not None,
                 "cron": settings.cron_secret is not None},
        "public_base_url": settings.public_base_url,
    }
    try:
        gw = await request.app.state.gateway.get()
        store = await gw.store.health()
        report["store"] = {key: store[key] for key in ("ok", "transport", "latency_ms", "error")}
    except (GatewayError, SettingsError) as exc:  # texts written for clients: no addresses in them
        error = exc.message if isinstance(exc, GatewayError) else "; ".join(exc.problems)
        report["store"] = {"ok": False, **_store_kind(settings), "error": error}
    except Exception as exc:  # e.g. the embedded Redis could not start: its text names paths, so log it only
        log.warning("health: store unusable: %s: %s", type(exc).__name__, exc)
        report["store"] = {"ok": False, **_store_kind(settings),
                           "error": f"{type(exc).__name__}: {plain_reason(exc)}"}
    # Media storage (S3-compatible) is not built yet: say so rather than pretend.
    report["media"] = {"ok": True, "configured": False, "detail": "not configured"}
    if not report["store"]["ok"]:
        report["status"] = "degraded"
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


def _store_kind(settings: Any) -> dict[str, str]:
    try:
        return {"transport": describe(settings)["transport"]}
    except Exception:  # describing must never turn a health answer into a 500
        return {}


@router.head("/", include_in_schema=False)  # Claude Code sends HEAD / before every run
@router.get("/")
async def root() -> dict[str, str]:
    return {"name": "grok2api", "docs": "/docs", "health": "/health"}
