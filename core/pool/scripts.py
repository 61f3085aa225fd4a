"""The pool's Lua scripts, loaded once per process from ``core/pool/lua`` (``common.lua`` is prepended)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from core.store import Script


def _read(name: str) -> str:
    return resources.files("core.pool").joinpath("lua", f"{name}.lua").read_text("utf-8")


@cache
def script(name: str) -> Script:
    return Script(f"pool.{name}", _read("common") + "\n" + _read(name))
