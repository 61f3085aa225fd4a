"""``TokenPool``: the token pool as the HTTP layer and the admin API see it.

All state lives in the store; a ``TokenPool`` object holds nothing but configuration, so any number of instances
(serverless invocations) can share one pool. The hot path is two commands per request: ``lease`` and ``settle``,
each a single EVALSHA that decides and writes atomically.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Literal

from core.errors import NoAccountAvailable, UpstreamError
from core.pool.accounts import (
    ACTIVE,
    COOLING,
    DISABLED,
    INVALID,
    Account,
    AccountPage,
    EgressProblems,
    ImportEntry,
    ImportReport,
    Lease,
    Outcome,
    PoolSummary,
)
from core.pool.crypto import ENCRYPTED, PLAINTEXT, TokenCipher, TokenDecryptError
from core.pool.keys import PoolKeys
from core.pool.quota import CHAT_MODES, QUOTA_KINDS, TIER_RANK, TIERS, QuotaWindow, detect_tier
from core.pool.scripts import script
from core.pool.tokens import clean_tags, mask, parse_token_import
from core.settings import Settings
from core.store import Store

_IMPORT_BATCH = 200  # accounts per add/read script call: keeps each request and reply small
_PAGE_MAX = 1000  # accounts per listing page
_SUMMARY_BATCH = 2000  # accounts per summary script call
_WAIT_FIRST, _WAIT_MAX = 0.05, 1.0  # waiting for a busy slot: first poll delay, longest delay
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:@+-]")


class TokenPool:
    def __init__(self, store: Store, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.keys = PoolKeys(store)
        self.cipher = TokenCipher(settings.encryption_key)
        self._clock = clock  # injectable so tests can move time
        self._random = random.Random()
        # (store key, callback): a lease also reads this key (the run-time settings' version stamp) and hands the
        # value to the callback, so a settings change is noticed on the hot path without a command of its own.
        self.version_watch: tuple[str, Callable[[str], object]] | None = None

    def _context(self, now: float, *, count_usage: bool = True) -> list[str | int | float]:
        """ARGV[1..8] of every indexing script (common.lua): prefixes, time, the settings its index rules use,
        a random seed, where and how long usage is counted."""
        s = self.settings
        return [
            self.keys.account_prefix,
            self.keys.pool_prefix,
            _fmt(now),
            _fmt(s.quota_stale_after),
            s.account_concurrency,
            self._random.randint(1, 2**31 - 2),
            self.keys.usage(_day(now)),
            s.usage_retention_days * 86400 if count_usage else 0,
        ]

    def _new_lease_id(self) -> str:
        iid = _instance(self.settings.instance_id)
        return f"{iid}/{secrets.token_hex(8)}" if iid else secrets.token_hex(8)

    def now(self) -> float:
        """The pool's clock (epoch seconds); every timestamp it stores comes from here."""
        return self._clock()

    # -- hot path -------------------------------------------------------------------------------------------

    async def lease(
        self,
        *,
        mode: str,
        min_tier: str,
        cost: int = 1,
        exclude: Collection[str] = (),
        sticky_key: str | None = None,
        model: str = "",
        wait: float | None = None,
    ) -> Lease:
        """Pick an account and reserve a slot and ``cost`` quota units on it (one store command).

        Eligible: enabled, not invalid, not cooling, tier ≥ ``min_tier`` (or not detected yet), quota in ``mode``
        ≥ ``cost`` or unknown/stale (then ``needs_refresh``), fewer leases than its concurrency cap. Preference:
        the ``sticky_key``'s last account, then fresh quota before needs-refresh, most remaining first, random
        among equals. ``model`` names the request in the ``NoAccountAvailable`` message and in the usage counters
        of a lease that is never settled.

        When accounts that could serve are only busy (at their cap), the call waits for a slot up to ``wait``
        seconds (default ``settings.lease_wait``; 0 = no wait), polling with a backoff of 50 ms doubling to 1 s
        (jittered): one store command per poll. Cooling, invalid or out-of-quota accounts are never waited for.

        The lease expires ``settings.lease_ttl`` seconds after it was taken unless ``renew`` extends it (see
        ``Lease.renew_at``): if this instance dies before ``settle``, the next lease script drops it, frees the
        slot and counts the request. Its reserved quota is *not* refunded, because upstream may well have charged
        the request; the next quota refresh corrects any difference. With ``settings.instance_id`` set, a
        restarted instance frees its previous run's leases at once (``reclaim_instance``).
        """
        if mode not in QUOTA_KINDS:
            raise ValueError(f"unknown quota mode {mode!r}")
        if min_tier not in TIER_RANK:
            raise ValueError(f"unknown tier {min_tier!r}")
        budget = self.settings.lease_wait if wait is None else max(wait, 0.0)
        deadline = time.monotonic() + budget  # the wait is wall time, whatever the pool's clock says
        delay = _WAIT_FIRST
        lease_id = self._new_lease_id()
        model = _clean_model(model)
        reindexed = False
        while True:
            now = self._clock()
            args: list[str | int | float] = [
                *self._context(now),
                mode,
                TIER_RANK[min_tier],
                cost,
                _fmt(self.settings.lease_ttl),
                lease_id,
                model,
                self.keys.sticky(sticky_key) if sticky_key else "",
                *exclude,
            ]
            keys = [self.keys.ids] if self.version_watch is None else [self.keys.ids, self.version_watch[0]]
            reply = await self.store.run(script("lease"), keys, args)
            if reply[0] == "ok":
                if self.version_watch is not None:
                    self.version_watch[1](reply[9] if len(reply) > 9 else "")
                break
            if reply[0] == "reindex" and not reindexed:  # a pool written before the index existed
                await self.reindex()
                reindexed = True
                continue
            why = dict(zip(reply[1::2], reply[2::2], strict=True))
            left = deadline - time.monotonic()
            if int(float(why.get("busy") or 0)) > 0 and left > 0:
                await asyncio.sleep(min(delay * (0.5 + self._random.random()), left))
                delay = min(delay * 2, _WAIT_MAX)
                continue
            message, retry_after = _explain(why, mode=mode, min_tier=min_tier, model=model, now=now)
            raise NoAccountAvailable(message, retry_after=retry_after)
        _, account, stored, scheme, tier, reserved, remaining, refresh, expires = reply[:9]
        try:
            token = self.cipher.decrypt(stored, scheme, account)
        except TokenDecryptError:  # give the slot and the quota back before reporting the key problem
            await self._settle(
                account,
                Outcome.cancelled(),
                mode=mode,
                lease_id=lease_id,
                member=_member(account, lease_id, model),
                cost=cost,
                reserved=int(reserved),
                started_at=now,
            )
            raise
        ttl = self.settings.lease_ttl
        return Lease(
            lease_id=lease_id,
            account_id=account,
            token=token,
            tier=tier,
            mode=mode,
            cost=cost,
            needs_refresh=refresh == "1",
            remaining=int(remaining) if remaining != "" else None,
            reserved=int(reserved),
            started_at=now,
            sticky_key=sticky_key,
            model=model,
            expires_at=float(expires),
            renew_at=now + ttl / 2,
        )

    async def renew(self, lease: Lease) -> bool:
        """Extend a live lease to ``settings.lease_ttl`` from now (one store command), for a stream that runs
        long. Call it when ``time.time() >= lease.renew_at``; on success it moves ``lease.renew_at`` and
        ``lease.expires_at`` forward. False when the lease is gone (it expired or was reclaimed, so its slot may
        be someone else's by now): finish the request anyway, its ``settle`` counts nothing twice."""
        now = self._clock()
        ttl = self.settings.lease_ttl
        args = [
            *self._context(now),
            lease.account_id,
            lease.lease_id,
            _member(lease.account_id, lease.lease_id, lease.model),
            _fmt(ttl),
        ]
        expires = await self.store.run(script("renew"), [self.keys.leases(lease.account_id)], args)
        if not expires:
            return False
        lease.expires_at = float(expires)
        lease.renew_at = now + ttl / 2
        return True

    async def reclaim_instance(self) -> int:
        """Free every lease the previous run of this ``settings.instance_id`` left behind (it was killed or
        crashed before settling) and return how many (one store command; 0 without an instance id). Call it once
        at start-up, before serving. Each freed lease counts as a request in the usage counters; its reserved
        quota stays spent, since upstream most likely charged it."""
        iid = _instance(self.settings.instance_id)
        if not iid:
            return 0
        return int(await self.store.run(script("reclaim"), [], [*self._context(self._clock()), iid]))

    async def reindex(self, *, batch: int = 500) -> int:
        """Build the lease index for every account (pools written before it existed; also a safe repair, since
        every script keeps it up to date). A few commands per ``batch`` accounts; returns how many."""
        migrate = "0" if await self.store.call("EXISTS", self.keys.index_version) else "1"
        cursor, total = 0, 0
        while True:
            args = [*self._context(self._clock()), cursor, batch, migrate]
            next_cursor, done = await self.store.run(script("reindex"), [self.keys.ids], args)
            total += int(done)
            cursor = int(next_cursor)
            if cursor == 0:
                break
        await self.store.call("SET", self.keys.index_version, "1")
        return total

    async def settle(self, lease: Lease, outcome: Outcome) -> None:
        """Release the lease, true up quota, count usage and apply the failure rules (one store command).

        Failure rules by ``outcome.failure.kind``:
        rate_limited → mode out of quota (``quota_exhausted`` or remaining 0): skip that mode until its reset
        (Retry-After, else the known reset time, else ``exhausted_cooldown``); otherwise cool the account for
        Retry-After or ``rate_limit_cooldown``. unauthorized / blocked → a strike; invalid after
        ``invalid_after_unauthorized`` / ``invalid_after_blocked`` strikes. cloudflare / anti_bot → the egress's
        fault: account untouched, pool-level egress counter. server / network / timeout / stream → cooldown of
        ``failure_backoff_base`` × 2^(consecutive−1), capped at ``failure_backoff_max``. bad_request → nothing.
        Success clears strikes and backoff.
        """
        await self._settle(
            lease.account_id,
            outcome,
            lease_id=lease.lease_id,
            mode=lease.mode,
            cost=lease.cost,
            reserved=lease.reserved,
            started_at=lease.started_at,
            sticky_key=lease.sticky_key,
            token=lease.token,
            member=_member(lease.account_id, lease.lease_id, lease.model),
        )

    async def record_failure(self, account_id: str, failure: UpstreamError, *, mode: str = "auto") -> None:
        """Apply the failure rules without a lease (e.g. a quota refresh answered 401)."""
        await self._settle(account_id, Outcome.failed(failure, charged=0), mode=mode, count_usage=False)

    async def _settle(
        self,
        account_id: str,
        outcome: Outcome,
        *,
        mode: str,
        lease_id: str = "",
        cost: int = 0,
        reserved: int = 0,
        started_at: float = 0.0,
        sticky_key: str | None = None,
        token: str = "",
        member: str = "",
        count_usage: bool = True,
    ) -> list[str]:
        now = self._clock()
        failure = outcome.failure
        result = "ok" if outcome.ok else "fail" if failure is not None else "cancel"
        windows = dict(outcome.quota or {})
        s = self.settings
        args: list[str | int | float] = [
            *self._context(now, count_usage=count_usage),
            lease_id,
            mode,
            reserved,
            outcome.charged_units(cost),
            _fmt(started_at),
            result,
            failure.kind.value if failure else "",
            _clean_message(failure.message if failure else "", token),
            _fmt(failure.retry_after) if failure and failure.retry_after is not None else "",
            "1" if failure and failure.quota_exhausted else "0",
            _clean_model(outcome.model),
            max(outcome.prompt_tokens, 0),
            max(outcome.completion_tokens, 0),
            _fmt(max(outcome.latency_ms, 0.0)),
            account_id,
            "1" if sticky_key and outcome.ok else "0",
            max(int(s.sticky_ttl), 1),
            _fmt(s.rate_limit_cooldown),
            _fmt(s.exhausted_cooldown),
            _fmt(s.failure_backoff_base),
            _fmt(s.failure_backoff_max),
            s.invalid_after_unauthorized,
            s.invalid_after_blocked,
            detect_tier(windows) or "",
            member,
            *_window_args(windows),
        ]
        keys = [
            self.keys.account(account_id),
            self.keys.leases(account_id),
            self.keys.usage(_day(now)),
            self.keys.egress,
            self.keys.sticky(sticky_key) if sticky_key else self.keys.egress,  # unread without a sticky key
        ]
        if outcome.keep is not None:  # written by the same script: a stored answer costs no extra command
            key, value, ttl = outcome.keep
            keys.append(key)
            args += [value, max(int(ttl), 1)]
        else:
            args += ["", 0]
        if outcome.ledger:  # the request's log entry and counters: the same step, no extra command either
            args.append(outcome.ledger)
        return await self.store.run(script("settle"), keys, args)

    # -- quota ----------------------------------------------------------------------------------------------

    async def update_quota(
        self,
        account_id: str,
        windows: Mapping[str, QuotaWindow],
        media: Mapping[str, QuotaWindow] | None = None,
    ) -> bool:
        """Store refreshed windows (one command), re-detect the tier from the chat windows. A mode back above
        zero is usable again at once. False when the account does not exist."""
        merged = {**windows, **(media or {})}
        args = [
            *self._context(self._clock()),
            account_id,
            detect_tier(windows) or "",
            *_window_args(merged),
        ]
        return bool(await self.store.run(script("update_quota"), [self.keys.account(account_id)], args))

    async def stale_accounts(
        self, limit: int = 50, cursor: int = 0, *, scan: int | None = None
    ) -> tuple[list[str], int]:
        """Up to ``limit`` enabled, valid accounts whose quota was never refreshed or is older than
        ``quota_stale_after``, in import order, starting after ``cursor``. Returns ``(ids, next_cursor)``;
        ``next_cursor == 0`` means the scan is complete (like Redis SCAN). One command, looking at no more
        than ``scan`` accounts (default ``10 × limit``)."""
        scan = scan or max(limit * 10, 100)
        args = [
            self.keys.account_prefix,
            _fmt(self._clock()),
            _fmt(self.settings.quota_stale_after),
            cursor,
            limit,
            scan,
        ]
        reply = await self.store.run(script("stale"), [self.keys.ids], args)
        return list(reply[1:]), int(reply[0])

    # -- admin ----------------------------------------------------------------------------------------------

    async def add(
        self,
        raw_tokens: str | bytes | Iterable[Any] | Mapping[str, Any],
        *,
        tags: Iterable[str] = (),
        note: str = "",
    ) -> ImportReport:
        """Import tokens (text, JSON, or a list; see ``parse_token_import``). New accounts start with tier and
        quota unknown; existing ones are left untouched and reported as skipped."""
        report = ImportReport(encrypted=self.cipher.scheme == ENCRYPTED)
        items = parse_token_import(raw_tokens)
        usable = []
        for item in items:
            if item.problem or item.token is None:
                report.skipped.append(
                    ImportEntry(item.account_id, item.source, item.problem or "not a token")
                )
            else:
                usable.append(item)
        base_tags = clean_tags(tags)
        for chunk in batched(usable, _IMPORT_BATCH):
            args: list[str | int | float] = [*self._context(self._clock())]
            for item in chunk:
                aid = item.account_id or ""
                args += [
                    aid,
                    self.cipher.encrypt(item.token or "", aid),
                    self.cipher.scheme,
                    mask(item.token),
                    json.dumps(list(clean_tags((*base_tags, *item.tags)))),
                    item.note or note,
                ]
            flags = await self.store.run(script("add"), [self.keys.ids, self.keys.seq], args)
            for item, added in zip(chunk, flags, strict=True):
                entry = ImportEntry(item.account_id, mask(item.token))
                if added:
                    report.added.append(entry)
                else:
                    report.skipped.append(ImportEntry(entry.account_id, entry.masked, "already in the pool"))
        return report

    async def get(self, account_id: str) -> Account | None:
        accounts = await self._read([account_id])
        return accounts[0] if accounts else None

    async def list(
        self, *, tier: str | None = None, status: str | None = None, tag: str | None = None
    ) -> list[Account]:
        """Every account in import order, optionally filtered (status: active | cooling | invalid | disabled).
        Reads the whole pool page by page: the admin API serves ``page`` instead."""
        accounts: list[Account] = []
        cursor = 0
        while True:
            page = await self.page(cursor=cursor, limit=_PAGE_MAX, tier=tier, status=status, tag=tag)
            accounts += page.accounts
            if page.next_cursor is None:
                return accounts
            cursor = page.next_cursor

    async def page(
        self,
        *,
        cursor: int = 0,
        limit: int = 100,
        tier: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        quota: Literal["some", "none", "unknown"] | None = None,
    ) -> AccountPage:
        """Up to ``limit`` accounts in import order after ``cursor`` (0 = from the start), filtered like ``list``
        by ``text`` (a case-insensitive substring of the id, masked token, note or tags) and by ``quota`` (chat
        quota left, summed over the modes: ``some``, ``none``, or ``unknown`` before a refresh) — one store command,
        looking at no more than ``10 × limit`` accounts: a page may hold fewer than ``limit`` even though more
        follow. ``next_cursor`` is None at the end. ``total`` counts every account matching the filter, when the
        index can tell without a scan (no filter, or tier or status alone)."""
        limit = max(1, min(limit, _PAGE_MAX))
        # Lua lowers ASCII only, so the needle is lowered the same way; tags are stored as JSON text with non-ASCII
        # escaped (\u00e9), so the needle is also looked for in that form.
        needle = "".join(c.lower() if c.isascii() else c for c in (text or "").strip())
        escaped = json.dumps(needle)[1:-1]
        args = [
            *self._context(self._clock()),
            cursor,
            limit,
            limit * 10,
            tier or "",
            status or "",
            json.dumps(tag) if tag else "",
            needle,
            quota or "",
            " ".join(CHAT_MODES),
            escaped if escaped != needle else "",
        ]
        reply = await self.store.run(script("page"), [self.keys.ids], args)
        now = self._clock()
        accounts = [
            Account.from_fields(aid, dict(zip(flat[::2], flat[1::2], strict=True)), int(n), now)
            for aid, n, flat in reply[2:]
        ]
        if tag:  # the script matches the JSON text; be exact here
            accounts = [a for a in accounts if tag in a.tags]
        next_cursor = int(reply[0]) or None
        return AccountPage(accounts, next_cursor, int(reply[1]) if reply[1] != "" else None)

    async def summary(self) -> PoolSummary:
        """Counts over the whole pool: one store command per 2,000 accounts, reading a few fields of each."""
        sums: dict[str, float] = {}
        cursor = 0
        while True:
            args = [*self._context(self._clock()), cursor, _SUMMARY_BATCH]
            reply = await self.store.run(script("totals"), [self.keys.ids], args)
            for name, value in zip(reply[1::2], reply[2::2], strict=True):
                sums[name] = sums.get(name, 0) + float(value)
            cursor = int(reply[0])
            if cursor == 0:
                break

        def n(name: str) -> int:
            return int(sums.get(name, 0))

        by_status = {state: n(f"status:{state}") for state in (ACTIVE, COOLING, INVALID, DISABLED)}
        return PoolSummary(
            total=sum(by_status.values()),
            by_tier={tier: n(f"tier:{tier}") for tier in (*TIERS, "unknown")},
            by_status=by_status,
            remaining={kind: n(f"rem:{kind}") for kind in QUOTA_KINDS},
            unknown_quota={kind: n(f"unknown:{kind}") for kind in QUOTA_KINDS},
            in_flight=n("in_flight"),
            encryption=self.cipher.scheme,
            plaintext_accounts=n("plaintext"),
            egress=await self.egress(),
        )

    async def egress(self) -> EgressProblems:
        """Cloudflare / anti-bot failures seen by the pool: an egress problem (IP, cf_clearance, user agent)."""
        raw = await self.store.call("HGETALL", self.keys.egress)
        f = dict(zip(raw[::2], raw[1::2], strict=True))
        return EgressProblems(
            cloudflare=int(f.get("cloudflare", 0)),
            anti_bot=int(f.get("anti_bot", 0)),
            last_at=float(f["last_at"]) if f.get("last_at") else None,
            last_kind=f.get("last_kind", ""),
            last_message=f.get("last_message", ""),
        )

    async def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        args = [*self._context(self._clock()), *ids]
        return int(await self.store.run(script("delete"), [self.keys.ids], args))

    async def set_enabled(self, ids: Iterable[str], enabled: bool) -> int:
        """Disable, or enable. Enabling is the admin's "try it again": it also clears invalid, cooldown and strikes."""
        fields = {"enabled": "1", "state": ACTIVE, "reason": "", "until": "", "strikes": "0", "fails": "0"}
        return await self._edit(ids, fields if enabled else {"enabled": "0"})

    async def set_tags(self, account_id: str, tags: Iterable[str]) -> bool:
        return bool(await self._edit([account_id], {"tags": json.dumps(list(clean_tags(tags)))}))

    async def set_note(self, account_id: str, note: str) -> bool:
        return bool(await self._edit([account_id], {"note": note.strip()}))

    async def set_concurrency(self, account_id: str, limit: int | None) -> bool:
        """Per-account in-flight cap; ``None`` returns to ``settings.account_concurrency``."""
        if limit is not None and limit < 1:
            raise ValueError("concurrency must be at least 1")
        return bool(await self._edit([account_id], {"concurrency": str(limit or "")}))

    async def export(self, ids: Iterable[str] | None = None) -> list[str]:
        """Plaintext tokens (admin export), in import order. Raises ``TokenDecryptError`` on a wrong key."""
        return list((await self.tokens(ids)).values())

    async def tokens(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """``{account id: plaintext token}`` for existing accounts (all when ``ids`` is None)."""
        rows = await self._rows(list(ids) if ids is not None else None, with_token=True)
        return {
            aid: self.cipher.decrypt(f.get("token", ""), f.get("enc", PLAINTEXT), aid) for aid, _, f in rows
        }

    async def lease_count(self, account_id: str) -> int:
        """Leases on this account that have not expired."""
        return int(
            await self.store.call("ZCOUNT", self.keys.leases(account_id), f"({_fmt(self._clock())}", "+inf")
        )

    async def usage(self, day: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
        """Daily counters (UTC day ``YYYYMMDD``, default today): ``{"models"|"accounts": {name: {req, ok, fail,
        pt, ct, ms}}}``."""
        raw = await self.store.call("HGETALL", self.keys.usage(day or _day(self._clock())))
        return _usage(raw)

    async def usage_page(
        self, day: str | None = None, *, cursor: int = 0, limit: int = 500
    ) -> tuple[dict[str, dict[str, dict[str, float]]], int | None]:
        """One page of ``usage`` (one HSCAN of about ``limit`` counters; a big pool has ~6 per account a day):
        ``(counters, next_cursor)``, None at the end. One subject's counters may come in two pages: merge."""
        key = self.keys.usage(day or _day(self._clock()))
        next_cursor, raw = await self.store.call("HSCAN", key, cursor, "COUNT", max(1, min(limit, 10_000)))
        return _usage(raw), int(next_cursor) or None

    # -- internals ------------------------------------------------------------------------------------------

    async def _read(self, ids: Sequence[str] | None) -> list[Account]:
        now = self._clock()
        return [Account.from_fields(aid, f, n, now) for aid, n, f in await self._rows(ids, with_token=False)]

    async def _rows(
        self, ids: Sequence[str] | None, *, with_token: bool
    ) -> list[tuple[str, int, dict[str, str]]]:
        if ids is None:  # every account (export, summary): ids first, then their hashes in batches
            ids = await self.store.call("ZRANGE", self.keys.ids, 0, -1)
        now = _fmt(self._clock())
        rows: list[tuple[str, int, dict[str, str]]] = []
        for chunk in batched(ids, _IMPORT_BATCH):
            args = [self.keys.account_prefix, now, "1" if with_token else "0", *chunk]
            for aid, in_flight, flat in await self.store.run(script("read"), [self.keys.ids], args):
                rows.append((aid, int(in_flight), dict(zip(flat[::2], flat[1::2], strict=True))))
        return rows

    async def _edit(self, ids: Iterable[str], fields: Mapping[str, str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        pairs = [item for kv in fields.items() for item in kv]
        return int(
            await self.store.run(script("edit"), [], [*self._context(self._clock()), len(ids), *ids, *pairs])
        )


def _usage(raw: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {"models": {}, "accounts": {}}
    for name, value in zip(raw[::2], raw[1::2], strict=True):
        scope, _, rest = name.partition(":")
        subject, _, counter = rest.rpartition(":")
        group = out["models" if scope == "m" else "accounts"]
        group.setdefault(subject, {})[counter] = float(value)
    return out


def _instance(instance_id: str | None) -> str:
    """INSTANCE_ID as it appears in lease ids: no separators of the lease members, bounded."""
    return _UNSAFE.sub("_", instance_id or "")[:64]


def _clean_model(model: str) -> str:
    return _UNSAFE.sub("_", model)[:100]


def _member(account_id: str, lease_id: str, model: str) -> str:
    """A lease's entry in pool:leases / pool:inst:<id> (common.lua parses it back)."""
    return f"{account_id}|{lease_id}|{model}"


def batched(items: Iterable[Any], size: int) -> Iterable[tuple[Any, ...]]:
    """``itertools.batched`` (Python 3.12+)."""
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


def _window_args(windows: Mapping[str, QuotaWindow]) -> list[str | int]:
    args: list[str | int] = [len(windows)]
    for kind, w in windows.items():
        if kind not in QUOTA_KINDS:
            raise ValueError(f"unknown quota kind {kind!r}")
        args += [kind, _opt(w.remaining), _opt(w.total), _opt(w.window_seconds), _opt(w.resets_at)]
    return args


def _opt(value: float | None) -> str:
    return "" if value is None else _fmt(value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _day(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


_WS = re.compile(r"\s+")


def _clean_message(message: str, token: str) -> str:
    """One line, bounded, and never the token itself (upstream bodies can echo cookies)."""
    if token:
        message = message.replace(token, mask(token))
    return _WS.sub(" ", message).strip()[:300]


def _explain(
    why: Mapping[str, str], *, mode: str, min_tier: str, model: str, now: float
) -> tuple[str, float | None]:
    """Turn the lease script's counts into a sentence naming the cause, and a Retry-After when one is known."""
    names = ("total", "disabled", "invalid", "tier_low", "excluded", "cooling", "exhausted", "busy")
    n = {name: int(float(why.get(name) or 0)) for name in names}
    at = {k: float(why[k]) for k in ("cool_until", "exhausted_until") if why.get(k)}
    target = f"`{model}`" if model else f"{mode} mode"
    if n["total"] == 0:
        return "the token pool is empty: add Grok session tokens in the admin console", None
    usable = n["total"] - n["disabled"] - n["invalid"]
    if usable == 0:
        return (
            f"no usable account: all {n['total']} accounts are disabled or invalid "
            f"({n['invalid']} invalid, {n['disabled']} disabled)"
        ), None
    able = usable - n["tier_low"]
    if able == 0:
        return f"no account with tier ≥ {min_tier} for {target} ({usable} usable, all below {min_tier})", None

    # (how many, why, when it clears) for each reason an able account was passed over
    blockers: list[tuple[int, str, float | None]] = []
    if n["cooling"]:
        reason = why.get("cool_reason", "").split(":", 1)[0] or "cooling down"
        when = at.get("cool_until")
        blockers.append((n["cooling"], f"cooling{_until(when, now)} ({reason})", when))
    if n["exhausted"]:
        when = at.get("exhausted_until")
        blockers.append((n["exhausted"], f"out of {mode} quota{_until(when, now)}", when))
    if n["busy"]:
        blockers.append((n["busy"], "busy (at their in-flight limit)", now + 1.0))
    if n["excluded"]:
        blockers.append((n["excluded"], "already tried for this request", None))
    times = [when for _, _, when in blockers if when is not None]
    retry_after = max(min(times) - now, 1.0) if times else None
    if len(blockers) == 1:
        subject = "the only account" if able == 1 else f"all {able} accounts"
        verb = "is" if able == 1 else "are"
        return f"{subject} able to serve {target} {verb} {blockers[0][1]}", retry_after
    detail = ", ".join(f"{count} {text}" for count, text, _ in blockers)
    return f"none of the {able} accounts able to serve {target} is free: {detail}", retry_after


def _until(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts, UTC)
    return " until " + moment.strftime("%H:%M:%SZ" if ts - now < 86400 else "%Y-%m-%d %H:%MZ")
