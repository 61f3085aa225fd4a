"""State store: one Redis-semantics logic (``Store``) over several transports.

``open_store(settings)`` picks the transport:

1. ``UPSTASH_REDIS_REST_URL`` + ``_TOKEN`` (or Vercel's ``KV_REST_API_URL`` + ``_TOKEN``): Upstash REST;
2. else ``REDIS_URL``: any Redis through redis-py;
3. else the embedded redis-server under ``<DATA_DIR>/redis/`` (refused on Vercel/Lambda, where it cannot live).

Transports are imported lazily so a serverless cold start only loads the client it uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from core.settings import Settings, SettingsError
from core.store.base import CommandError, Script, ScriptMissing, Store, Transport, lua_source
from core.store.urls import mask_url

__all__ = [
    "CommandError",
    "Script",
    "ScriptMissing",
    "Store",
    "Transport",
    "describe",
    "lua_source",
    "open_store",
    "open_transport",
]

# Set by the platforms themselves; their filesystems are read-only or wiped, so no embedded server there.
_SERVERLESS_MARKERS = {"VERCEL": "Vercel", "AWS_LAMBDA_FUNCTION_NAME": "AWS Lambda"}


def open_store(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Store:
    """The store the settings ask for. No I/O happens here; the first command connects (or starts Redis)."""
    transport = open_transport(settings, environ=environ)
    return Store(transport, prefix=settings.store_prefix, timeout=settings.store_timeout)


def open_transport(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Transport:
    kind = describe(settings)["transport"]
    if kind == "upstash":
        from core.store.upstash_transport import UpstashTransport

        assert settings.upstash_url and settings.upstash_token  # Settings.check enforces the pair
        return UpstashTransport.from_url(
            settings.upstash_url, settings.upstash_token, timeout=settings.store_timeout
        )
    if kind == "redis":
        from core.store.redis_transport import RedisTransport

        assert settings.redis_url
        return RedisTransport.from_url(settings.redis_url, timeout=settings.store_timeout)

    env = os.environ if environ is None else environ
    platform = next((name for marker, name in _SERVERLESS_MARKERS.items() if env.get(marker)), None)
    if platform:
        raise SettingsError(
            [
                f"UPSTASH_REDIS_REST_URL: required on {platform}: the embedded Redis needs a writable, "
                "lasting disk. Set UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN (or KV_REST_API_URL + "
                "KV_REST_API_TOKEN), or REDIS_URL."
            ]
        )
    from core.store.embedded import EmbeddedRedis, EmbeddedTransport

    return EmbeddedTransport(EmbeddedRedis(settings.data_dir), timeout=settings.store_timeout)


def describe(settings: Settings) -> dict[str, str]:
    """Which transport ``open_store`` would use and where, safe to log or show (no secrets)."""
    if settings.upstash_url:
        return {"transport": "upstash", "target": mask_url(settings.upstash_url)}
    if settings.redis_url:
        return {"transport": "redis", "target": mask_url(settings.redis_url)}
    from core.store.embedded import EmbeddedRedis

    return {"transport": "embedded", "target": EmbeddedRedis(settings.data_dir).url}
