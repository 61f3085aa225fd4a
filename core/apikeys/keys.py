"""Store-managed client API keys: records, admission (limits checked and counted atomically), administration.

Layout (under the store prefix; details in the Lua scripts):

    key:<id>             HASH  name, note, prefix (display form), hash (digest), enabled, exp, scopes (csv),
                               models (one pattern per line), rpm, rpd, conc, qk/ql/qp (quota kind, limit, period),
                               created, used (last used at)
    key:h:<digest>       STRING  id (the lookup a presented secret is admitted by)
    key:all              ZSET  id -> created at (listing order)
    key:<id>:slots       ZSET  in-flight request -> expiry (the concurrency cap; freed when the request is written)
    key:<id>:m:<minute>, key:<id>:d:<day>, key:<id>:q:<period>   counters (requests per minute / day, quota used)

The secret is shown once; the store keeps only a keyed digest (HMAC-SHA256 with a key derived from
``ENCRYPTION_KEY``, or a fixed label without one: the secrets are 240 random bits, so even the unkeyed digest
cannot be reversed). Changing ``ENCRYPTION_KEY`` therefore retires every store-managed key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core.errors import AuthenticationFailed, GatewayError, PermissionDenied, RateLimited
from core.ledger.writer import day_stamp
from core.settings import Settings
from core.store import Script, Store, lua_source

KEY_PREFIX = "sk-g2a-"
SCOPES = ("chat", "images", "video")
USAGE_DAYS = 30
_SECRET_BYTES = 30  # 240 bits, 40 url-safe characters


def _script(name: str) -> Script:
    return Script(f"apikeys.{name}", lua_source("core.apikeys", name))


ADMIT, EDIT, READ = _script("admit"), _script("edit"), _script("read")
# The public playground's limit: requests per minute per client address (INCR + EXPIRE, one command).
PUBLIC_LIMIT = Script("apikeys.public", """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return n
""")


class KeyLimitExceeded(RateLimited):
    """A store-managed key (or the public playground) is over one of its limits."""


@dataclass(frozen=True, slots=True)
class KeyQuota:
    kind: Literal["requests", "tokens"]
    limit: int
    period: Literal["day", "week", "month", "total"]


@dataclass(slots=True)
class KeyUsage:
    requests: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    media: int = 0


@dataclass(slots=True)
class KeySpec:
    """What an operator sets on a key (create and edit)."""

    name: str
    note: str = ""
    enabled: bool = True
    expires_at: float | None = None
    models: tuple[str, ...] = ()  # empty = every model; `*` globs
    scopes: tuple[str, ...] = SCOPES
    rpm: int | None = None
    rpd: int | None = None
    concurrency: int | None = None
    quota: KeyQuota | None = None

    def fields(self) -> list[str]:
        q = self.quota
        pairs = {
            "name": self.name, "note": self.note, "enabled": "1" if self.enabled else "0",
            "exp": _num(self.expires_at), "models": "\n".join(self.models), "scopes": ",".join(self.scopes),
            "rpm": _num(self.rpm), "rpd": _num(self.rpd), "conc": _num(self.concurrency),
            "qk": q.kind if q else "", "ql": _num(q.limit) if q else "", "qp": q.period if q else "",
        }
        return [item for pair in pairs.items() for item in pair]


@dataclass(slots=True)
class ApiKey:
    id: str
    prefix: str
    spec: KeySpec
    created_at: float
    last_used_at: float | None
    quota_used: int = 0
    today: KeyUsage = field(default_factory=KeyUsage)
    usage: list[tuple[str, KeyUsage]] = field(default_factory=list)  # (YYYYMMDD, usage), newest first

    def public(self) -> dict[str, Any]:
        """The admin API's view (docs/admin-api.md): never the secret or its digest."""
        s = self.spec
        out: dict[str, Any] = {
            "id": self.id, "name": s.name, "note": s.note, "prefix": self.prefix, "enabled": s.enabled,
            "expires_at": s.expires_at, "models": list(s.models), "scopes": list(s.scopes), "rpm": s.rpm,
            "rpd": s.rpd, "concurrency": s.concurrency,
            "quota": None if s.quota is None else {"kind": s.quota.kind, "limit": s.quota.limit,
                                                   "period": s.quota.period},
            "quota_used": self.quota_used, "created_at": self.created_at, "last_used_at": self.last_used_at,
            "today": _usage_dict(self.today),
        }
        if self.usage:
            out["usage"] = [{"day": day, **_usage_dict(u)} for day, u in self.usage]
        return out


@dataclass(slots=True)
class Admission:
    """A request admitted with a store key: what its ledger needs to finish the accounting."""

    key_id: str
    name: str
    slot: str = ""  # concurrency slot member to free ('' = the key has no concurrency cap)
    quota_key: str = ""  # token-quota counter ('' = no token quota)
    quota_ttl: int = 0


def looks_like_store_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX)


_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_SECRET_LENGTH = len(KEY_PREFIX) + 40  # token_urlsafe(30)


