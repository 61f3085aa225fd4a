"""In-memory state of the simulated grok.com (§12.2): accounts and their quota windows, conversations, files and
generated assets, media posts, videos, the ledger and a log of recent requests.

One ``SimState`` is shared by the server's event loop and, through ``SimulatorServer.state``, by test code in
other threads, so every mutation happens under one re-entrant lock and never across an ``await``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator.config import SimConfig
from simulator.ledger import AccountLedger, Violation, summarize
from simulator.modes import CHAT_DEFAULTS, CHAT_MODES, MEDIA_DEFAULTS, MEDIA_QUOTAS, TIERS
from simulator.replies import ALL, Reply, ReplyQueues, ReplySpec
from simulator.rules import RuleTable

_UID_NAMESPACE = uuid.UUID("6f1c7d1e-6a51-4c8e-9d55-3b0b3c7c0a11")


class SimError(ValueError):
    """A control-API misuse (unknown account, bad mode, ...)."""


class Clock:
    """Wall clock plus an offset tests can advance instead of sleeping through quota windows."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@dataclass(slots=True)
class QuotaWindow:
    total: int
    remaining: int
    window: int  # windowSizeSeconds
    start: float | None = None  # set by the first charge of a fresh window

    def refresh(self, now: float) -> None:
        if self.start is not None and now >= self.start + self.window:
            self.remaining = self.total
            self.start = None

    def resets_at(self) -> float | None:
        return None if self.start is None else self.start + self.window

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "remaining": self.remaining,
            "window_size_seconds": self.window,
            "window_start": self.start,
            "resets_at": self.resets_at(),
        }


@dataclass(slots=True)
class Fault:
    """A forced failure of an account's chat requests (``POST /__sim/accounts/{token}/fault``): upstream trouble
    the gates and quotas cannot produce, e.g. a 5xx, or a 429 while quota is left ("Grok is under heavy usage")."""

    status: int
    times: int | None = None  # how many chat requests fail; None = until cleared
    retry_after: float | None = None  # Retry-After header, seconds
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "times": self.times, "retry_after": self.retry_after,
                "message": self.message}


@dataclass(slots=True)
class Account:
    token: str
    user_id: str
    tier: str
    email: str
    blocked: bool = False
    concurrency_limit: int | None = None
    cf_clearance: str | None = None
    user_agent: str | None = None
    quotas: dict[str, QuotaWindow] = field(default_factory=dict)  # chat modes and Imagine products
    fault: Fault | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "user_id": self.user_id,
            "tier": self.tier,
            "email": self.email,
            "blocked": self.blocked,
            "concurrency_limit": self.concurrency_limit,
            "cf_clearance": self.cf_clearance,
            "user_agent": self.user_agent,
            "quotas": {name: window.to_dict() for name, window in self.quotas.items()},
            "fault": self.fault.to_dict() if self.fault else None,
        }


@dataclass(slots=True)
class Turn:
    user_response_id: str
    assistant_response_id: str
    parent_response_id: str | None
    message: str
    answer: str
    mode: str
    transport: str  # "rest" | "mgw"
    file_attachments: list[str]
    created: float


@dataclass(slots=True)
class Conversation:
    id: str
    owner_token: str
    owner_uid: str
    temporary: bool
    created: float
    title: str = "New conversation"
    turns: list[Turn] = field(default_factory=list)

    def response_ids(self) -> set[str]:
        return {rid for t in self.turns for rid in (t.user_response_id, t.assistant_response_id)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner_uid": self.owner_uid,
            "temporary": self.temporary,
            "title": self.title,
            "turns": [
                {
                    "user_response_id": t.user_response_id,
                    "assistant_response_id": t.assistant_response_id,
                    "parent_response_id": t.parent_response_id,
                    "message": t.message,
                    "answer": t.answer,
                    "mode": t.mode,
                    "transport": t.transport,
                    "file_attachments": t.file_attachments,
                }
                for t in self.turns
            ],
        }


@dataclass(slots=True)
class Asset:
    """A downloadable file. Generated media is built lazily from ``factory`` so streams stay cheap."""

    owner_uid: str | None  # None = public
    content_type: str
    data: bytes | None = None
    factory: Callable[[], bytes] | None = None

    def body(self) -> bytes:
        if self.data is None:
            assert self.factory is not None
            self.data = self.factory()
        return self.data


@dataclass(slots=True)
class StoredFile:
    id: str
    owner_uid: str
    name: str
    mime: str
    size: int
    uri: str  # users/<uid>/<id>/content
    source: str  # "legacy" | "v2"


