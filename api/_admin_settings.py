"""Run-time settings through the admin API, and the app-wide dependency that keeps them fresh.

``GET /admin/settings`` / ``PUT /admin/settings`` (admin), ``GET /admin/public`` (no auth: the playground page
asks whether it may run). The storage, caching and validation live in ``core/runtime_settings.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api._deps import admin_auth, gateway
from core import runtime_settings
from core.gateway import Gateway

router = APIRouter(prefix="/admin")
_SKIPPED = ("/health",)  # polled by uptime checkers: must not spend a store command on settings


async def fresh_settings(request: Request) -> None:
    """App-wide dependency (runs before every route's own): the gateway's run-time settings, at most
    SETTINGS_CACHE_TTL old. Costs 0 store commands while fresh, else 1 (see ``runtime_settings.ensure_fresh``);
    never fails a request (a store failure keeps the cached settings)."""
    if request.url.path in _SKIPPED:
        return
    try:
        gw = await request.app.state.gateway.get()
    except Exception:  # a gateway that cannot be built: the route itself reports why
        return
    runtime_settings.attach(gw)
    await runtime_settings.ensure_fresh(gw.store)


async def _fresh(request: Request) -> Gateway:
    gw = await gateway(request)
    runtime_settings.attach(gw)
    await runtime_settings.ensure_fresh(gw.store)  # 0 commands when fresh_settings already ran
    return gw


class SettingsUpdate(BaseModel):
    values: dict[str, Any] = Field(description="NAME → value, or null to go back to the environment's value")


@router.get("/settings", dependencies=[Depends(admin_auth)])
async def get_settings(gw: Gateway = Depends(_fresh)) -> dict[str, Any]:
    return runtime_settings.describe(gw.store)


@router.put("/settings", dependencies=[Depends(admin_auth)])
async def put_settings(body: SettingsUpdate, gw: Gateway = Depends(_fresh)) -> dict[str, Any]:
    return await runtime_settings.write(gw.store, body.values)


@router.get("/public")
async def public_mode(gw: Gateway = Depends(_fresh)) -> dict[str, bool]:
    settings = gw.settings
    return {"enabled": settings.public_playground, "key_required": bool(settings.public_key)}
