"""Media cleanup, one bounded slice per cron tick.

The oldest items go first while they are older than ``MEDIA_RETENTION_DAYS`` or the total kept exceeds
``MEDIA_TOTAL_BYTES``. Objects are deleted before their records, so an interrupted tick leaves records the next
tick finds again (never orphaned objects it could not find). Each batch: one ``EVALSHA`` to pick, one object
delete call (S3 ``DeleteObjects`` / unlinks), one ``EVALSHA`` to forget.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from core.media.meta import extension
from core.media.store import MediaStore, RefusedBackend

BATCH = 200
MAX_BATCHES = 10


@dataclass
class CleanupProgress:
    deleted: int = 0
    freed_bytes: int = 0
    batches: int = 0
    done: bool = True  # nothing left to delete as of this tick
    error: str | None = None


async def cleanup(
    media: MediaStore, *, retention_days: float, max_total_bytes: int, budget: float = 10.0,
    now: float | None = None, batch: int = BATCH,
) -> dict[str, Any]:
    progress = CleanupProgress()
    if isinstance(media.backend, RefusedBackend):
        return asdict(progress)
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    deadline = time.monotonic() + budget
    while progress.batches < MAX_BATCHES:
        picked = await media.records.pick(cutoff=cutoff, max_bytes=max_total_bytes, batch=batch)
        if not picked:
            progress.done = True
            break
        progress.batches += 1
        await media.backend.delete([media_id + extension(mime) for media_id, mime in picked])
        ids = [media_id for media_id, _ in picked]
        removed, freed = await media.records.forget(ids)
        for media_id in ids:
            media._cache.pop(media_id, None)
        progress.deleted += removed
        progress.freed_bytes += freed
        progress.done = len(picked) < batch
        if progress.done or time.monotonic() >= deadline:
            break
    return asdict(progress)
