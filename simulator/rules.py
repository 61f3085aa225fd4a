"""The rule table that picks a scenario for a prompt.

A ``Plan`` says what the turn will look like. It starts from the mode (expert/heavy think first), is shaped by
the built-in ``#markers`` in the prompt, and finally by the first matching custom rule (regex on the whole
``message``), so tests can script answers without touching the prompt text.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from simulator.modes import THINKING_MODES
from simulator.text import MARKER_RE

CONTENT_KINDS = ("plain", "reasoning", "search", "image", "video", "image_edit", "heavy_agents")
DEFAULT_ERROR = "Something went wrong while generating the response."
DEFAULT_WARNING = "Some search results could not be loaded."
USAGE_LIMIT_MESSAGE = "You've reached your usage limit. Please try again later."


@dataclass
class Plan:
    kind: str = "plain"
    text: str | None = None  # answer override (default: the plain-answer rule)
    title: str | None = None
    images: int = 2
    long: int | None = None  # answer of exactly N tokens
    moderated: bool = False
    error: str | None = None  # fatal in-stream error after half the answer
    warning: str | None = None  # non-fatal in-stream error after half the answer; the answer goes on
    usage_limit: bool = False  # in-stream usage-limit error instead of an answer
    disconnect: bool = False  # drop the connection after half the answer
    truncate: bool = False  # end the body cleanly after half the answer, no soft stop
    stall: float = 0.0  # pause this many seconds after half the answer
    empty_final: bool = False  # modelResponse.message == ""
    blocked: bool = False  # Imagine: previews, then silence
    thinking: str | None = None  # reasoning summary override (implies a reasoning turn)
    ignore_format: bool = False  # agent model: answer plainly despite tool / response-format instructions
    fenced: bool = False  # agent model: wrap JSON answers in a ```json fence
    prose: bool = False  # agent model: put prose around JSON answers and before tool calls

    def apply(self, params: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in params.items():
            if key not in known:
                raise ValueError(f"unknown scenario parameter {key!r}")
            setattr(self, key, value)
        if self.kind not in CONTENT_KINDS:
            raise ValueError(f"unknown scenario {self.kind!r}; expected one of {CONTENT_KINDS}")


@dataclass
class Rule:
    pattern: str
    scenario: str | None = None
    params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern, re.S)
        Plan().apply({**(self.params or {}), **({"kind": self.scenario} if self.scenario else {})})

    def matches(self, message: str) -> bool:
        return self._regex.search(message) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "scenario": self.scenario, "params": self.params or {}}


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def apply_markers(plan: Plan, message: str) -> None:
    content_set = False
    for match in MARKER_RE.finditer(message):
        name, value = match.group(1), match.group(2)
        if name in ("reasoning", "search", "image", "video", "heavy_agents") and not content_set:
            plan.kind, content_set = name, True
            if name == "image" and value:
                plan.images = max(1, min(int(_number(value, 2)), 4))
        elif name == "moderated":
            plan.moderated = True
        elif name == "error":
            plan.error = DEFAULT_ERROR
        elif name == "warning":
            plan.warning = DEFAULT_WARNING
        elif name == "usage_limit":
            plan.usage_limit = True
        elif name == "disconnect":
            plan.disconnect = True
        elif name == "truncate":
            plan.truncate = True
        elif name == "stall":
            plan.stall = _number(value, 5.0)
        elif name == "empty_final":
            plan.empty_final = True
        elif name == "long":
            plan.long = int(_number(value, 200))
        elif name == "blocked":
            plan.blocked = True
        elif name in ("ignore_format", "fenced", "prose"):
            setattr(plan, name, True)
    if plan.moderated and not content_set and plan.kind in ("plain", "reasoning"):
        plan.kind = "image"  # moderation is a media outcome


class RuleTable:
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def add(self, pattern: str, scenario: str | None = None, **params: Any) -> Rule:
        rule = Rule(pattern, scenario, params or None)
        with self._lock:
            self._rules.append(rule)
        return rule

    def set(self, rules: list[dict[str, Any]]) -> None:
        parsed = [Rule(r["pattern"], r.get("scenario"), r.get("params")) for r in rules]
        with self._lock:
            self._rules = parsed

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def to_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def plan(self, message: str, *, mode: str = "auto", media: str | None = None) -> Plan:
        plan = Plan(kind="reasoning" if mode in THINKING_MODES else "plain")
        apply_markers(plan, message)
        with self._lock:
            rule = next((r for r in self._rules if r.matches(message)), None)
        if rule is not None:
            plan.apply({**(rule.params or {}), **({"kind": rule.scenario} if rule.scenario else {})})
        if plan.thinking is not None and plan.kind == "plain":
            plan.kind = "reasoning"
        if media is not None:  # the request shape decides media turns, whatever the prompt says
            plan.kind = media
        return plan


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return asdict(plan)
