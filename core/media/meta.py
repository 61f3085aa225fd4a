"""Media records in the state store.

Keys (under the store prefix):

* ``media:<id>`` — hash: ``mime size kind created account source prompt`` (+ ``poster``: a video's poster filename);
* ``media-index`` — sorted set of ids scored by creation time (cleanup walks it oldest first);
* ``media-stats`` — hash: ``bytes`` and ``count`` of what is kept (cleanup compares ``bytes`` with the limit),
  and ``bytes:<kind>`` / ``count:<kind>`` per kind (image, video) for the admin listing.

A put is one ``EVALSHA`` (hash + index + stats together), a get one ``HGETALL``, a delete one ``EVALSHA``, a page
of the admin listing one ``EVALSHA`` (``PAGE``: index walk, records and totals together).
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
    poster: str = ""  # a video's poster image: that media item's filename (id.ext), when upstream gave one

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
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
redis.call('HINCRBY', KEYS[3], 'bytes', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'count', 1)
redis.call('HINCRBY', KEYS[3], 'bytes:' .. ARGV[3], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'count:' .. ARGV[3], 1)
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
  local rec = redis.call('HMGET', key, 'size', 'kind')
  local size = rec[1]
  if size then
    freed = freed + tonumber(size)
    n = n + 1
    redis.call('DEL', key)
    if rec[2] then
      redis.call('HINCRBY', KEYS[2], 'bytes:' .. rec[2], -tonumber(size))
      redis.call('HINCRBY', KEYS[2], 'count:' .. rec[2], -1)
    end
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


# KEYS: index, stats; ARGV: record prefix, top score ('+inf' or the cursor's), cursor id ('' = none), limit,
# kind ('' = any), scan cap → {next score, next id ('' = last page), stats hash (flat), record, record, ...}.
# Equal scores come newest-first in reverse id order, so "after the cursor" = lower score, or the same score and
# a smaller id.
PAGE = Script(
    "media_page",
    """
local top, after, limit, kind, cap = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local topn = tonumber(top)
local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], top, '-inf', 'WITHSCORES', 'LIMIT', 0, cap)
local rows, taken, last_s, last_id, next_s, next_id = {}, 0, '', '', '', ''
for i = 1, #batch, 2 do
  local id, score = batch[i], batch[i + 1]
  if after == '' or tonumber(score) < topn or id < after then
    if taken == limit then -- one more exists: the next page starts after the last entry walked
      next_s, next_id = last_s, last_id
      break
    end
    last_s, last_id = score, id
    local key = ARGV[1] .. id
    if kind == '' or redis.call('HGET', key, 'kind') == kind then
      local rec = redis.call('HGETALL', key)
      if #rec > 0 then
        table.insert(rows, rec)
        taken = taken + 1
      end
    end
  end
end
if next_id == '' and #batch == 2 * cap then next_s, next_id = last_s, last_id end -- walk cut at the cap
return {next_s, next_id, redis.call('HGETALL', KEYS[2]), unpack(rows)}
""",
)
SCAN_CAP = 1000


@dataclass(frozen=True, slots=True)
class MediaPage:
    items: list[MediaItem]
    next_cursor: str | None
    count: int
    bytes: int


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
        if item.poster:
            fields += ["poster", item.poster]
        await self.store.run(PUT, [self.prefix + item.id, self.index, self.stats_key],
                             [repr(item.created), item.size, item.kind, *fields])

    async def get(self, media_id: str) -> MediaItem | None:
        flat = await self.store.call("HGETALL", self.prefix + media_id)
        return _item(media_id, flat) if flat else None

    async def page(self, *, cursor: str | None, limit: int, kind: str | None) -> MediaPage:
        """Newest first, ``limit`` items (of ``kind`` when given) after ``cursor``: one ``EVALSHA``. A sparse kind
        may give a short (even empty) page with a ``next_cursor``: the walk reads at most ``SCAN_CAP`` entries."""
        top, after = "+inf", ""
        if cursor:
            score, sep, after = cursor.partition(":")
            try:
                float(score)
            except ValueError:
                score = ""
            if not sep or not score or not after:
                raise ValueError("not a cursor")
            top = score
        reply = await self.store.run(PAGE, [self.index, self.stats_key],
                                     [self.prefix, top, after, limit, kind or "", SCAN_CAP])
        next_score, next_id, stats, rows = reply[0], reply[1], reply[2], reply[3:]
        totals = dict(zip(stats[::2], stats[1::2], strict=False))
        suffix = f":{kind}" if kind else ""
        items = [item for row in rows if (item := _item(_id_of(row), row)) is not None]
        return MediaPage(
            items=items,
            next_cursor=f"{next_score}:{next_id}" if next_id else None,
            count=max(0, int(totals.get("count" + suffix) or 0)),
            bytes=max(0, int(totals.get("bytes" + suffix) or 0)),
        )

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


def _id_of(row: list[str]) -> str:
    record = dict(zip(row[::2], row[1::2], strict=False))
    return record.get("id", "")


def _item(media_id: str, flat: list[str]) -> MediaItem | None:
    record = dict(zip(flat[::2], flat[1::2], strict=False))
    try:
        return MediaItem(
            id=media_id, mime=record.get("mime", "application/octet-stream"), size=int(record.get("size", 0)),
            kind=record.get("kind", "image"), created=float(record.get("created", 0)),
            account_id=record.get("account", ""), source=record.get("source", ""),
            prompt=record.get("prompt", ""), poster=record.get("poster", ""),
        )
    except ValueError:
        return None
