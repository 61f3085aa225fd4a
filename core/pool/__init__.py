"""The token pool: Grok session tokens as accounts, quota-aware leasing, failure rules, quota refresh.

Everything is kept in the store (Redis semantics) and changed by Lua scripts, so stateless instances can share
one pool safely. See ``keys.py`` for the layout and ``pool.py`` for the interface.
"""

from core.pool.accounts import (
    Account,
    AccountPage,
    AccountStatus,
    EgressProblems,
    ImportEntry,
    ImportReport,
    Lease,
    Outcome,
    PoolSummary,
    QuotaState,
    import_report,
)
from core.pool.crypto import TokenCipher, TokenDecryptError
from core.pool.pool import TokenPool
from core.pool.quota import (
    CHAT_MODES,
    MEDIA_KINDS,
    TIER_RULES,
    QuotaWindow,
    detect_tier,
    parse_quota_info,
    parse_rate_limits,
)
from core.pool.tokens import account_id, check_token, mask, normalize_token, parse_token_import

__all__ = [
    "CHAT_MODES",
    "MEDIA_KINDS",
    "TIER_RULES",
    "Account",
    "AccountPage",
    "AccountStatus",
    "EgressProblems",
    "ImportEntry",
    "ImportReport",
    "Lease",
    "Outcome",
    "PoolSummary",
    "QuotaState",
    "QuotaWindow",
    "TokenCipher",
    "TokenDecryptError",
    "TokenPool",
    "account_id",
    "check_token",
    "detect_tier",
    "import_report",
    "mask",
    "normalize_token",
    "parse_quota_info",
    "parse_rate_limits",
    "parse_token_import",
]
