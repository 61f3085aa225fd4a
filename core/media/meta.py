"""Media records in the state store.

Keys (under the store prefix):

* ``media:<id>`` — hash: ``mime size kind created account source prompt``;
* ``media-index`` — sorted set of ids scored by creation time (cleanup walks it oldest first);
* ``media-stats`` — hash: ``bytes`` and ``count`` of what is kept (cleanup compares ``bytes`` with the limit).

A put is one ``EVALSHA`` (hash + index + stats together), a get one ``HGETALL``, a delete one ``EVALSHA``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.store import Script, Store

MIME_EXT = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}
MAX_PROMPT_CHARS = 2000


def extension(mime: str) -> str:
    return MIME_EXT.get(mime.split(";")[0].strip().lower(), ".bin")


@dataclass(frozen=True, slots=True)
class MediaItem:
    id: str
    mime: str
    size: int
    kind: str  # "image" | "video"
    created: float
    account_id: str
    source: str
    prompt: str

    @property
    def ext(self) -> str:
        return extension(self.mime)

    @property
    def filename(self) -> str:
        """The object's name in the bucket (after ``s3_prefix``) or in ``DATA_DIR/media/``."""
        return self.id + self.ext


PUT = Script(
    "media_put",
    """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'bytes', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'count', 1)
return 1
""",
)

# KEYS: index, stats; ARGV: record key prefix, ids...  → {records removed, bytes freed}
FORGET = Script(
    "media_forget",
    """
local freed, n = 0, 0
for i = 2, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local size = redis.call('HGET', key, 'size')
  if size then
    freed = freed + tonumber(size)
    n = n + 1
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[1], ARGV[i])
end
if n > 0 then
  redis.call('HINCRBY', KEYS[2], 'bytes', -freed)
  redis.call('HINCRBY', KEYS[2], 'count', -n)
end
return {n, freed}
""",
)

# KEYS: index, stats; ARGV: record key prefix, cutoff (epoch s), byte limit, batch size
# → flat {id, mime, id, mime, ...}: the oldest items that are past the cutoff or beyond the byte limit.
PICK = Script(
    "media_pick",
    """
local total = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local cutoff, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local batch = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #batch, 2 do
  local id, created = batch[i], tonumber(batch[i + 1])
  if created >= cutoff and total <= limit then break end
  local rec = redis.call('HMGET', ARGV[1] .. id, 'size', 'mime')
  total = total - tonumber(rec[1] or '0')
  table.insert(out, id)
  table.insert(out, rec[2] or '')
end
return out
""",
)


class MediaRecords:
    """The state-store half of the media store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.prefix = store.key("media", "")
        self.index = store.key("media-index")
        self.stats_key = store.key("media-stats")

    async def add(self, item: MediaItem) -> None:
        fields: list[Any] = [
            "id", item.id, "mime", item.mime, "size", item.size, "kind", item.kind, "created", repr(item.created),
            "account", item.account_id, "source", item.source, "prompt", item.prompt[:MAX_PROMPT_CHARS],
        ]
        await self.store.run(PUT, [self.prefix + item.id, self.index, self.stats_key],
                             [repr(item.created), item.size, *fields])

    async def get(self, media_id: str) -> MediaItem | None:
        flat = await self.store.call("HGETALL", self.prefix + media_id)
        if not flat:
            return None
        record = dict(zip(flat[::2], flat[1::2], strict=True))
        try:
            return MediaItem(
                id=media_id, mime=record.get("mime", "application/octet-stream"), size=int(record.get("size", 0)),
                kind=record.get("kind", "image"), created=float(record.get("created", 0)),
                account_id=record.get("account", ""), source=record.get("source", ""),
                prompt=record.get("prompt", ""),
            )
        except ValueError:
            return None

    async def forget(self, ids: list[str]) -> tuple[int, int]:
        if not ids:
            return 0, 0
        removed, freed = await self.store.run(FORGET, [self.index, self.stats_key], [self.prefix, *ids])
        return int(removed), int(freed)

    async def pick(self, *, cutoff: float, max_bytes: int, batch: int) -> list[tuple[str, str]]:
        flat = await self.store.run(PICK, [self.index, self.stats_key], [self.prefix, repr(cutoff), max_bytes, batch])
        return list(zip(flat[::2], flat[1::2], strict=True)) if flat else []

    async def stats(self) -> dict[str, int]:
        flat = await self.store.call("HGETALL", self.stats_key) or []
        record = dict(zip(flat[::2], flat[1::2], strict=True))
        return {"bytes": int(record.get("bytes", 0)), "count": int(record.get("count", 0))}
