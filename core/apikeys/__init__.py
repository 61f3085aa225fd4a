"""Client API keys kept in the store: created and revoked at run time, each with its own limits and usage.

``ApiKeys.admit`` checks a presented key and counts the request against its limits in one store command
(``lua/admit.lua``); the request's final settle frees its concurrency slot and counts its tokens (core/ledger).
"""

from core.apikeys.keys import (
    KEY_PREFIX,
    SCOPES,
    Admission,
    ApiKey,
    ApiKeys,
    KeyQuota,
    KeySpec,
    KeyUsage,
    looks_like_store_key,
    well_formed,
)

__all__ = [
    "KEY_PREFIX", "SCOPES", "Admission", "ApiKey", "ApiKeys", "KeyQuota", "KeySpec", "KeyUsage",
    "looks_like_store_key", "well_formed",
]