def well_formed(secret: str) -> bool:
    """Could ``secret`` be a key this gateway issued? (Checked before any store command is spent on it.)"""
    return len(secret) == _SECRET_LENGTH and _SECRET_CHARS.issuperset(secret[len(KEY_PREFIX):])


class ApiKeys:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.prefix = store.key("key", "")
        secret = (settings.encryption_key or "grok2api api keys").encode()
        self._pepper = hmac.new(secret, b"grok2api:api-key-digest", hashlib.sha256).digest()

    def digest(self, secret: str) -> str:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    # -- admission (the request path: one command) --------------------------------------------------------------

    async def admit(self, secret: str, *, scope: str, model: str | None, counted: bool) -> Admission:
        """Check ``secret`` and, when ``counted``, count the request against its limits (one command). Raises
        ``AuthenticationFailed`` (unknown, disabled, expired), ``PermissionDenied`` (scope, model) or
        ``KeyLimitExceeded`` (rpm, rpd, quota, concurrency)."""
        now = time.time()
        slot = secrets.token_hex(8)
        slot_ttl = max(self.settings.request_timeout, self.settings.video_timeout) + 30
        stamps, ends = _periods(now)
        args = [
            self.prefix, self.digest(secret), f"{now:.3f}", scope, model or "", "1" if counted else "0",
            slot, f"{now + slot_ttl:.3f}", _minute(now), _num(60 - now % 60), day_stamp(now),
            _num(_to_next_day(now)), " ".join(stamps), " ".join(_num(e) for e in ends),
        ]
        reply = await self.store.run(ADMIT, (), args)
        verdict = reply[0]
        if verdict == "ok":
            return Admission(reply[1], reply[2], slot=slot if reply[7] == "1" else "", quota_key=reply[5],
                             quota_ttl=int(reply[6] or 0))
        refusal = _refusal(verdict, reply, model, scope)
        refusal.key = (reply[1], reply[2]) if len(reply) > 2 else None  # type: ignore[attr-defined]
        raise refusal

    async def admit_public(self, address: str, *, rpm: int) -> None:
        """Count a public playground request from ``address``; over ``rpm`` this minute → ``KeyLimitExceeded``."""
        now = time.time()
        address_id = hashlib.sha256(address.encode()).hexdigest()[:16]
        count = await self.store.run(PUBLIC_LIMIT, [self.store.key("pub", address_id, _minute(now))], ())
        if int(count) > rpm:
            wait = max(1.0, math.ceil(60 - now % 60))
            raise KeyLimitExceeded(
                f"The public playground allows {rpm} requests per minute per address. Try again in {wait:.0f}s.",
                retry_after=wait, code="rate_limit_exceeded",
            )

    # -- administration -------------------------------------------------------------------------------------------

    async def create(self, spec: KeySpec) -> tuple[ApiKey, str]:
        """A new key and its secret (shown to the operator once; only its digest is stored)."""
        key_id, secret = secrets.token_hex(6), KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        now = time.time()
        display = _display(secret)
        await self.store.run(EDIT, (), [self.prefix, "create", key_id, self.digest(secret), f"{now:.3f}",
                                        "prefix", display, *spec.fields()])
        return ApiKey(key_id, display, spec, now, None), secret

    async def update(self, key_id: str, spec: KeySpec) -> bool:
        return bool(await self.store.run(EDIT, (), [self.prefix, "patch", key_id, *spec.fields()]))

    async def rotate(self, key_id: str) -> str | None:
        """A new secret for the key (the old one stops working at once); None when there is no such key."""
        secret = KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        done = await self.store.run(EDIT, (), [self.prefix, "rotate", key_id, self.digest(secret), _display(secret)])
        return secret if done else None

    async def delete(self, key_id: str) -> bool:
        return bool(await self.store.run(EDIT, (), [self.prefix, "delete", key_id]))

    async def get(self, key_id: str) -> ApiKey | None:
        """One key with its usage over the last ``USAGE_DAYS`` days (one command)."""
        days = _last_days(time.time(), USAGE_DAYS)
        reply = await self.store.run(READ, (), self._read_args(days, "one", key_id))
        keys = _parse(reply[2:], days)
        return keys[0] if keys else None

    async def page(self, *, offset: int = 0, limit: int = 100, name: str = "") -> tuple[list[ApiKey], int, int]:
        """``(keys, next offset (0 = last page), total)``, newest first, with today's usage (one command)."""
        days = _last_days(time.time(), 1)
        reply = await self.store.run(READ, (), self._read_args(days, "page", offset, limit, name, 5000))
        return _parse(reply[2:], days), int(reply[0]), int(reply[1])

    async def count(self) -> tuple[int, int]:
        """``(total, enabled)``: one command per 1,000 keys (the dashboard)."""
        keys, offset, total = await self.page(limit=1000)
        enabled = sum(k.spec.enabled for k in keys)
        while offset:
            more, offset, _ = await self.page(offset=offset, limit=1000)
            enabled += sum(k.spec.enabled for k in more)
        return total, enabled

    def _read_args(self, days: Sequence[str], mode: str, *rest: object) -> list[str | int | float]:
        stamps, _ = _periods(time.time())
        return [self.prefix, self.store.key("st", "d", ""), " ".join(days), " ".join(stamps), mode, *rest]


