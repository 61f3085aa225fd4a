"""Simulator configuration: timing knobs and behaviour switches, changeable at runtime via ``/__sim/config``."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

Range = tuple[float, float]

CHAT_MODES = ("auto", "fast", "expert", "heavy")


@dataclass
class SimConfig:
    # Timing, seconds. Ranges are sampled uniformly per use. Defaults follow the captures (§12.1).
    user_response_delay: float = 0.025  # conversation line → userResponse line
    first_token_delay: Range = (0.25, 0.5)  # userResponse → first generated line
    token_delay: Range = (0.02, 0.06)  # between generated lines
    video_duration: float = 18.0  # whole video progress sequence
    imagine_latency: float = 3.0  # Imagine WS request → last image stage
    quota_delay: float = 0.0  # before /rest/rate-limits and quota_info answer (a slow upstream for refresh jobs)

    # Behaviour switches.
    gzip: bool = True  # gzip chat streams when the client accepts it (sync-flushed per line)
    cloudflare: bool = False  # demand a registered cf_clearance (+ matching User-Agent) everywhere
    strict_statsig: bool = False  # demand a 70-byte base64 x-statsig-id on app-chat / rate-limits / modes
    anti_bot_in_stream: bool = False  # strict-statsig failure on chat → 200 stream with the error as only line
    quota_in_stream: bool = False  # exhausted chat quota → 200 stream with the usage-limit error line
    mgw_anti_bot: bool = False  # every mgw response.create → `error` event anti_bot
    agent_model: bool = False  # follow the gateway's `# Tools` / `# Response format` instructions (agent.py)

    # Limits and accounting.
    max_upload_bytes: int = 50 * 1024 * 1024
    mode_costs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHAT_MODES, 1))
    imagine_default_generations: int = 8  # when the request omits num_generations (UI default)
    request_log_size: int = 2000
    max_conversations: int = 50_000
    video_bytes: int = 262_144

    @classmethod
    def fast(cls, **overrides: Any) -> SimConfig:
        """Zero-delay preset for tests and benchmarks."""
        return cls(**{**FAST_TIMING, **overrides})

    @property
    def is_zero_delay(self) -> bool:
        return (
            self.user_response_delay == 0
            and self.first_token_delay[1] == 0
            and self.token_delay[1] == 0
            and self.video_duration == 0
            and self.imagine_latency == 0
        )

    def update(self, values: dict[str, Any]) -> None:
        """Apply a partial update (JSON from the control API). ``preset`` = "fast" | "realistic" first."""
        values = dict(values)
        preset = values.pop("preset", None)
        if preset == "fast":
            self.update(FAST_TIMING)
        elif preset == "realistic":
            self.update(REALISTIC_TIMING)
        elif preset is not None:
            raise ValueError(f"unknown preset {preset!r}")
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown config key {key!r}")
            current = getattr(self, key)
            if isinstance(current, tuple):
                value = (float(value), float(value)) if isinstance(value, int | float) else tuple(map(float, value))
                if len(value) != 2 or value[0] > value[1] or value[0] < 0:
                    raise ValueError(f"{key} must be a number or [low, high]")
            elif isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, int | float) and not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            elif isinstance(current, dict):
                value = {**current, **value}
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FAST_TIMING: dict[str, Any] = {
    "user_response_delay": 0.0,
    "first_token_delay": (0.0, 0.0),
    "token_delay": (0.0, 0.0),
    "video_duration": 0.0,
    "imagine_latency": 0.0,
}
REALISTIC_TIMING: dict[str, Any] = {name: getattr(SimConfig, name) for name in FAST_TIMING}


def sample(value: float | Range) -> float:
    if isinstance(value, tuple):
        low, high = value
        return low if low == high else random.uniform(low, high)
    return value
