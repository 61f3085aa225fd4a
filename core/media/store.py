"""The media store: object bytes in a backend (local directory or S3-compatible bucket), records in the state store.

``MediaStore.from_settings`` does no I/O and imports no boto3: the S3 client is built (in a worker thread) on the
first call that needs it, so cold starts stay fast. Every boto3 call runs in ``asyncio.to_thread`` with botocore
connect/read timeouts and at most 2 attempts, so a slow bucket never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from core.errors import GatewayError, PayloadTooLarge
from core.ledger import note_media
from core.media.meta import MediaItem, MediaRecords, extension
from core.settings import Settings
from core.store import Store

log = logging.getLogger("grok2api")

# Set by the platforms themselves (as in core/store): no lasting disk there, so no local media either.
SERVERLESS_MARKERS = {"VERCEL": "Vercel", "AWS_LAMBDA_FUNCTION_NAME": "AWS Lambda"}
PART_BYTES = 8 * 1024 * 1024  # multipart part size for put_stream (S3 minimum is 5 MiB)
S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT, S3_ATTEMPTS = 5.0, 30.0, 2
CACHE_SIZE, CACHE_TTL = 512, 60.0  # a delete elsewhere is seen here within CACHE_TTL


class MediaUnavailable(GatewayError):
    """The media store is not configured for this platform, or its backend failed."""

    status = 503
    type = "service_unavailable"
    code = "media_unavailable"


class MediaTooLarge(PayloadTooLarge):
    code = "media_too_large"


def new_id() -> str:
    """144 random bits, URL-safe (``[A-Za-z0-9_-]{24}``)."""
    return secrets.token_urlsafe(18)


def is_media_id(value: str) -> bool:
    return 16 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value) and value.isascii()


class LocalBackend:
    """Objects as files under ``DATA_DIR/media/`` (written to a temporary file, then renamed)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, filename: str) -> Path:
        return self.root / filename

    def _temp(self) -> tuple[int, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".part-")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a web server in front of the directory may need to read it
        return fd, tmp

    async def write(self, filename: str, data: bytes, mime: str) -> None:
        def write() -> None:
            fd, tmp = self._temp()
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, self.path(filename))

        await asyncio.to_thread(write)

    async def write_stream(self, filename: str, chunks: AsyncIterator[bytes], mime: str, max_bytes: int) -> int:
        fd, tmp = await asyncio.to_thread(self._temp)
        out = os.fdopen(fd, "wb")
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(out.close)
            await asyncio.to_thread(os.replace, tmp, self.path(filename))
        except BaseException:
            out.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return size

    async def read(self, filename: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path(filename).read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, filenames: list[str]) -> None:
        def delete() -> None:
            for filename in filenames:
                self.path(filename).unlink(missing_ok=True)

        await asyncio.to_thread(delete)


