"""Quota windows as grok.com reports them, and what they tell us about an account's tier.

Sources (protocol §6): ``POST /rest/rate-limits {"modelName": "<mode>"}`` per chat mode, and
``POST /rest/media/imagine/quota_info`` for the media products. Parsing is lenient: unknown fields are ignored,
missing numbers become ``None`` ("unknown"), never an exception.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

CHAT_MODES = ("auto", "fast", "expert", "heavy")
MEDIA_KINDS = ("image", "image_pro", "image_edit", "video", "video_720p")
QUOTA_KINDS = CHAT_MODES + MEDIA_KINDS
TIERS = ("basic", "super", "heavy")  # ascending; an account whose tier is not known yet is "unknown"
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}

# quota_info keys -> our media kinds (GO-HEAD mapping, §6.3)
_QUOTA_INFO_KEYS = {
    "image": "image",
    "imagePro": "image_pro",
    "imageEdit": "image_edit",
    "video": "video",
    "video720p": "video_720p",
}


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """One quota window. ``None`` means upstream did not say. ``resets_at`` is epoch seconds."""

    remaining: int | None = None
    total: int | None = None
    window_seconds: int | None = None
    resets_at: float | None = None


# Tier evidence (§6.1: GO-HEAD tier inference, PY-2026-03 window heuristic), one row per rule:
# (chat mode whose window is tested, "*" = any chat mode; the test; the tier it proves at least).
# The detected tier is the highest one any row proves; no matching row means "unknown". Tiers are never guessed
# from names, tags or notes.
TIER_RULES: tuple[tuple[str, str, Callable[[QuotaWindow], bool], str], ...] = (
    ("heavy", "total > 0", lambda w: (w.total or 0) > 0, "heavy"),
    ("fast", "total == 400", lambda w: w.total == 400, "heavy"),
    ("auto", "total == 150", lambda w: w.total == 150, "heavy"),
    ("fast", "total == 140", lambda w: w.total == 140, "super"),
    ("auto", "total == 50", lambda w: w.total == 50, "super"),
    ("fast", "total == 30", lambda w: w.total == 30, "basic"),
    ("auto", "total in (7, 20)", lambda w: w.total in (7, 20), "basic"),
    # paid plans have short (2 h) windows; free plans reset daily
    (
        "*",
        "window_seconds < 14400",
        lambda w: w.window_seconds is not None and w.window_seconds < 14400,
        "super",
    ),
)


def detect_tier(windows: Mapping[str, QuotaWindow]) -> str | None:
    """The tier the chat-mode windows prove (``TIER_RULES``), or ``None`` when they prove nothing."""
    best: str | None = None
    for mode, _, test, tier in TIER_RULES:
        tested = [windows[m] for m in (CHAT_MODES if mode == "*" else (mode,)) if m in windows]
        if any(test(window) for window in tested) and (best is None or TIER_RANK[tier] > TIER_RANK[best]):
            best = tier
    return best


def parse_rate_limits(body: Mapping[str, Any], *, now: float | None = None) -> QuotaWindow:
    """``/rest/rate-limits`` answer → window. ``remainingQueries`` first, ``remainingTokens`` as fallback;
    ``waitTimeSeconds`` (when out of quota) gives the reset time."""
    now = time.time() if now is None else now
    remaining = _int(body.get("remainingQueries"))
    total = _int(body.get("totalQueries"))
    if remaining is None:
        remaining = _int(body.get("remainingTokens"))
        total = total if total is not None else _int(body.get("totalTokens"))
    window = _int(body.get("windowSizeSeconds"))
    wait = _float(body.get("waitTimeSeconds"))
    resets_at = now + wait if wait and wait > 0 else None
    return QuotaWindow(remaining=remaining, total=total, window_seconds=window, resets_at=resets_at)


# Products whose ``null`` (or missing key) means "this plan has none": ``video720p`` is null on Basic, and a
# 720p call there is refused upstream (403, uncharged). Stored as an empty window with no reset time, so the pool
# skips the account for that kind and only re-checks it (a ``quota_info`` call, never a generation) once the
# window turns stale. Other products stay "unknown" when null: captures show them null on plans that use them.
ABSENT_MEANS_NONE = frozenset({"video_720p"})
ABSENT = QuotaWindow(remaining=0, total=0)


def parse_quota_info(body: Mapping[str, Any]) -> dict[str, QuotaWindow]:
    """``/rest/media/imagine/quota_info`` answer → ``{media kind: window}``.

    A product that is ``null`` or absent is left out (unknown), except those of ``ABSENT_MEANS_NONE``, which
    become ``ABSENT`` (nothing remaining, no reset); ``available: false`` is a window with nothing remaining;
    ``nextAvailableAt`` (RFC 3339, nanoseconds allowed) becomes ``resets_at``.
    """
    out: dict[str, QuotaWindow] = {}
    for key, kind in _QUOTA_INFO_KEYS.items():
        product = body.get(key)
        if not isinstance(product, Mapping):
            if kind in ABSENT_MEANS_NONE:
                out[kind] = ABSENT
            continue
        remaining = _int(product.get("remainingQueries"))
        if product.get("available") is False:
            remaining = 0
        out[kind] = QuotaWindow(
            remaining=remaining,
            total=_int(product.get("totalQueries")),
            window_seconds=_int(product.get("windowSizeSeconds")),
            resets_at=parse_timestamp(product.get("nextAvailableAt")),
        )
    return out


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: object) -> float | None:
    """RFC 3339 string (``Z``, offsets, up to nanoseconds) or epoch number → epoch seconds; else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000 if value > 1e11 else float(value)  # milliseconds, as some APIs send
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
