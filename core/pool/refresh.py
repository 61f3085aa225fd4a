"""Bulk quota refresh for cron endpoints and the admin "refresh" button.

A serverless invocation has a hard time limit, so a refresh is a *job* whose progress lives in the store:
each ``run`` call works until its time budget is spent, records where it stopped, and the next call (the next
cron tick, or the admin client polling) carries on. Overlapping invocations do not double up: a job is run by
one holder of its short-lived lock at a time.

The upstream calls are not made here: ``fetch(account_id, token)`` (supplied by the Grok client) returns
``(chat windows, media windows)`` or raises ``UpstreamError``, whose failure rules are then applied to the account.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import UpstreamError
from core.pool.pool import TokenPool
from core.pool.quota import QuotaWindow

Windows = Mapping[str, QuotaWindow]
Fetch = Callable[[str, str], Awaitable[tuple[Windows, Windows | None]]]

JOB_TTL = 86400  # progress is kept a day after the last change


@dataclass(frozen=True, slots=True)
class RefreshProgress:
    job_id: str
    status: str  # running (more to do) | done
    total: int
    done: int  # accounts refreshed
    errors: int  # accounts whose refresh failed (they stay stale and are retried by a later job)
    last_error: str
    started_at: float
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.status == "done"


class QuotaRefresher:
    def __init__(
        self,
        pool: TokenPool,
        fetch: Fetch,
        *,
        concurrency: int = 8,
        batch: int = 32,
        fetch_timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.store = pool.store
        self.fetch = fetch
        self.concurrency = concurrency
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self._clock = clock  # monotonic, for the time budget only; timestamps come from the pool's clock
        self._current = self.store.key("refresh", "current")

    async def start(self, ids: Sequence[str] | None = None) -> RefreshProgress:
        """Create a job: the given accounts (refreshed even when fresh), or every stale account."""
        job_id = secrets.token_hex(6)
        if ids is None:
            stale, _ = await self.pool.stale_accounts(limit=10**9, scan=10**9)
            total, fields = len(stale), {}
        else:
            total, fields = len(ids), {"ids": json.dumps(list(ids))}
        now = self.pool.now()
        fields |= {"status": "running", "total": total, "done": 0, "errors": 0, "cursor": 0, "last_error": ""}
        fields |= {"started_at": now, "updated_at": now}
        key = self.pool.keys.refresh_job(job_id)
        await self.store.pipeline(
            [
                ["HSET", key, *[str(x) for kv in fields.items() for x in kv]],
                ["EXPIRE", key, JOB_TTL],
                *([["SET", self._current, job_id, "EX", JOB_TTL]] if ids is None else []),
            ]
        )
        progress = await self.progress(job_id)
        assert progress is not None
        return progress

    async def progress(self, job_id: str) -> RefreshProgress | None:
        fields = _fields(await self.store.call("HGETALL", self.pool.keys.refresh_job(job_id)))
        return _progress(job_id, fields) if fields else None

    async def run(self, job_id: str | None = None, *, budget: float = 25.0) -> RefreshProgress:
        """Work on ``job_id`` (default: the unfinished cron job, else a new one) for at most ``budget`` seconds.

        Fetches start only while budget remains and each is bounded by what is left (and ``fetch_timeout``),
        so the call returns in about ``budget`` seconds whatever upstream does.
        """
        deadline = self._clock() + budget
        if job_id is None:
            job_id = await self.store.call("GET", self._current)
            current = await self.progress(job_id) if job_id else None
            if current is None or current.finished:
                job_id = (await self.start()).job_id
        assert job_id is not None
        key = self.pool.keys.refresh_job(job_id)
        lock = key + ":lock"
        if not await self.store.call("SET", lock, "1", "NX", "EX", max(int(budget + self.fetch_timeout), 1)):
            progress = await self.progress(job_id)  # another invocation is on it
            if progress is None:
                raise LookupError(f"no refresh job {job_id!r}")
            return progress
        try:
            fields = _fields(await self.store.call("HGETALL", key))
            if not fields:
                raise LookupError(f"no refresh job {job_id!r}")
            explicit = json.loads(fields["ids"]) if fields.get("ids") else None
            failed = set(json.loads(fields.get("failed") or "[]"))
            cursor = int(fields.get("cursor") or 0)
            while fields.get("status") != "done" and self._clock() < deadline:
                if explicit is not None:
                    ids = explicit[cursor : cursor + self.batch]
                    next_cursor = cursor + len(ids) if cursor + len(ids) < len(explicit) else 0
                else:
                    ids, next_cursor = await self.pool.stale_accounts(limit=self.batch, cursor=cursor)
                    ids = [i for i in ids if i not in failed]  # still stale, but this job already tried them
                done, errors, last_error, complete, settled = await self._refresh(ids, deadline)
                # An interrupted batch is resumed from its start, minus what this run settled (each account is
                # fetched and counted once per job): refreshed accounts are no longer stale, so a stale scan
                # skips them by itself, failed ones are remembered; an explicit list drops both.
                resume: dict[str, list[str]] = {}
                if not complete and explicit is not None:
                    left = [i for i in ids if i not in settled]
                    explicit = explicit[:cursor] + left + explicit[cursor + len(ids) :]
                    resume["ids"] = explicit
                elif not complete and not all(settled.values()):
                    failed |= {i for i, ok in settled.items() if not ok}
                    resume["failed"] = sorted(failed)
                cursor = next_cursor if complete else cursor
                fields = await self._record(
                    key, done, errors, last_error, cursor, complete and next_cursor == 0, resume
                )
            return _progress(job_id, fields)
        finally:
            await self.store.call("DEL", lock)

    async def _refresh(
        self, ids: Sequence[str], deadline: float
    ) -> tuple[int, int, str, bool, dict[str, bool]]:
        """Refresh ``ids`` until ``deadline``: (done, errors, last error, complete, {settled id: refreshed})."""
        tokens = await self.pool.tokens(ids) if ids else {}
        limit = asyncio.Semaphore(self.concurrency)
        done = errors = 0
        last_error = ""
        complete = True
        settled: dict[str, bool] = {}

        async def one(account_id: str, token: str) -> None:
            nonlocal done, errors, last_error, complete
            async with limit:
                left = deadline - self._clock()
                if left <= 0:
                    complete = False
                    return
                try:
                    windows, media = await asyncio.wait_for(
                        self.fetch(account_id, token), min(left, self.fetch_timeout)
                    )
                except TimeoutError:
                    # Which limit was it? Not "is the deadline past": an event loop's timers may fire a little
                    # before our clock gets there (uvloop's clock is cached per iteration, in milliseconds).
                    if left <= self.fetch_timeout:
                        complete = False  # cut off by the budget, not upstream's fault: retry next run
                        return
                    errors, last_error = errors + 1, f"{account_id}: quota fetch timed out"
                    settled[account_id] = False
                    return
                except UpstreamError as exc:
                    errors, last_error = errors + 1, f"{account_id}: {exc.kind.value}: {exc.message}"
                    settled[account_id] = False
                    await self.pool.record_failure(account_id, exc)
                    return
                except Exception as exc:  # a bug or bad answer in fetch must not stop the job
                    errors, last_error = errors + 1, f"{account_id}: {type(exc).__name__}: {exc}"
                    settled[account_id] = False
                    return
                await self.pool.update_quota(account_id, windows, media)
                done += 1
                settled[account_id] = True

        await asyncio.gather(*(one(aid, tok) for aid, tok in tokens.items()))
        return done, errors, last_error[:300], complete, settled

    async def _record(
        self, key: str, done: int, errors: int, last_error: str, cursor: int, finished: bool,
        resume: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, str]:
        updates = ["cursor", str(cursor), "updated_at", str(self.pool.now())]
        for name, ids in (resume or {}).items():  # "ids" left to do, or "failed" ids not to retry
            updates += [name, json.dumps(list(ids))]
        if last_error:
            updates += ["last_error", last_error]
        if finished:
            updates += ["status", "done"]
        replies = await self.store.pipeline(
            [
                ["HINCRBY", key, "done", done],
                ["HINCRBY", key, "errors", errors],
                ["HSET", key, *updates],
                ["EXPIRE", key, JOB_TTL],
                ["HGETALL", key],
            ]
        )
        return _fields(replies[-1])


def _fields(flat: list[str] | None) -> dict[str, str]:
    flat = flat or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _progress(job_id: str, f: Mapping[str, str]) -> RefreshProgress:
    return RefreshProgress(
        job_id=job_id,
        status=f.get("status", "running"),
        total=int(f.get("total") or 0),
        done=int(f.get("done") or 0),
        errors=int(f.get("errors") or 0),
        last_error=f.get("last_error", ""),
        started_at=float(f.get("started_at") or 0),
        updated_at=float(f.get("updated_at") or 0),
    )
