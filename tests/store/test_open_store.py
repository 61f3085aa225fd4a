"""Choosing the transport from settings, and describing it without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, SettingsError
from core.store import describe, open_store
from core.store.urls import mask_url


def redis_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / "redis"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"DATA_DIR": str(tmp_path), **env})


async def test_upstash_wins_over_redis_url(tmp_path: Path) -> None:
    chosen = settings(
        tmp_path,
        KV_REST_API_URL="https://eu1-cool-cat.upstash.io",
        KV_REST_API_TOKEN="s3cret-token",
        REDIS_URL="redis://:pw@localhost:6379",
    )
    store = open_store(chosen)
    assert store.transport.name == "upstash"
    assert describe(chosen) == {"transport": "upstash", "target": "https://eu1-cool-cat.upstash.io"}
    assert "s3cret" not in repr(store.describe())
    await store.close()


async def test_redis_url_then_embedded(tmp_path: Path) -> None:
    chosen = settings(tmp_path, REDIS_URL="rediss://default:pw@render-kv:6380/0", STORE_PREFIX="t:")
    store = open_store(chosen)
    assert store.transport.name == "redis" and store.prefix == "t:"
    assert store.describe()["target"] == "rediss://default:***@render-kv:6380/0"
    await store.close()

    store = open_store(settings(tmp_path, STORE_TIMEOUT="0.5"))
    assert store.transport.name == "embedded" and store.timeout == 0.5
    assert store.describe()["target"] == f"unix://{redis_dir(tmp_path)}/redis.sock"
    await store.close()
    assert not redis_dir(tmp_path).exists()  # opening does no I/O; the first command starts Redis


@pytest.mark.parametrize("marker", ["VERCEL", "AWS_LAMBDA_FUNCTION_NAME"])
def test_embedded_is_refused_on_serverless(tmp_path: Path, marker: str) -> None:
    with pytest.raises(SettingsError, match="UPSTASH_REDIS_REST_URL"):
        open_store(settings(tmp_path), environ={marker: "1"})


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:secret@host:6379/0?password=x", "redis://user:***@host:6379/0"),
        ("rediss://:pw@h.example.com:6380", "rediss://:***@h.example.com:6380"),
        ("redis://legacy-password-only@h", "redis://***@h"),
        ("redis://localhost", "redis://localhost"),
        ("unix:///tmp/r.sock?password=x", "unix:///tmp/r.sock"),
        ("redis://[::1]:6379/2", "redis://[::1]:6379/2"),
        ("not a url", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