@dataclass(slots=True)
class Post:
    id: str
    owner_uid: str
    media_type: str
    media_url: str
    prompt: str
    created: float


@dataclass(slots=True)
class Video:
    id: str
    owner_uid: str
    post_id: str
    url: str  # relative asset path of generated_video.mp4
    hd_url: str | None = None
    shared: bool = False
    seconds: float = 0.0  # clip length (an extension round: the extended clip's start time + its own length)
    extends: str | None = None  # the clip an extension round continued


@dataclass(slots=True)
class RecordedRequest:
    time: float
    transport: str  # "http" | "ws"
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "transport": self.transport,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "status": self.status,
        }


class Admission:
    """A granted request: quota already charged, one stream counted in flight until ``release()``."""

    __slots__ = ("_ledger", "_released", "_state", "account", "cost", "mode")

    def __init__(self, state: SimState, account: Account, ledger: AccountLedger, mode: str, cost: int) -> None:
        self._state = state
        self._ledger = ledger  # the object, not the token: a reset() in between must not skew new counters
        self._released = False
        self.account = account
        self.mode = mode
        self.cost = cost

    def release(self) -> None:
        if not self._released:
            self._released = True
            with self._state._lock:
                self._ledger.close_stream()


@dataclass(slots=True, frozen=True)
class Rejection:
    reason: str  # quota_exhausted | concurrency | mode_unavailable
    mode: str


