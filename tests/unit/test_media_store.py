"""The media store against its real parts: records in a real Redis (the embedded server), bytes in a local
directory or in a real S3 API over HTTP (moto in server mode). The same tests run on both backends."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from core.media import MediaItem, MediaStore, MediaTooLarge, MediaUnavailable, is_media_id
from core.media.cleanup import cleanup
from core.media.store import LocalBackend, S3Backend
from core.settings import Settings
from core.store import open_store
from tests.support.s3_server import moto_s3_server

BUCKET = "g2a-media-unit"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real S3 API on loopback (moto server); fake credentials; the test creates its bucket."""
    with moto_s3_server(BUCKET) as url:
        yield url


def settings_for(kind: str, tmp_path, embedded_redis, moto_url: str | None, **extra: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": embedded_redis.url, "store_prefix": f"mu-{uuid.uuid4().hex[:8]}:", "data_dir": tmp_path,
        "media_backend": kind,
    }
    if kind == "s3":
        values.update(s3_bucket=BUCKET, s3_endpoint_url=moto_url, s3_region="us-east-1",
                      s3_prefix=f"t{uuid.uuid4().hex[:6]}/")
    values.update(extra)
    return Settings(**values)


@pytest.fixture(params=["local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make(kind: str, tmp_path, embedded_redis, request: pytest.FixtureRequest):
    moto_url = request.getfixturevalue("moto_s3") if kind == "s3" else None

    def build(**extra: object) -> MediaStore:
        settings = settings_for(kind, tmp_path, embedded_redis, moto_url, **extra)
        store = open_store(settings)
        return MediaStore.from_settings(settings, store, environ={})

    return build


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


async def test_put_get_read_delete(make, kind: str) -> None:
    media = make()
    item = await media.put(JPEG, mime="image/jpeg", account_id="acc1", source="chat", prompt="a cat")
    assert isinstance(item, MediaItem) and is_media_id(item.id) and len(item.id) >= 22
    assert (item.mime, item.size, item.kind, item.source, item.account_id) == ("image/jpeg", len(JPEG), "image",
                                                                                 "chat", "acc1")
    assert media.url(item, base_url="https://gw.example/") == f"https://gw.example/media/{item.id}.jpg"
    other = MediaStore(media.backend, media.records, max_bytes=media.max_bytes)  # a fresh instance: no cache
    assert await other.get(item.id) == item
    assert await other.read(item) == JPEG
    assert await other.get("A" * 24) is None and await other.get("../../etc/passwd") is None
    assert await other.delete(item.id) is True
    assert await other.get(item.id) is None  # (another instance may hold it in its cache for CACHE_TTL)
    assert await other.read(item) is None
    assert await other.delete(item.id) is False
    assert await media.records.stats() == {"bytes": 0, "count": 0}


async def test_store_commands_per_put_and_get(make) -> None:
    media = make()
    store = media.records.store
    await media.put(b"warm", mime="image/png")  # loads the put script once (EVALSHA → EVAL on a fresh server)
    before = store.commands_sent
    item = await media.put(JPEG, mime="image/jpeg")
    assert store.commands_sent - before == 1  # one EVALSHA: record + index + stats
    fresh = MediaStore(media.backend, media.records, max_bytes=media.max_bytes)
    before = store.commands_sent
    assert await fresh.get(item.id) == item
    assert store.commands_sent - before == 1  # one HGETALL
    assert await fresh.get(item.id) == item
    assert store.commands_sent - before == 1  # then cached in-process (items are immutable)


async def test_ids_are_unguessable_and_distinct(make) -> None:
    media = make()
    ids = {(await media.put(b"x", mime="image/png")).id for _ in range(20)}
    assert len(ids) == 20 and all(is_media_id(i) and len(i) == 24 for i in ids)


async def test_too_large_is_refused(make) -> None:
    media = make(media_max_bytes=1000)
    with pytest.raises(MediaTooLarge) as err:
        await media.put(b"x" * 1001, mime="image/png")
    assert err.value.status == 413 and "MEDIA_MAX_BYTES" in err.value.message

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    with pytest.raises(MediaTooLarge):
        await media.put_stream(chunks(), mime="video/mp4")
    assert await media.records.stats() == {"bytes": 0, "count": 0}


async def test_put_stream_large_object(make, kind: str) -> None:
    media = make()
    chunk = os.urandom(1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(11):  # 11 MiB: on S3 two multipart parts (8 MiB + 3 MiB)
            yield bytes([n]) + chunk[1:]

    item = await media.put_stream(chunks(), mime="video/mp4", prompt="waves")
    assert item.kind == "video" and item.size == 11 * 1024 * 1024 and item.filename.endswith(".mp4")
    data = await media.read(item)
    assert data is not None and len(data) == item.size and data[::1024 * 1024] == bytes(range(11))


async def test_data_url_only_when_small(make) -> None:
    media = make()
    item = await media.put(b"\x89PNG small", mime="image/png")
    assert await media.data_url(item, max_bytes=1024) == "data:image/png;base64,iVBORyBzbWFsbA=="
    assert await media.data_url(item, max_bytes=4) is None


async def test_cleanup_by_age_then_by_total(make) -> None:
    media = make()
    items = [await media.put(bytes([n]) * 1000, mime="image/png") for n in range(6)]
    now = time.time()
    # By age: everything is "8 days old" at now + 8 days with 7 days' retention ... except nothing newer exists.
    result = await cleanup(media, retention_days=7, max_total_bytes=10**9, now=now)
    assert result["deleted"] == 0 and result["done"]
    # By total: keep at most 3500 bytes → the three oldest go, oldest first.
    result = await cleanup(media, retention_days=7, max_total_bytes=3500, now=now)
    assert result["deleted"] == 3 and result["freed_bytes"] == 3000
    fresh = MediaStore(media.backend, media.records, max_bytes=media.max_bytes)
    assert [await fresh.get(i.id) is not None for i in items] == [False] * 3 + [True] * 3
    assert [await fresh.read(i) is not None for i in items] == [False] * 3 + [True] * 3  # objects too
    # Resumable, bounded batches: by age, two per batch, the rest left for the next tick.
    result = await cleanup(media, retention_days=7, max_total_bytes=10**9, now=now + 8 * 86400, batch=2)
    assert result["deleted"] == 3 and result["batches"] == 2 and result["done"]
    assert await media.records.stats() == {"bytes": 0, "count": 0}


async def test_cleanup_resumes_across_ticks(make, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.media import cleanup as module

    media = make()
    for n in range(5):
        await media.put(bytes([n]) * 10, mime="image/png")
    monkeypatch.setattr(module, "MAX_BATCHES", 1)
    later = time.time() + 30 * 86400
    first = await cleanup(media, retention_days=7, max_total_bytes=10**9, now=later, batch=2)
    assert first["deleted"] == 2 and not first["done"]
    second = await cleanup(media, retention_days=7, max_total_bytes=10**9, now=later, batch=2)
    third = await cleanup(media, retention_days=7, max_total_bytes=10**9, now=later, batch=2)
    assert second["deleted"] + third["deleted"] == 3 and third["done"]


async def test_boto3_runs_off_the_event_loop(make, kind: str) -> None:
    """Every backend call runs in a worker thread: a ticker on the loop keeps ticking while they run."""
    media = make()
    calls: list[str] = []
    loop_thread = threading.get_ident()
    if kind == "s3":
        client = await media.backend.client()
        client.meta.events.register("before-send.s3.*", lambda **_: calls.append(
            "loop" if threading.get_ident() == loop_thread else "thread"))
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    items = await asyncio.gather(*(media.put(os.urandom(200_000), mime="image/jpeg") for _ in range(16)))
    await asyncio.gather(*(media.read(item) for item in items))
    stop.set()
    await task
    assert max(gaps) < 0.25, max(gaps)
    if kind == "s3":
        assert calls and set(calls) == {"thread"}


def test_local_media_refused_on_serverless(tmp_path, embedded_redis) -> None:
    settings = settings_for("auto", tmp_path, embedded_redis, None)
    for marker in ("VERCEL", "AWS_LAMBDA_FUNCTION_NAME"):
        media = MediaStore.from_settings(settings, open_store(settings), environ={marker: "1"})
        with pytest.raises(MediaUnavailable) as err:
            asyncio.run(media.put(b"x", mime="image/png"))
        assert "S3_BUCKET" in err.value.message and err.value.status == 503
    assert isinstance(MediaStore.from_settings(settings, open_store(settings), environ={}).backend, LocalBackend)
    s3 = settings.model_copy(update={"s3_bucket": "b"})
    assert isinstance(MediaStore.from_settings(s3, open_store(s3), environ={"VERCEL": "1"}).backend, S3Backend)


async def test_presigned_and_public_links(moto_s3: str, tmp_path, embedded_redis) -> None:
    settings = settings_for("s3", tmp_path, embedded_redis, moto_s3)
    media = MediaStore.from_settings(settings, open_store(settings), environ={})
    item = await media.put(JPEG, mime="image/jpeg")
    url, public = await media.backend.link(item.filename)
    assert not public and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url)).content == JPEG
        head_url, _ = await media.backend.link(item.filename, method="HEAD")
        head = await plain.head(head_url)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(JPEG)
    public_settings = settings.model_copy(update={"media_public_base_url": f"{moto_s3}/{BUCKET}/"})
    url, public = await S3Backend(public_settings).link(item.filename)
    assert public and url == f"{moto_s3}/{BUCKET}/{settings.s3_prefix}{item.filename}"


def test_building_the_store_loads_no_boto3() -> None:
    """Cold starts stay fast: even an S3-configured media store imports boto3 only on its first S3 call."""
    import subprocess
    import sys

    code = (
        "import sys; from core.settings import Settings; from core.store import open_store; "
        "from core.media import MediaStore; "
        "s = Settings(redis_url='redis://127.0.0.1:1', s3_bucket='b'); "
        "m = MediaStore.from_settings(s, open_store(s), environ={}); "
        "print(type(m.backend).__name__, 'boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["S3Backend", "False", "False"]


async def test_bucket_credentials_of_their_own(moto_s3: str, tmp_path, embedded_redis) -> None:
    """``S3_ACCESS_KEY_ID``/``S3_SECRET_ACCESS_KEY`` sign the bucket's requests instead of the ``AWS_*`` chain (on
    Lambda the latter is the function's role): puts work and links carry the bucket's key."""
    settings = settings_for("s3", tmp_path, embedded_redis, moto_s3, s3_access_key_id="R2KEYEXAMPLE",
                            s3_secret_access_key="r2-secret")
    media = MediaStore.from_settings(settings, open_store(settings), environ={})
    item = await media.put(JPEG, mime="image/jpeg")
    url, _ = await media.backend.link(item.filename)
    assert "X-Amz-Credential=R2KEYEXAMPLE%2F" in url and os.environ["AWS_ACCESS_KEY_ID"] not in url
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url)).content == JPEG
