"""Where the pool keeps its state. Every key goes through ``Store.key`` (so the store prefix applies).

    <p>pool:ids              ZSET  account id -> import sequence number (listing order; stale-scan cursor)
    <p>pool:seq              STRING counter behind those sequence numbers
    <p>pool:egress           HASH  cloudflare, anti_bot (counts), last_at, last_kind, last_message, last_account
    <p>acct:<id>             HASH  one account (fields below)
    <p>acct:<id>:leases      ZSET  lease id -> expiry (epoch s); in-flight = members not yet expired
    <p>sticky:<sha>          STRING account id last used for a conversation key (TTL sticky_ttl)
    <p>usage:<YYYYMMDD>      HASH  daily counters m:<model>:<req|ok|fail|lost|pt|ct|ms>, a:<id>:<...>, egress:<kind>
    <p>refresh:<job>         HASH  quota refresh job progress (TTL 1 day)

The lease index (kept true by every script that changes an account; details in ``lua/common.lua``):

    <p>pool:ix:<mode>:<tier>   ZSET  accounts that can take a lease in that mode now -> preference score
    <p>pool:ixb:<mode>:<tier>  ZSET  the same at their concurrency cap (what a waiting lease waits for)
    <p>pool:fr:<mode>          ZSET  accounts with fresh quota in the mode -> refreshed at
    <p>pool:ex:<mode>          ZSET  accounts out of quota in the mode -> reset time
    <p>pool:cooling            ZSET  cooling accounts -> end of the cooldown
    <p>pool:disabled, pool:invalid, pool:tier:<tier>   SET   for counts (listings, explanations)
    <p>pool:leases             ZSET  "<id>|<lease id>|<model>" -> expiry: every lease, to expire orphans
    <p>pool:inst:<instance>    SET   the same members for one INSTANCE_ID, to reclaim after a restart
    <p>pool:ixv                STRING set once the index covers every account (else the first lease reindexes)

Account hash fields: token, enc (aesgcm|none), masked, tier (basic|super|heavy|unknown), enabled (1|0),
state (active|cooling|invalid), reason, until, strikes, fails (consecutive transient failures), tags (JSON list),
note, concurrency (per-account cap, empty = default), created_at, requests, failures, lost (requests whose lease
was dropped unsettled), last_used_at, last_error, last_error_at, q_at (last quota refresh), refreshing (lease id
of a quota refresh), ixt / ixs (where the index has the account), and per quota kind K (auto, fast, expert,
heavy, image, image_pro, image_edit, video, video_720p): q:K:rem, q:K:tot, q:K:win, q:K:reset, q:K:at.

The Lua scripts derive every key from the ``acct:`` and ``pool:`` prefixes passed in ARGV, because one lease
touches keys it only learns about as it goes (the account it picks). That needs a single-node Redis (which
Upstash, Render Key Value and the embedded server all are), not Redis Cluster.
"""

from __future__ import annotations

import hashlib

from core.store import Store


class PoolKeys:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.ids = store.key("pool", "ids")
        self.seq = store.key("pool", "seq")
        self.egress = store.key("pool", "egress")
        self.account_prefix = store.key("acct", "")
        self.pool_prefix = store.key("pool", "")  # the index keys (see common.lua) are derived from it
        self.index_version = store.key("pool", "ixv")
        self.all_leases = store.key("pool", "leases")

    def account(self, account_id: str) -> str:
        return self.account_prefix + account_id

    def leases(self, account_id: str) -> str:
        return self.account_prefix + account_id + ":leases"

    def sticky(self, conversation_key: str) -> str:
        return self._store.key("sticky", hashlib.sha256(conversation_key.encode()).hexdigest()[:32])

    def usage(self, day: str) -> str:
        return self._store.key("usage", day)

    def refresh_job(self, job_id: str) -> str:
        return self._store.key("refresh", job_id)
