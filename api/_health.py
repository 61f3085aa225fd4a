"""Health: what is configured and reachable, without secrets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.errors import GatewayError

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    report: dict[str, Any] = {"status": "ok", "env": settings.app_env, "chat_transport": settings.chat_transport}
    try:
        gw = await request.app.state.gateway.get()
        await gw.store.ping()
        report["store"] = {"ok": True, "transport": gw.store.transport.name}
    except GatewayError as exc:
        report["status"] = "degraded"
        report["store"] = {"ok": False, "error": exc.message}
    except Exception as exc:  # e.g. the embedded Redis could not start
        report["status"] = "degraded"
        report["store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/")
async def root() -> dict[str, str]:
    return {"name": "grok2api", "docs": "/docs", "health": "/health"}
