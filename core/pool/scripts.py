"""The pool's Lua scripts, loaded once per process from ``core/pool/lua`` (``common.lua`` is prepended; settle also
gets the ledger's ``apply_ledger``, so a request's log entry and counters are written in its settle step)."""

from __future__ import annotations

from functools import cache

from core.ledger.writer import APPLY_LUA
from core.store import Script, lua_source


def _read(name: str) -> str:
    return lua_source("core.pool", name)


@cache
def script(name: str) -> Script:
    extra = APPLY_LUA + "\n" if name == "settle" else ""
    return Script(f"pool.{name}", _read("common") + "\n" + extra + _read(name))
