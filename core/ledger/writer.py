"""Turn a finished ``RequestRecord`` into store writes: one log entry, hourly and daily counters, the key's usage.

``Ledger.ops(record)`` packs them into one argument for ``lua/apply.lua`` (one string: the Redis client encodes
each argument separately, and a hundred of them cost more than everything else here); the pool's settle script
runs it in the same step that settles the final lease (the chat hot path spends no command on it),
``Ledger.write`` runs it alone.

Counters (HASH per hour ``st:h:<YYYYMMDDHH>`` and per day ``st:d:<YYYYMMDD>``, the same fields):

    req ok fail pt ct ms tt ttn   requests, successes, failures, prompt/completion tokens, latency and TTFT sums (ms)
    b<i>                          latency histogram: requests whose latency fell in bucket i (``LATENCY_BUCKETS``)
    e:<kind>                      failures by error kind (the error code, e.g. ``upstream_server``)
    m:<model>:<req|ok|fail|tok>   per model        k:<key id>:<req|ok|fail|pt|ct|md>   per key (md = media)
    a:<account>:<req|ok|fail|tok> per account
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from core.ledger.record import RequestRecord
from core.settings import Settings
from core.store import Script, Store, lua_source

# Upper bounds (ms) of the latency histogram's buckets; the last one is open.
LATENCY_BUCKETS = (100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000, 120000, float("inf"))
HOUR_TTL = 8 * 86400
_NAME = re.compile(r"[^A-Za-z0-9._/-]")
_TEXT_CAP = 500  # longest error message kept in a log entry
_OP, _FIELD = "\x1e", "\x1f"  # separators of the packed ledger (ASCII record / unit separators)
_SEPARATORS = str.maketrans({_OP: " ", _FIELD: " "})


APPLY_LUA = lua_source("core.ledger", "apply")
WRITE = Script("ledger.write", APPLY_LUA + "\n" + lua_source("core.ledger", "write"))
ONCE_TTL = 600  # seconds a record's write marker lives: longer than any retry of that write


def label(value: str) -> str:
    """A model / key / account name as a counter field part (no separators, bounded)."""
    return _NAME.sub("_", value)[:80] or "-"


def bucket(latency_ms: float) -> int:
    return next(i for i, bound in enumerate(LATENCY_BUCKETS) if latency_ms <= bound)


def hour_stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H")


def day_stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d")


class Ledger:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.log_key = store.key("log")

    def hour_key(self, stamp: str) -> str:
        return self.store.key("st", "h", stamp)

    def day_key(self, stamp: str) -> str:
        return self.store.key("st", "d", stamp)

    def slots_key(self, key_id: str) -> str:
        return self.store.key("key", key_id, "slots")

    def ops(self, record: RequestRecord, now: float | None = None) -> str:
        """The writes for ``record``, packed for ``apply.lua`` (ops joined by \\x1e, their fields by \\x1f)."""
        now = time.time() if now is None else now
        latency = record.latency_ms
        counters = self._counters(record, latency, record.ok)
        retention = int(self.settings.usage_retention_days * 86400)
        ops = [[
            "H", "2", self.hour_key(hour_stamp(now)), str(HOUR_TTL), self.day_key(day_stamp(now)), str(retention),
            *(item for pair in counters.items() for item in (pair[0], str(pair[1]))),
        ]]
        if record.quota_key and record.prompt_tokens + record.completion_tokens > 0:
            tokens = record.prompt_tokens + record.completion_tokens
            ops.append(["I", record.quota_key, str(tokens), str(record.quota_ttl)])
        if record.key_slot:
            ops.append(["Z", self.slots_key(record.key_id), record.key_slot])
        ops.append(["X", self.log_key, str(self.settings.log_max_entries), *self._entry(record, latency)])
        return _OP.join(_FIELD.join(_clean(field) for field in op) for op in ops)

    async def write(self, record: RequestRecord) -> None:
        """Write the record on its own (one command), at most once however often it is retried. Marks it
        written."""
        marker = self.store.key("ledger", "once", record.once)
        await self.store.run(WRITE, (), [self.ops(record), marker, ONCE_TTL])
        record.written = True

    def _counters(self, record: RequestRecord, latency: float, ok: bool) -> dict[str, int]:
        tokens = record.prompt_tokens + record.completion_tokens
        result = "ok" if ok else "fail"
        c: dict[str, int] = {
            "req": 1, result: 1, "pt": record.prompt_tokens, "ct": record.completion_tokens,
            "ms": round(latency), f"b{bucket(latency)}": 1,
        }
        if record.ttft_ms is not None:
            c["tt"], c["ttn"] = round(record.ttft_ms), 1
        if not ok:
            c[f"e:{label(record.error_kind or str(record.status))}"] = 1
        if record.model:
            m = f"m:{label(record.model)}:"
            c.update({m + "req": 1, m + result: 1, m + "tok": tokens})
        if record.key_id:
            k = f"k:{label(record.key_id)}:"
            c.update({k + "req": 1, k + result: 1, k + "pt": record.prompt_tokens,
                      k + "ct": record.completion_tokens, k + "md": len(record.media)})
        if record.account:
            a = f"a:{label(record.account)}:"
            c.update({a + "req": 1, a + result: 1, a + "tok": tokens})
        return {name: value for name, value in c.items() if value}

    def _entry(self, record: RequestRecord, latency: float) -> list[str]:
        fields = {
            "t": f"{record.started_at:.3f}", "k": record.key_id, "kn": record.key_name, "r": record.route,
            "m": record.model[:200], "a": record.account, "s": str(record.status), "ek": record.error_kind,
            "e": record.error[:_TEXT_CAP], "ms": str(round(latency)),
            "tt": "" if record.ttft_ms is None else str(round(record.ttft_ms)),
            "pt": str(record.prompt_tokens), "ct": str(record.completion_tokens), "st": "1" if record.stream else "0",
            "at": str(record.attempts), "md": ",".join(record.media),
        }
        keep = self.settings.log_content_chars
        if keep > 0:
            fields["p"], fields["an"] = record.prompt[:keep], record.answer[:keep]
        flat: list[str] = []
        for name, value in fields.items():
            if value != "":
                flat += [name, value]
        return flat


def _clean(value: str) -> str:
    """A field of the packed ledger: no separators inside (the edge already removed other control characters)."""
    return value.translate(_SEPARATORS) if (_OP in value or _FIELD in value) else value
