"""State store: one Redis-semantics logic (``Store``) over several transports."""

from core.store.base import Script, Store, Transport

__all__ = ["Script", "Store", "Transport"]
