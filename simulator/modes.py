"""Modes, tiers and the many historical ways a request names a model (§3.3, §6, §7)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

CHAT_MODES = ("auto", "fast", "expert", "heavy")
MEDIA_QUOTAS = ("image", "imagePro", "imageEdit", "video", "video720p")
TIERS = ("basic", "super", "heavy")

# (total, windowSizeSeconds) per tier; GO-HEAD infers the tier from these totals, PY from the window length.
CHAT_DEFAULTS: dict[str, dict[str, tuple[int, int]]] = {
    "basic": {"fast": (30, 86400), "auto": (20, 86400), "expert": (8, 86400), "heavy": (0, 86400)},
    "super": {"fast": (140, 7200), "auto": (50, 7200), "expert": (50, 7200), "heavy": (0, 7200)},
    "heavy": {"fast": (400, 7200), "auto": (150, 7200), "expert": (150, 7200), "heavy": (20, 7200)},
}
# Imagine products (quota_info). Total 0 → the product is reported as null (unavailable).
MEDIA_DEFAULTS: dict[str, dict[str, tuple[int, int]]] = {
    "basic": {
        "image": (30, 86400),
        "imagePro": (2, 86400),
        "imageEdit": (10, 86400),
        "video": (6, 86400),
        "video720p": (0, 86400),
    },
    "super": {
        "image": (100, 64800),
        "imagePro": (20, 64800),
        "imageEdit": (50, 64800),
        "video": (30, 64800),
        "video720p": (10, 64800),
    },
    "heavy": {
        "image": (400, 64800),
        "imagePro": (100, 64800),
        "imageEdit": (200, 64800),
        "video": (100, 64800),
        "video720p": (50, 64800),
    },
}

MODEL_MODE_NAMES = {
    "auto": "MODEL_MODE_AUTO",
    "fast": "MODEL_MODE_FAST",
    "expert": "MODEL_MODE_EXPERT",
    "heavy": "MODEL_MODE_HEAVY",
}
# What userResponse.model / request_metadata.model say for each mode ("grok-4-auto" is captured).
MODEL_LABELS = {"auto": "grok-4-auto", "fast": "grok-4-fast", "expert": "grok-4-expert", "heavy": "grok-4-heavy"}
THINKING_MODES = frozenset({"expert", "heavy"})

# The captured auto-mode hash; other modes get a stable derived 32-byte value.
_CAPTURED_AUTO_HASH = "f54V4nLGp4IcuJf0V+H7yBgHbw0FdgMUlmc0eOqrGR0="
MODEL_HASHES = {
    mode: _CAPTURED_AUTO_HASH
    if mode == "auto"
    else base64.b64encode(hashlib.sha256(f"grok-sim-{mode}".encode()).digest()).decode()
    for mode in CHAT_MODES
}


def mode_from_model_mode(value: str) -> str | None:
    value = value.upper()
    direct = {v: k for k, v in MODEL_MODE_NAMES.items()}
    if value in direct:
        return direct[value]
    if "MINI" in value:
        return "fast"
    if "THINKING" in value or "GROK_420" in value:
        return "expert"
    if value.startswith("MODEL_MODE_GROK_"):
        return "auto"
    return None


def mode_from_model_name(name: str, request_kind: str = "") -> str:
    """Legacy ``modelName`` (or a mode id) → mode. Unknown names fall back to auto."""
    lowered = name.lower()
    if lowered in CHAT_MODES:
        return lowered
    if request_kind.upper() in ("REASONING", "DEEPSEARCH", "DEEPERSEARCH"):
        return "expert"
    if "heavy" in lowered:
        return "heavy"
    if "fast" in lowered or "mini" in lowered:
        return "fast"
    if any(k in lowered for k in ("thinking", "expert", "reasoning", "420")):
        return "expert"
    return "auto"


def resolve_mode(body: dict[str, Any]) -> str:
    """``modeId`` wins, then ``modelMode``, then D0's ``isReasoning``, then ``modelName``; else auto (§3.3)."""
    mode_id = body.get("modeId")
    if isinstance(mode_id, str) and mode_id.lower() in CHAT_MODES:
        return mode_id.lower()
    model_mode = body.get("modelMode")
    if isinstance(model_mode, str) and (resolved := mode_from_model_mode(model_mode)):
        return resolved
    if body.get("isReasoning") is True:
        return "expert"  # D0 grok-3 "Think"
    model_name = body.get("modelName")
    if isinstance(model_name, str) and model_name:
        return mode_from_model_name(model_name)
    return "auto"