class SimState:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = Clock()
        self.rules = RuleTable()
        self.replies = ReplyQueues()
        self._lock = threading.RLock()
        self._init_data()

    def _init_data(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.clearances: dict[str, str | None] = {}  # cf_clearance → the User-Agent it is bound to
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.files: dict[str, StoredFile] = {}
        self.assets: dict[str, Asset] = {}  # "users/<uid>/..." on the assets host
        self.public_assets: dict[str, Asset] = {}  # "imagine-public/..." on imagine-public
        self.posts: dict[str, Post] = {}
        self.videos: dict[str, Video] = {}
        self.recent_requests: deque[RecordedRequest] = deque(maxlen=self.config.request_log_size)
        self._ledgers: dict[str, AccountLedger] = {}
        self._unattributed: Counter[str] = Counter()

    # -- accounts ---------------------------------------------------------------------------------------------

    def add_account(
        self,
        token: str,
        *,
        tier: str = "super",
        user_id: str | None = None,
        blocked: bool = False,
        quotas: dict[str, Any] | None = None,
        concurrency_limit: int | None = None,
        cf_clearance: str | None = None,
        user_agent: str | None = None,
        email: str | None = None,
    ) -> Account:
        """Create (or replace) an account. ``quotas`` maps a mode or Imagine product to a total or to
        ``{"total", "remaining", "window"}``; everything else gets the tier defaults."""
        if tier not in TIERS:
            raise SimError(f"tier must be one of {TIERS}")
        if not token:
            raise SimError("token must not be empty")
        uid = user_id or str(uuid.uuid5(_UID_NAMESPACE, token))
        windows = {
            name: QuotaWindow(total, total, window)
            for table in (CHAT_DEFAULTS[tier], MEDIA_DEFAULTS[tier])
            for name, (total, window) in table.items()
        }
        account = Account(
            token=token,
            user_id=uid,
            tier=tier,
            email=email or f"{uid[:8]}@sim.grok.invalid",
            blocked=blocked,
            concurrency_limit=concurrency_limit,
            cf_clearance=cf_clearance,
            user_agent=user_agent,
            quotas=windows,
        )
        with self._lock:
            self.accounts[token] = account
            for name, spec in (quotas or {}).items():
                if isinstance(spec, int):
                    spec = {"total": spec}
                self._set_quota(account, name, **spec)
            if cf_clearance:
                self.clearances[cf_clearance] = user_agent
            self._ledger(account)
        return account

    def remove_account(self, token: str) -> None:
        with self._lock:
            self.accounts.pop(token, None)

    def block(self, token: str, blocked: bool = True) -> None:
        with self._lock:
            self.require_account(token).blocked = blocked

    def set_concurrency_limit(self, token: str, limit: int | None) -> None:
        with self._lock:
            self.require_account(token).concurrency_limit = limit

    def set_fault(
        self,
        token: str,
        status: int | None,
        *,
        times: int | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Make the account's next ``times`` chat requests (all when None) fail with ``status``; None clears."""
        if status is not None and not 400 <= int(status) <= 599:
            raise SimError("fault status must be a 4xx or 5xx code")
        if times is not None and int(times) < 1:
            raise SimError("fault times must be at least 1 (or null for every request)")
        with self._lock:
            account = self.require_account(token)
            account.fault = None if status is None else Fault(
                int(status), None if times is None else int(times),
                None if retry_after is None else float(retry_after), message)

    def take_fault(self, account: Account) -> Fault | None:
        """The fault this chat request must answer with, if any (counted as a rejection, not a violation)."""
        with self._lock:
            fault = account.fault
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    account.fault = None
            self._ledger(account).rejected[f"fault_{fault.status}"] += 1
            return fault

    def register_clearance(self, value: str, user_agent: str | None = None) -> None:
        """Accept ``cf_clearance=value`` in Cloudflare mode, bound to ``user_agent`` (None = any UA)."""
        with self._lock:
            self.clearances[value] = user_agent

    def set_quota(
        self,
        token: str,
        mode: str,
        *,
        total: int | None = None,
        remaining: int | None = None,
        window: int | None = None,
    ) -> QuotaWindow:
        with self._lock:
            return self._set_quota(self.require_account(token), mode, total=total, remaining=remaining, window=window)

    def _set_quota(
        self,
        account: Account,
        mode: str,
        *,
        total: int | None = None,
        remaining: int | None = None,
        window: int | None = None,
    ) -> QuotaWindow:
        if mode not in CHAT_MODES and mode not in MEDIA_QUOTAS:
            raise SimError(f"unknown quota {mode!r}; expected one of {CHAT_MODES + MEDIA_QUOTAS}")
        quota = account.quotas[mode]
        if total is not None:
            quota.total = int(total)
            quota.remaining = quota.total if remaining is None else quota.remaining
        if remaining is not None:
            quota.remaining = int(remaining)
        if window is not None:
            quota.window = int(window)
        quota.remaining = max(0, min(quota.remaining, quota.total))
        # A partly used window must be ticking, or it would never reset.
        quota.start = self.clock.now() if quota.remaining < quota.total else None
        return quota

    def quota(self, token: str, mode: str) -> QuotaWindow:
        """The live window after applying any due reset."""
        with self._lock:
            window = self.require_account(token).quotas[mode]
            window.refresh(self.clock.now())
            return window

    def get_account(self, token: str) -> Account | None:
        return self.accounts.get(token)

    def account_for_uid(self, uid: str) -> Account | None:
        with self._lock:
            return next((a for a in self.accounts.values() if a.user_id == uid), None)

    def require_account(self, token: str) -> Account:
        account = self.accounts.get(token)
        if account is None:
            raise SimError("unknown account")
        return account

    def advance_time(self, seconds: float) -> None:
        """Move the simulator's clock forward (quota windows, timestamps)."""
        with self._lock:
            self.clock.offset += seconds

    # -- admission and the ledger ----------------------------------------------------------------------------

    def admit(self, account: Account, mode: str, cost: int, path: str) -> Admission | Rejection:
        """Charge ``cost`` units of ``mode`` and open a stream, or refuse and record a violation."""
        with self._lock:
            now = self.clock.now()
            quota = account.quotas[mode]
            quota.refresh(now)
            ledger = self._ledger(account)
            limit = account.concurrency_limit
            if quota.total <= 0:
                kind = "mode_unavailable"
            elif quota.remaining < cost:
                kind = "quota_exhausted"
            elif limit is not None and ledger.in_flight >= limit:
                kind = "concurrency"
            else:
                quota.remaining -= cost
                if quota.start is None:
                    quota.start = now
                ledger.accepted[mode] += 1
                ledger.charged[mode] += cost
                ledger.open_stream()
                return Admission(self, account, ledger, mode, cost)
            ledger.rejected[kind] += 1
            ledger.violations.append(
                Violation(now, account.token, account.user_id, mode, kind, path, quota.remaining,
                          ledger.in_flight, limit)
            )
            return Rejection(kind, mode)

    def record_rejection(self, account: Account | None, reason: str) -> None:
        with self._lock:
            if account is None:
                self._unattributed[reason] += 1
            else:
                self._ledger(account).rejected[reason] += 1

    def _ledger(self, account: Account) -> AccountLedger:
        ledger = self._ledgers.get(account.token)
        if ledger is None:
            ledger = self._ledgers[account.token] = AccountLedger(account.token, account.user_id)
        return ledger

    def ledger(self, token: str | None = None) -> dict[str, Any]:
        """Snapshot: per-account accepted/charged per mode, rejections, in-flight, violations (see ledger.py)."""
        with self._lock:
            if token is not None:
                ledger = self._ledgers.get(token)
                if ledger is None:
                    raise SimError("unknown account")
                return ledger.to_dict()
            return summarize(self._ledgers, self._unattributed)

    def reset_ledger(self) -> None:
        with self._lock:
            for ledger in self._ledgers.values():  # same objects: open streams still release into them
                ledger.accepted.clear()
                ledger.charged.clear()
                ledger.rejected.clear()
                ledger.violations.clear()
                ledger.max_in_flight = ledger.in_flight
            self._unattributed.clear()

    # -- scripted replies ------------------------------------------------------------------------------------

    def script_replies(self, token: str | None, replies: Iterable[ReplySpec], *, replace: bool = False) -> int:
        """Queue the texts of the next answers of ``token``'s chat turns (``None``: any account's, used when the
        account's own queue is empty). A reply is a string or ``{"text", "thinking"}``. Returns the queue length."""
        return self.replies.add(token, replies, replace=replace)

    def clear_replies(self, token: str | None = ALL) -> None:
        """Forget queued replies: all (default), the global queue (``None``) or one account's."""
        self.replies.clear(token)

    def scripted_replies(self) -> dict[str, Any]:
        """``{"global": [...], "accounts": {token: [...]}}``, each reply as ``{"text", "thinking"}``."""
        return self.replies.snapshot()

    def take_reply(self, account: Account) -> Reply | None:
        return self.replies.take(account.token)

    # -- conversations ---------------------------------------------------------------------------------------

    def create_conversation(self, account: Account, *, temporary: bool) -> Conversation:
        with self._lock:
            conv = Conversation(str(uuid.uuid4()), account.token, account.user_id, temporary, self.clock.now())
            self.conversations[conv.id] = conv
            while len(self.conversations) > self.config.max_conversations:
                self.conversations.popitem(last=False)
            return conv

    def find_conversation(self, conversation_id: str, account: Account) -> Conversation | None:
        with self._lock:
            conv = self.conversations.get(conversation_id)
            if conv is None or conv.owner_uid != account.user_id:
                return None
            return conv

    def add_turn(self, conv: Conversation, turn: Turn) -> None:
        with self._lock:
            conv.turns.append(turn)

    # -- files and assets ------------------------------------------------------------------------------------

    def store_upload(self, account: Account, name: str, mime: str, data: bytes, source: str) -> StoredFile:
        file_id = str(uuid.uuid4())
        uri = f"users/{account.user_id}/{file_id}/content"
        stored = StoredFile(file_id, account.user_id, name, mime, len(data), uri, source)
        with self._lock:
            self.files[file_id] = stored
            self.assets[uri] = Asset(account.user_id, mime, data=data)
        return stored

    def put_asset(self, path: str, asset: Asset) -> None:
        with self._lock:
            self.assets[path] = asset

    def put_public(self, path: str, asset: Asset) -> None:
        with self._lock:
            self.public_assets[path] = asset

    def asset(self, path: str) -> Asset | None:
        return self.assets.get(path)

    def delete_file(self, account: Account, file_id: str) -> bool:
        with self._lock:
            stored = self.files.get(file_id)
            if stored is None or stored.owner_uid != account.user_id:
                return False
            del self.files[file_id]
            self.assets.pop(stored.uri, None)
            return True

    # -- media posts and videos ------------------------------------------------------------------------------

    def create_post(self, owner_uid: str, media_type: str, media_url: str, prompt: str) -> Post:
        post = Post(str(uuid.uuid4()), owner_uid, media_type, media_url, prompt, self.clock.now())
        with self._lock:
            self.posts[post.id] = post
        return post

    def add_video(self, video: Video) -> None:
        with self._lock:
            self.videos[video.id] = video

    # -- request log -----------------------------------------------------------------------------------------

    def record_request(self, entry: RecordedRequest) -> None:
        with self._lock:
            self.recent_requests.append(entry)

    def requests(self, *, limit: int | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Recent requests, oldest first; ``path`` filters by prefix."""
        with self._lock:
            items: Iterable[RecordedRequest] = self.recent_requests
            if path:
                items = [r for r in items if r.path.startswith(path)]
            result = [r.to_dict() for r in items]
        return result[-limit:] if limit else result

    def clear_requests(self) -> None:
        with self._lock:
            self.recent_requests.clear()

    # -- whole-state operations ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (accounts, data, ledger, rules, scripted replies, clock offset); keep the config."""
        with self._lock:
            self._init_data()
            self.rules.clear()
            self.replies.clear()
            self.clock.offset = 0.0