class S3Backend:
    """Objects in an S3-compatible bucket under ``s3_prefix``."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        assert settings.s3_bucket
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.endpoint_url = settings.s3_endpoint_url
        self.region = settings.s3_region
        self.credentials = ((settings.s3_access_key_id, settings.s3_secret_access_key)
                            if settings.s3_access_key_id and settings.s3_secret_access_key else None)
        self.public_base_url = (settings.media_public_base_url or "").rstrip("/") or None
        self.presign_ttl = max(1, min(int(settings.media_presign_ttl), 7 * 86400))  # SigV4 allows 7 days at most
        self._client: Any = None
        self._lock = asyncio.Lock()

    def key(self, filename: str) -> str:
        return self.prefix + filename

    def _build(self) -> Any:
        import boto3  # only here: a gateway without S3 never loads boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT, read_timeout=S3_READ_TIMEOUT,
            retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"}, signature_version="s3v4",
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        keys = {}
        if self.credentials is not None:  # else boto3's chain: AWS_* variables, profile, the function's role
            keys = {"aws_access_key_id": self.credentials[0], "aws_secret_access_key": self.credentials[1]}
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region or "us-east-1", config=config, **keys
        )

    async def client(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await asyncio.to_thread(self._build)
        return self._client

    async def _call(self, method: str, **kwargs: Any) -> Any:
        client = await self.client()
        try:
            return await asyncio.to_thread(getattr(client, method), **kwargs)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(kwargs.get("Key")) from exc
            raise MediaUnavailable(f"media bucket {self.bucket}: {method} failed: {type(exc).__name__}: {exc}") from exc

    async def write(self, filename: str, data: bytes, mime: str) -> None:
        await self._call("put_object", Bucket=self.bucket, Key=self.key(filename), Body=data, ContentType=mime,
                         CacheControl="public, max-age=31536000, immutable")

    async def write_stream(self, filename: str, chunks: AsyncIterator[bytes], mime: str, max_bytes: int) -> int:
        """Parts of ``PART_BYTES`` as they fill: at most one part is in memory; a small object is one PUT."""
        key, buffer, size, upload_id, parts = self.key(filename), bytearray(), 0, None, []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        created = await self._call("create_multipart_upload", Bucket=self.bucket, Key=key,
                                                   ContentType=mime, CacheControl="public, max-age=31536000, immutable")
                        upload_id = created["UploadId"]
                    part = await self._call("upload_part", Bucket=self.bucket, Key=key, UploadId=upload_id,
                                            PartNumber=len(parts) + 1, Body=bytes(buffer))
                    parts.append({"PartNumber": len(parts) + 1, "ETag": part["ETag"]})
                    buffer.clear()
            if upload_id is None:
                await self.write(filename, bytes(buffer), mime)
                return size
            if buffer:
                part = await self._call("upload_part", Bucket=self.bucket, Key=key, UploadId=upload_id,
                                        PartNumber=len(parts) + 1, Body=bytes(buffer))
                parts.append({"PartNumber": len(parts) + 1, "ETag": part["ETag"]})
            await self._call("complete_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id,
                             MultipartUpload={"Parts": parts})
            return size
        except BaseException:
            if upload_id is not None:
                try:
                    await self._call("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id)
                except Exception as exc:  # the lifecycle rule (README) reaps abandoned uploads
                    log.warning("could not abort multipart upload of %s: %s", key, exc)
            raise

    async def read(self, filename: str) -> bytes | None:
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=self.key(filename))
        except FileNotFoundError:
            return None
        return await asyncio.to_thread(response["Body"].read)

    async def delete(self, filenames: list[str]) -> None:
        for start in range(0, len(filenames), 1000):
            objects = [{"Key": self.key(name)} for name in filenames[start:start + 1000]]
            await self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    async def link(self, filename: str, *, method: Literal["GET", "HEAD"] = "GET") -> tuple[str, bool]:
        """Where a client gets the object: (URL, public?). Public base URL when set, else a presigned URL."""
        if self.public_base_url:
            return f"{self.public_base_url}/{self.key(filename)}", True
        client = await self.client()
        operation = "head_object" if method == "HEAD" else "get_object"
        url = client.generate_presigned_url(  # local signing, no network
            operation, Params={"Bucket": self.bucket, "Key": self.key(filename)}, ExpiresIn=self.presign_ttl
        )
        return url, False


class RefusedBackend:
    """Local media asked for where no disk lasts (Vercel, Lambda): every use is a clear configuration error."""

    name = "refused"

    def __init__(self, message: str) -> None:
        self.message = message

    def __getattr__(self, name: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise MediaUnavailable(self.message)

        return refuse


Backend = LocalBackend | S3Backend | RefusedBackend


def too_large(limit: int) -> MediaTooLarge:
    return MediaTooLarge(f"media object larger than MEDIA_MAX_BYTES ({limit} bytes)", param="media")


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class MediaStore:
    """One per process (``Gateway.media``). Items are immutable, so ``get`` keeps a small in-process cache."""

    def __init__(self, backend: Backend, records: MediaRecords, *, max_bytes: int) -> None:
        self.backend = backend
        self.records = records
        self.max_bytes = max_bytes
        self._cache: OrderedDict[str, tuple[float, MediaItem]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, *, environ: dict[str, str] | None = None) -> MediaStore:
        """No I/O, no boto3 import. Local media on Vercel/Lambda gives a store that refuses every use."""
        return cls(backend_for(settings, environ), MediaRecords(store), max_bytes=settings.media_max_bytes)

    def check_available(self) -> None:
        """Raise ``MediaUnavailable`` now when every use would (no bucket on a serverless platform): callers about
        to spend upstream quota on media ask first."""
        if isinstance(self.backend, RefusedBackend):
            raise MediaUnavailable(self.backend.message)

    # -- writing ----------------------------------------------------------------------------------------------

    async def put(
        self, data: bytes, *, mime: str, kind: str = "image", account_id: str = "", source: str = "", prompt: str = ""
    ) -> MediaItem:
        """Store ``data``: one object write, then one store command (the record)."""
        if len(data) > self.max_bytes:
            raise too_large(self.max_bytes)
        item = MediaItem(new_id(), _mime(mime), len(data), kind, time.time(), account_id, source, prompt)
        await self.backend.write(item.filename, data, item.mime)
        await self.records.add(item)
        self._remember(item)
        note_media(item.id)  # the request's log entry lists what it produced
        return item

    async def put_stream(
        self, chunks: AsyncIterator[bytes], *, mime: str, kind: str = "video", account_id: str = "",
        source: str = "", prompt: str = "", poster: str = "",
    ) -> MediaItem:
        """Store a large object chunk by chunk (a temporary file, or S3 multipart parts); never all in memory.
        ``poster``: a video's poster image, stored first (the admin listing links it)."""
        media_id, mime = new_id(), _mime(mime)
        size = await self.backend.write_stream(media_id + extension(mime), chunks, mime, self.max_bytes)
        item = MediaItem(media_id, mime, size, kind, time.time(), account_id, source, prompt, poster)
        await self.records.add(item)
        self._remember(item)
        note_media(item.id)  # the request's log entry lists what it produced
        return item

    # -- reading ----------------------------------------------------------------------------------------------

    async def get(self, media_id: str) -> MediaItem | None:
        """The item's record: one ``HGETALL``, or none when this instance saw it recently."""
        if not is_media_id(media_id):
            return None
        cached = self._cache.get(media_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL:
            return cached[1]
        item = await self.records.get(media_id)
        if item is not None:
            self._remember(item)
        return item

    async def read(self, item: MediaItem) -> bytes | None:
        return await self.backend.read(item.filename)

    def url(self, item: MediaItem, *, base_url: str) -> str:
        """The absolute gateway link: ``<base_url>/media/<id>.<ext>``."""
        return f"{base_url.rstrip('/')}/media/{item.filename}"

    async def data_url(self, item: MediaItem, *, max_bytes: int) -> str | None:
        """A base64 data URL when the object is at most ``max_bytes``, else None."""
        if item.size > max_bytes:
            return None
        data = await self.read(item)
        return None if data is None else data_url(data, item.mime)

    # -- deleting ---------------------------------------------------------------------------------------------

    async def delete(self, media_id: str) -> bool:
        """Object and record; a video takes its poster with it (the poster is part of it, never shown alone)."""
        item = await self.get(media_id)
        self._cache.pop(media_id, None)
        if item is None:
            return False
        filenames, ids = [item.filename], [media_id]
        if item.poster:
            poster_id = item.poster.partition(".")[0]
            self._cache.pop(poster_id, None)
            filenames.append(item.poster)
            ids.append(poster_id)
        await self.backend.delete(filenames)
        removed, _ = await self.records.forget(ids)
        return removed > 0

    def _remember(self, item: MediaItem) -> None:
        self._cache[item.id] = (time.monotonic(), item)
        self._cache.move_to_end(item.id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _mime(mime: str) -> str:
    return (mime or "application/octet-stream").split(";")[0].strip().lower() or "application/octet-stream"


def backend_kind(settings: Settings) -> str:
    if settings.media_backend == "auto":
        return "s3" if settings.s3_bucket else "local"
    return settings.media_backend


def backend_for(settings: Settings, environ: dict[str, str] | None = None) -> Backend:
    kind = backend_kind(settings)
    if kind == "s3":
        if not settings.s3_bucket:
            return RefusedBackend("MEDIA_BACKEND=s3 needs S3_BUCKET (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                                  "or S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY).")
        return S3Backend(settings)
    env = os.environ if environ is None else environ
    platform = next((name for marker, name in SERVERLESS_MARKERS.items() if env.get(marker)), None)
    if platform:
        return RefusedBackend(
            f"S3_BUCKET: required for media on {platform}: local media needs a writable, lasting disk and large "
            "objects must not pass through the function. Set S3_BUCKET (+ S3_ENDPOINT_URL, S3_ACCESS_KEY_ID and "
            "S3_SECRET_ACCESS_KEY for R2/MinIO/B2; AWS S3 uses the function's role) and optionally "
            "MEDIA_PUBLIC_BASE_URL."
        )
    return LocalBackend(Path(settings.data_dir) / "media")
