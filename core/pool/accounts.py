"""The pool's plain data: accounts as read from the store, leases, outcomes and reports.

Nothing here talks to the store; ``pool.py`` builds these from what the Lua scripts return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import FailureKind, UpstreamError
from core.pool.crypto import ENCRYPTED
from core.pool.quota import CHAT_MODES, MEDIA_KINDS, QuotaWindow

ACTIVE, COOLING, INVALID, DISABLED = "active", "cooling", "invalid", "disabled"


@dataclass(frozen=True, slots=True)
class QuotaState:
    """What the pool believes about one quota window. ``refreshed_at`` is the last upstream answer (None = never);
    ``remaining`` also moves locally as leases reserve and settle."""

    remaining: int | None = None
    total: int | None = None
    window_seconds: int | None = None
    resets_at: float | None = None
    refreshed_at: float | None = None


@dataclass(frozen=True, slots=True)
class AccountStatus:
    state: str  # active | cooling | invalid | disabled
    reason: str = ""
    until: float | None = None  # end of a cooldown


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    masked: str  # the only form of the token an Account ever holds
    tier: str  # basic | super | heavy | unknown (detected from quota answers)
    status: AccountStatus
    encrypted: bool  # False = the token is stored in plaintext (no ENCRYPTION_KEY when it was added)
    strikes: int
    consecutive_failures: int
    tags: tuple[str, ...]
    note: str
    concurrency: int | None  # per-account in-flight cap; None = settings.account_concurrency
    in_flight: int
    quota: dict[str, QuotaState]  # chat modes: auto, fast, expert, heavy
    media: dict[str, QuotaState]  # image, image_pro, image_edit, video, video_720p
    requests: int
    failures: int
    lost: int  # of ``requests``: leases never settled (instance killed), dropped when they expired or were reclaimed
    created_at: float | None
    last_used_at: float | None
    last_error: str
    last_error_at: float | None
    quota_refreshed_at: float | None

    @classmethod
    def from_fields(cls, account_id: str, f: Mapping[str, str], in_flight: int, now: float) -> Account:
        return cls(
            id=account_id,
            masked=f.get("masked", ""),
            tier=f.get("tier") or "unknown",
            status=_status(f, now),
            encrypted=f.get("enc") == ENCRYPTED,
            strikes=_int(f.get("strikes")) or 0,
            consecutive_failures=_int(f.get("fails")) or 0,
            tags=tuple(json.loads(f.get("tags") or "[]")),
            note=f.get("note", ""),
            concurrency=_int(f.get("concurrency")) or None,
            in_flight=in_flight,
            quota={mode: _quota(f, mode) for mode in CHAT_MODES},
            media={kind: _quota(f, kind) for kind in MEDIA_KINDS},
            requests=_int(f.get("requests")) or 0,
            failures=_int(f.get("failures")) or 0,
            lost=_int(f.get("lost")) or 0,
            created_at=_float(f.get("created_at")),
            last_used_at=_float(f.get("last_used_at")),
            last_error=f.get("last_error", ""),
            last_error_at=_float(f.get("last_error_at")),
            quota_refreshed_at=_float(f.get("q_at")),
        )


def _status(f: Mapping[str, str], now: float) -> AccountStatus:
    if f.get("enabled") == "0":
        return AccountStatus(DISABLED)
    if f.get("state") == INVALID:
        return AccountStatus(INVALID, f.get("reason", ""))
    until = _float(f.get("until"))
    if f.get("state") == COOLING and until is not None and until > now:
        return AccountStatus(COOLING, f.get("reason", ""), until)
    return AccountStatus(ACTIVE)  # a cooldown that ran out is over, whether or not a script has noticed yet


def _quota(f: Mapping[str, str], kind: str) -> QuotaState:
    return QuotaState(
        remaining=_int(f.get(f"q:{kind}:rem")),
        total=_int(f.get(f"q:{kind}:tot")),
        window_seconds=_int(f.get(f"q:{kind}:win")),
        resets_at=_float(f.get(f"q:{kind}:reset")),
        refreshed_at=_float(f.get(f"q:{kind}:at")),
    )


@dataclass(slots=True)
class Lease:
    """One reserved slot on one account. Hand it back with ``TokenPool.settle`` exactly once.

    It lives until ``expires_at`` (pool clock, epoch seconds). A caller whose request is still running at
    ``renew_at`` (halfway) calls ``TokenPool.renew(lease)``, which extends it and moves both times forward
    (the only fields that change after the lease is made)."""

    lease_id: str
    account_id: str
    token: str = field(repr=False)  # decrypted session token: never log it, use ``mask``
    tier: str
    mode: str
    cost: int
    needs_refresh: bool  # quota (or tier) unknown or stale: refresh it, e.g. pass ``Outcome.quota``
    remaining: int | None  # remaining in ``mode`` after this reservation; None = unknown
    reserved: int = 0  # quota units taken from ``remaining`` (0 when the quota was unknown)
    started_at: float = 0.0
    sticky_key: str | None = field(default=None, repr=False)
    model: str = ""  # as given to ``lease``: counted under it if the lease is never settled
    expires_at: float = 0.0
    renew_at: float = 0.0  # renew when ``time.time() >= renew_at``; a short request never does


@dataclass(slots=True)
class Outcome:
    """How a leased request went. ``charged`` = quota units upstream actually spent (None = the default: ``cost``
    on success and for failures after upstream accepted the request — stream/timeout —, else 0)."""

    ok: bool
    charged: int | None = None
    failure: UpstreamError | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    quota: Mapping[str, QuotaWindow] | None = None  # fresh windows seen during the request, stored by settle
    keep: tuple[str, str, float] | None = None  # (full key, value, ttl s) the request stores with its settle
    # The request's ledger writes (core/ledger: log entry, stats, key usage), applied by the same settle command.
    ledger: str | None = None

    @classmethod
    def success(cls, model: str = "", **kwargs: object) -> Outcome:
        return cls(ok=True, model=model, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def failed(cls, failure: UpstreamError, model: str = "", **kwargs: object) -> Outcome:
        return cls(ok=False, failure=failure, model=model, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def cancelled(cls) -> Outcome:
        """The lease was never used (client went away first): release it and refund, count nothing."""
        return cls(ok=False, charged=0)

    def charged_units(self, cost: int) -> int:
        if self.charged is not None:
            return max(self.charged, 0)
        if self.ok:
            return cost
        if self.failure is not None and self.failure.kind in (FailureKind.STREAM, FailureKind.TIMEOUT):
            return cost
        return 0


@dataclass(frozen=True, slots=True)
class AccountPage:
    """One page of an account listing. ``next_cursor`` None = the end; ``total`` = accounts matching the
    filter, None when it cannot be known without reading them all (a tag filter, or tier and status together)."""

    accounts: list[Account]
    next_cursor: int | None
    total: int | None


@dataclass(frozen=True, slots=True)
class ImportEntry:
    account_id: str | None
    masked: str
    reason: str = ""  # why it was skipped; "" for added


@dataclass(slots=True)
class ImportReport:
    added: list[ImportEntry] = field(default_factory=list)
    skipped: list[ImportEntry] = field(default_factory=list)
    encrypted: bool = False  # False: tokens were stored in plaintext because ENCRYPTION_KEY is not set

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "skipped": len(self.skipped)}


@dataclass(frozen=True, slots=True)
class EgressProblems:
    """Failures that were our egress's fault (Cloudflare challenge, anti-bot), not an account's."""

    cloudflare: int = 0
    anti_bot: int = 0
    last_at: float | None = None
    last_kind: str = ""
    last_message: str = ""


@dataclass(frozen=True, slots=True)
class PoolSummary:
    total: int
    by_tier: dict[str, int]
    by_status: dict[str, int]
    remaining: dict[str, int]  # per quota kind: known remaining summed over usable accounts
    unknown_quota: dict[str, int]  # per quota kind: usable accounts whose quota is not known
    in_flight: int
    encryption: str  # what new tokens get: "aesgcm" or "none" (plaintext)
    plaintext_accounts: int  # accounts whose token is stored in plaintext
    egress: EgressProblems


def _int(value: object) -> int | None:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def import_report(report: ImportReport) -> dict[str, object]:
    """JSON form of an import report: counts first, then each token (masked) with the reason it was skipped."""
    return {
        **report.counts,
        "encrypted": report.encrypted,
        "details": {
            "added": [_entry(entry) for entry in report.added],
            "skipped": [_entry(entry) for entry in report.skipped],
        },
    }


def _entry(entry: ImportEntry) -> dict[str, object]:
    return {"account_id": entry.account_id, "masked": entry.masked, "reason": entry.reason}
