"""Per-account accounting of what the gateway did to the simulated service.

The ledger is the referee of the multi-instance tests: a *violation* is a request the gateway should never have
sent — it arrived when the account had no quota left in that mode (or the mode has no quota at all on the tier),
or while the account already had its maximum number of streams open. Violations are also rejected with the
status the real service would use; rejections for other reasons (auth, anti-bot, ...) are counted separately.
Mutated only under ``SimState``'s lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

VIOLATION_KINDS = ("quota_exhausted", "concurrency", "mode_unavailable")


@dataclass(slots=True)
class Violation:
    time: float
    token: str
    user_id: str
    mode: str
    kind: str  # one of VIOLATION_KINDS
    path: str
    remaining: int
    in_flight: int
    concurrency_limit: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "token": self.token,
            "user_id": self.user_id,
            "mode": self.mode,
            "kind": self.kind,
            "path": self.path,
            "remaining": self.remaining,
            "in_flight": self.in_flight,
            "concurrency_limit": self.concurrency_limit,
        }


@dataclass(slots=True)
class AccountLedger:
    token: str
    user_id: str
    accepted: Counter[str] = field(default_factory=Counter)  # mode → accepted requests
    charged: Counter[str] = field(default_factory=Counter)  # mode → charged units
    rejected: Counter[str] = field(default_factory=Counter)  # reason → count
    in_flight: int = 0
    max_in_flight: int = 0
    violations: list[Violation] = field(default_factory=list)

    def open_stream(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def close_stream(self) -> None:
        self.in_flight -= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "user_id": self.user_id,
            "accepted": dict(self.accepted),
            "charged": dict(self.charged),
            "accepted_total": sum(self.accepted.values()),
            "charged_total": sum(self.charged.values()),
            "rejected": dict(self.rejected),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "violation_count": len(self.violations),
            "violations": [v.to_dict() for v in self.violations],
        }


def summarize(ledgers: dict[str, AccountLedger], unattributed: Counter[str]) -> dict[str, Any]:
    accounts = {token: ledger.to_dict() for token, ledger in ledgers.items()}
    violations = sorted(
        (v for ledger in ledgers.values() for v in ledger.violations), key=lambda v: v.time
    )
    return {
        "accounts": accounts,
        "accepted_total": sum(a["accepted_total"] for a in accounts.values()),
        "charged_total": sum(a["charged_total"] for a in accounts.values()),
        "in_flight_total": sum(a["in_flight"] for a in accounts.values()),
        "violation_count": len(violations),
        "violations": [v.to_dict() for v in violations],
        "unattributed_rejections": dict(unattributed),  # e.g. unknown sso tokens
    }
