"""Reading the ledger for the admin API: request log pages, chart data, pool history. Each read is one command.

The log is a capped Redis stream (``log``; ``LOG_MAX_ENTRIES``, ``LOG_RETENTION_DAYS``): entry ids are the
cursors. Charts read the hourly or daily counter hashes (``writer.py``) in one script call and derive rates,
means and a p95 from the latency histogram. Pool history is a sorted set of snapshots (``st:pool``) taken by the
cron tick and by the dashboard's summary call, at most one per ``SNAPSHOT_EVERY``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from core.ledger.writer import LATENCY_BUCKETS, Ledger, day_stamp, hour_stamp
from core.store import Script, lua_source

if TYPE_CHECKING:
    from core.pool import PoolSummary

SNAPSHOT_EVERY = 300.0  # seconds between pool snapshots
HISTORY_DAYS = 31
MAX_SCAN = 5000  # log entries one page may look at (a filter that matches little still answers quickly)


def _script(name: str) -> Script:
    return Script(f"ledger.{name}", lua_source("core.ledger", name))


QUERY, HASHES = _script("query"), _script("hashes")
_ENTRY_FIELDS = {
    "k": "key_id", "kn": "key_name", "r": "route", "m": "model", "a": "account", "ek": "error_kind", "e": "error",
    "p": "prompt", "an": "answer",
}


@dataclass(slots=True)
class LogFilter:
    since: float | None = None
    until: float | None = None
    key: str = ""
    model: str = ""
    status: str = ""  # a code ("429"), a class ("4xx"), "ok" or "error"
    account: str = ""
    route: str = ""


def entry_dict(entry_id: str, flat: list[str]) -> dict[str, Any]:
    f = dict(zip(flat[::2], flat[1::2], strict=True))
    out: dict[str, Any] = {"id": entry_id, "time": float(f.get("t") or 0)}
    for short, name in _ENTRY_FIELDS.items():
        out[name] = f.get(short, "") if short not in ("p", "an") else f.get(short)
    out["status"] = int(f.get("s") or 0)
    out["latency_ms"] = int(f.get("ms") or 0)
    out["ttft_ms"] = int(f["tt"]) if f.get("tt") else None
    out["prompt_tokens"], out["completion_tokens"] = int(f.get("pt") or 0), int(f.get("ct") or 0)
    out["stream"], out["attempts"] = f.get("st") == "1", int(f.get("at") or 0)
    out["media"] = [m for m in f.get("md", "").split(",") if m]
    if out["prompt"] is None:
        del out["prompt"], out["answer"]
    return out


class LedgerReader:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.pool_key = ledger.store.key("st", "pool")

    # -- request log -------------------------------------------------------------------------------------------

    async def logs(self, flt: LogFilter, *, cursor: str = "", limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """A page of log entries, newest first, and the cursor of the next page (None: no more)."""
        oldest = time.time() - self.ledger.settings.log_retention_days * 86400
        since = max(flt.since or 0.0, oldest)
        args = [
            self.ledger.log_key, cursor, _stream_id(since), _stream_id(flt.until) if flt.until else "+", limit,
            MAX_SCAN, flt.key, flt.model, flt.status, flt.account, flt.route,
        ]
        reply = await self.store.run(QUERY, (), args)
        entries = [entry_dict(reply[i], reply[i + 1]) for i in range(1, len(reply), 2)]
        return entries, reply[0] or None

    async def log_entry(self, entry_id: str) -> dict[str, Any] | None:
        found = await self.store.call("XRANGE", self.ledger.log_key, entry_id, entry_id)
        return entry_dict(found[0][0], found[0][1]) if found else None

    async def trim(self) -> int:
        """Drop log entries older than ``LOG_RETENTION_DAYS`` (the cron tick; the cap by count is kept by XADD)."""
        oldest = time.time() - self.ledger.settings.log_retention_days * 86400
        return int(await self.store.call("XTRIM", self.ledger.log_key, "MINID", "~", _stream_id(oldest)))

    # -- charts ------------------------------------------------------------------------------------------------

    async def stats(self, span: Literal["24h", "30d"] = "24h", now: float | None = None) -> dict[str, Any]:
        """Hourly buckets for the last 24 hours or daily ones for the last 30 days, oldest first, with totals and
        breakdowns by model, key and account."""
        now = time.time() if now is None else now
        if span == "24h":
            starts = [(int(now // 3600) - i) * 3600 for i in range(23, -1, -1)]
            keys = [self.ledger.hour_key(hour_stamp(t)) for t in starts]
        else:
            starts = [(int(now // 86400) - i) * 86400 for i in range(29, -1, -1)]
            keys = [self.ledger.day_key(day_stamp(t)) for t in starts]
        hashes = await self.store.run(HASHES, (), keys)
        total: dict[str, int] = {}
        buckets = []
        for start, flat in zip(starts, hashes, strict=True):
            counters = {name: int(value) for name, value in zip(flat[::2], flat[1::2], strict=True)}
            buckets.append({"t": start, **_summary(counters)})
            for name, value in counters.items():
                total[name] = total.get(name, 0) + value
        return {
            "range": span, "buckets": buckets, "totals": _summary(total),
            "by_model": _breakdown(total, "m"), "by_key": _breakdown(total, "k"), "by_account": _breakdown(total, "a"),
        }

    async def today(self) -> dict[str, Any]:
        flat = await self.store.call("HGETALL", self.ledger.day_key(day_stamp(time.time())))
        return _summary({name: int(value) for name, value in zip(flat[::2], flat[1::2], strict=True)})

    # -- pool history ------------------------------------------------------------------------------------------

    async def snapshot(self, point: dict[str, Any], *, now: float | None = None, force: bool = False) -> bool:
        """Keep a pool snapshot unless one is younger than ``SNAPSHOT_EVERY`` (one command)."""
        now = time.time() if now is None else now
        member = json.dumps({"t": round(now), **point}, separators=(",", ":"))
        reply = await self.store.run(SNAPSHOT, [self.pool_key], [f"{now:.3f}", member, SNAPSHOT_EVERY if not force
                                                                 else 0, HISTORY_DAYS * 86400])
        return bool(reply)

    async def pool_history(self, span: Literal["24h", "30d"] = "24h") -> list[dict[str, Any]]:
        now = time.time()
        start = now - (86400 if span == "24h" else 30 * 86400)
        members = await self.store.call("ZRANGEBYSCORE", self.pool_key, f"{start:.3f}", "+inf")
        points = [json.loads(m) for m in members]
        if span == "30d":  # one point per hour at most: the last of each hour
            hourly: dict[int, dict[str, Any]] = {}
            for point in points:
                hourly[int(point["t"] // 3600)] = point
            points = list(hourly.values())
        return points


SNAPSHOT = Script("ledger.snapshot", """
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local now, every = tonumber(ARGV[1]), tonumber(ARGV[3])
if every > 0 and last[2] and now - tonumber(last[2]) < every then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
return 1
""")


def pool_point(summary: PoolSummary) -> dict[str, Any]:
    """What a pool-history point keeps of a pool summary."""
    s = summary.by_status
    return {"total": summary.total, "active": s.get("active", 0), "cooling": s.get("cooling", 0),
            "invalid": s.get("invalid", 0), "disabled": s.get("disabled", 0), "remaining": dict(summary.remaining)}


def _stream_id(at: float) -> str:
    return str(int(at * 1000))


def _summary(c: dict[str, int]) -> dict[str, Any]:
    requests = c.get("req", 0)
    return {
        "requests": requests, "ok": c.get("ok", 0), "failed": c.get("fail", 0),
        "prompt_tokens": c.get("pt", 0), "completion_tokens": c.get("ct", 0),
        "latency_mean_ms": round(c.get("ms", 0) / requests, 1) if requests else None,
        "latency_p95_ms": _percentile(c, 0.95),
        "ttft_mean_ms": round(c.get("tt", 0) / c["ttn"], 1) if c.get("ttn") else None,
        "errors": {name[2:]: value for name, value in c.items() if name.startswith("e:")},
    }


def _percentile(c: dict[str, int], q: float) -> float | None:
    """From the histogram: the upper bound of the bucket holding the q-quantile (the last, open bucket: its
    lower bound, as nothing better is known)."""
    counts = [c.get(f"b{i}", 0) for i in range(len(LATENCY_BUCKETS))]
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank:
            bound = LATENCY_BUCKETS[i]
            return float(bound if bound != float("inf") else LATENCY_BUCKETS[i - 1])
    return None


def _breakdown(c: dict[str, int], kind: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, value in c.items():
        if name.startswith(kind + ":"):
            label, _, field = name[len(kind) + 1:].rpartition(":")
            row = out.setdefault(label, {"requests": 0, "ok": 0, "failed": 0, "tokens": 0})
            key = {"req": "requests", "ok": "ok", "fail": "failed", "tok": "tokens"}.get(field)
            if key:
                row[key] += value
            elif field in ("pt", "ct"):
                row["tokens"] += value
    return out
