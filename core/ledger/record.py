"""What one API request did, gathered as it runs and written once when it ends.

The request-log middleware (``api/_ledger.py``) opens a ``RequestRecord`` for every ``/v1`` request and makes it
the current one (a context variable, so the chat engine deep below fills it in without every layer passing it
along). The record is written exactly once: folded into the final settle of a chat answer (no extra store
command), or by the middleware when the request ends without one (errors, media, listings).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

_current: ContextVar[RequestRecord | None] = ContextVar("grok2api_request_record", default=None)


@dataclass(slots=True)
class RequestRecord:
    route: str
    started_at: float = field(default_factory=time.time)  # wall clock, for the log
    t0: float = field(default_factory=time.monotonic)  # for latencies
    key_id: str = ""  # store-managed key id; "env", "console", "public" or "" (open access) otherwise
    key_name: str = ""
    client: str = ""  # the client's address, kept only for public playground requests (they share one "key")
    key_slot: str = ""  # the key's concurrency slot (member of its slot set), released when written
    quota_key: str = ""  # the key's token-quota counter for this period ('' = no token quota)
    quota_ttl: int = 0
    model: str = ""
    account: str = ""
    status: int = 0
    error_kind: str = ""
    error: str = ""
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    attempts: int = 0
    media: list[str] = field(default_factory=list)
    prompt: str = ""
    answer: str = ""
    # Whether the record is written: the middleware starts it False and client auth turns it on once it knows who
    # is asking (an anonymous request must not spend store commands); True for records made outside the API.
    logged: bool = True
    once: str = field(default_factory=lambda: secrets.token_hex(8))  # its write happens once (core/ledger/writer)
    written: bool = False

    @property
    def latency_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400 and not self.error_kind

    def fail(self, status: int, kind: str, message: str) -> None:
        self.status, self.error_kind, self.error = status, kind, message


def begin(route: str) -> tuple[RequestRecord, object]:
    """A new current record; returns it and the token that ``end`` needs."""
    record = RequestRecord(route=route)
    return record, _current.set(record)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def current() -> RequestRecord | None:
    """The record of the request being served, if any (none outside the API, e.g. in tests of the engine)."""
    return _current.get()


# Requesters that see every record they could own (video jobs): the operator's own keys and console, open access.
_SEES_ALL = ("", "env", "console")


def requester() -> str:
    """Who the current request is, for records it owns (video jobs): its store key id, ``env`` / ``console`` /
    ``""`` (the operator, who sees everything), or one public playground client by its address."""
    record = _current.get()
    if record is None:
        return ""
    if record.key_id == "public":
        return "public:" + hashlib.sha256(record.client.encode()).hexdigest()[:16]
    return record.key_id


def may_see(owner: str | None, viewer: str) -> bool:
    """Whether ``viewer`` (a ``requester()``) may read or delete a record ``owner`` made."""
    return viewer in _SEES_ALL or (owner or "") == viewer


def note_media(media_id: str) -> None:
    """Remember a media object this request produced (shown in the log entry)."""
    record = _current.get()
    if record is not None and media_id not in record.media:
        record.media.append(media_id)
