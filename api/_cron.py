"""Cron entry point over HTTP. Vercel Cron sends ``GET`` with ``Authorization: Bearer $CRON_SECRET``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api._deps import cron_auth, gateway
from core.cron import run_cron
from core.gateway import Gateway

router = APIRouter(prefix="/cron", dependencies=[Depends(cron_auth)])


@router.api_route("/tick", methods=["GET", "POST"])
async def tick(budget: float = 20.0, gw: Gateway = Depends(gateway)) -> dict[str, Any]:
    return await run_cron(gw, budget=min(max(budget, 1.0), 250.0))
