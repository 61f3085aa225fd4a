"""The model catalog: public ids, their aliases and what each needs upstream. Loaded from ``models.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from core.errors import ModelNotFound

Tier = Literal["basic", "super", "heavy"]
Mode = Literal["auto", "fast", "expert", "heavy"]
TIER_RANK: dict[str, int] = {"basic": 0, "super": 1, "heavy": 2}
MODES: tuple[Mode, ...] = ("auto", "fast", "expert", "heavy")
CREATED = 1767225600  # 2026-01-01, a fixed "created" for /v1/models


@dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str
    mode: Mode
    min_tier: Tier
    cost: int
    reasoning: bool
    search: bool
    image_input: bool
    description: str
    aliases: tuple[str, ...]

    def served_by(self, tier: str) -> bool:
        return TIER_RANK.get(tier, -1) >= TIER_RANK[self.min_tier]


class Catalog:
    def __init__(
        self, models: list[ModelSpec], extra_aliases: Mapping[str, str] | None = None, claude_model: str | None = None
    ) -> None:
        self.claude_model = claude_model  # what an unlisted ``claude-*`` name resolves to (None: not found)
        self.models = {m.id: m for m in models}
        self._lookup: dict[str, ModelSpec] = {}
        for model in models:
            for name in (model.id, *model.aliases):
                self._lookup[name.lower()] = model
        for alias, target in (extra_aliases or {}).items():
            model = self._lookup.get(target.lower())
            if model is None:
                raise ValueError(f"MODEL_ALIASES: {alias!r} points at unknown model {target!r}")
            self._lookup[alias.lower()] = model
        self.operator_aliases = dict(extra_aliases or {})

    @classmethod
    def load(cls, extra_aliases: Mapping[str, str] | None = None, claude_model: str | None = None) -> Catalog:
        raw = json.loads(resources.files("core").joinpath("models.json").read_text("utf-8"))
        models = [ModelSpec(**{**m, "aliases": tuple(m.get("aliases", ()))}) for m in raw["models"]]
        return cls(models, extra_aliases, claude_model)

    def resolve(self, name: object, *, claude_model: str | None = None) -> ModelSpec:
        """Public id or alias → spec; raises ``ModelNotFound`` (404) naming the model. A ``claude-*`` name that
        is neither (MODEL_ALIASES may name one) resolves to ``claude_model`` (the argument, else the catalog's
        own: settings ``CLAUDE_MODEL``)."""
        if not isinstance(name, str) or not name.strip():
            raise ModelNotFound("`model` is required", param="model")
        key = name.strip().lower()
        model = self._lookup.get(key)
        target = claude_model or self.claude_model
        if model is None and target and key.startswith("claude-"):
            model = self._lookup.get(target.lower())
            if model is None:
                raise ModelNotFound(f"`{name}` maps to CLAUDE_MODEL `{target}`, which is not a known model.",
                                    param="model")
        if model is None:
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return model

    def find(self, name: str) -> ModelSpec | None:
        return self._lookup.get(name.lower())

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())

    def public_ids(self) -> list[str]:
        """Canonical ids, then operator aliases (so tools that list models see e.g. ``gpt-4o``)."""
        return [*self.models, *self.operator_aliases]