def _refusal(verdict: str, reply: list[Any], model: str | None, scope: str) -> GatewayError:
    name = reply[2] if len(reply) > 2 else ""
    if verdict == "unknown":
        return AuthenticationFailed("Incorrect API key provided.")
    if verdict == "disabled":
        return AuthenticationFailed(f"API key {name!r} is disabled.", code="api_key_disabled")
    if verdict == "expired":
        return AuthenticationFailed(f"API key {name!r} has expired.", code="api_key_expired")
    if verdict == "scope":
        return PermissionDenied(f"API key {name!r} may not use the {scope} API.", code="scope_not_allowed")
    if verdict == "model":
        message = (f"API key {name!r} may not use the model {model!r}." if model else
                   f"API key {name!r} may use only some models: name one in `model`.")
        return PermissionDenied(message, code="model_not_allowed", param="model")
    wait = float(reply[3]) if reply[3] else None
    limit = reply[4]
    messages = {
        "concurrency": f"API key {name!r} already has {limit} request(s) in flight (its concurrency limit).",
        "rpm": f"API key {name!r} reached its limit of {limit} requests per minute.",
        "rpd": f"API key {name!r} reached its limit of {limit} requests per day.",
        "quota": f"API key {name!r} used up its quota of {limit}.",
    }
    codes = {"concurrency": "concurrency_limit_exceeded", "rpm": "rate_limit_exceeded",
             "rpd": "daily_limit_exceeded", "quota": "insufficient_quota"}
    retry = None if wait is None else max(1.0, math.ceil(wait))
    hint = f" Try again in {retry:.0f}s." if retry else ""
    return KeyLimitExceeded(messages[verdict] + hint, retry_after=retry, code=codes[verdict])


def _parse(items: list[Any], days: Sequence[str]) -> list[ApiKey]:
    keys = []
    for i in range(0, len(items), 4):
        key_id, flat, used, usage = items[i], items[i + 1], items[i + 2], items[i + 3]
        f = dict(zip(flat[::2], flat[1::2], strict=True))
        quota = None
        if f.get("ql"):
            quota = KeyQuota(f.get("qk") or "requests", int(float(f["ql"])), f.get("qp") or "total")  # type: ignore[arg-type]
        spec = KeySpec(
            name=f.get("name", ""), note=f.get("note", ""), enabled=f.get("enabled") == "1",
            expires_at=_opt_float(f.get("exp")), models=tuple(m for m in f.get("models", "").split("\n") if m),
            scopes=tuple(s for s in f.get("scopes", "").split(",") if s), rpm=_opt_int(f.get("rpm")),
            rpd=_opt_int(f.get("rpd")), concurrency=_opt_int(f.get("conc")), quota=quota,
        )
        per_day = [
            (day, KeyUsage(*(int(float(v or 0)) for v in usage[j * 6:(j + 1) * 6])))
            for j, day in enumerate(days[: len(usage) // 6])
        ]
        key = ApiKey(key_id, f.get("prefix", ""), spec, float(f.get("created") or 0), _opt_float(f.get("used")),
                     quota_used=int(float(used or 0)), today=per_day[0][1] if per_day else KeyUsage())
        if len(per_day) > 1:
            key.usage = per_day
        keys.append(key)
    return keys


def _usage_dict(u: KeyUsage) -> dict[str, int]:
    return {"requests": u.requests, "ok": u.ok, "failed": u.failed, "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens, "media": u.media}


def _display(secret: str) -> str:
    body = secret[len(KEY_PREFIX):]
    return f"{KEY_PREFIX}{body[:4]}…{body[-4:]}"


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _opt_int(value: str | None) -> int | None:
    return int(float(value)) if value not in (None, "") else None


def _opt_float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _minute(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M")


def _to_next_day(now: float) -> float:
    return 86400 - now % 86400


def _last_days(now: float, count: int) -> list[str]:
    return [day_stamp(now - 86400 * i) for i in range(count)]


def _periods(now: float) -> tuple[list[str], list[float]]:
    """Stamps of the current day / ISO week / month (UTC) and the seconds until each ends."""
    at = datetime.fromtimestamp(now, UTC)
    year, week, weekday = at.isocalendar()
    day_start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    week_end = day_start + timedelta(days=8 - weekday)
    month_end = (day_start.replace(day=1) + timedelta(days=32)).replace(day=1)
    stamps = [f"d{at:%Y%m%d}", f"w{year}{week:02d}", f"M{at:%Y%m}"]
    return stamps, [_to_next_day(now), (week_end - at).total_seconds(), (month_end - at).total_seconds()]
