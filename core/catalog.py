"""The model catalog: public ids, their aliases and what each needs upstream. Loaded from ``models.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from core.errors import InvalidRequest, ModelNotFound

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


@dataclass(frozen=True, slots=True)
class ImageModelSpec:
    """A Grok Imagine model of ``/v1/images/*`` (``image_models`` in models.json). ``quota`` is the pool's media
    quota kind (``image``, ``image_pro``, ``image_edit``) leased and charged ``cost`` units per upstream call;
    ``batch`` is the most images one upstream call is asked for."""

    id: str
    operation: Literal["generate", "edit"]
    quota: Literal["image", "image_pro", "image_edit"]
    min_tier: Tier
    cost: int
    pro: bool
    batch: int
    description: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VideoModelSpec:
    """A Grok Imagine video model of ``/v1/videos`` (``video_models`` in models.json). ``quota`` is the media
    quota kind a 480p job is leased and charged on (a 720p job: ``video_720p``), ``cost`` units per job."""

    id: str
    quota: Literal["video", "video_720p"]
    min_tier: Tier
    cost: int
    description: str
    aliases: tuple[str, ...]


class Catalog:
    """Chat models (``resolve``), image models (``resolve_image``) and video models (``resolve_video``), each
    with its own lookup. Operator aliases (``MODEL_ALIASES``) may name a model of any of the three kinds; they
    are applied by ``set_aliases`` once every kind is loaded (``load``), so an alias of an image or video
    model is found — and an alias takes its name away from the other kinds' lookups (the operator's word wins)."""

    def __init__(
        self, models: list[ModelSpec], extra_aliases: Mapping[str, str] | None = None, claude_model: str | None = None
    ) -> None:
        self.claude_model = claude_model  # what an unlisted ``claude-*`` name resolves to (None: not found)
        self.models = {m.id: m for m in models}
        self._lookup: dict[str, ModelSpec] = {}
        for model in models:
            for name in (model.id, *model.aliases):
                self._lookup[name.lower()] = model
        self.operator_aliases: dict[str, str] = {}  # chat aliases only (/v1/models lists them as chat models)
        self.media_aliases: dict[str, str] = {}  # operator aliases of image and video models
        self.image_models: dict[str, ImageModelSpec] = {}
        self._image_lookup: dict[str, ImageModelSpec] = {}
        self.video_models: dict[str, VideoModelSpec] = {}
        self._video_lookup: dict[str, VideoModelSpec] = {}
        if extra_aliases:
            self.set_aliases(extra_aliases)

    def set_aliases(self, extra_aliases: Mapping[str, str]) -> None:
        """Apply ``MODEL_ALIASES``: each target is a chat, image or video model id or alias (looked up in that
        order); an unknown target is a ``ValueError`` naming it (a start-up configuration error)."""
        lookups: tuple[dict[str, Any], ...] = (self._lookup, self._image_lookup, self._video_lookup)
        for alias, target in extra_aliases.items():
            key = alias.strip().lower()
            found = next(((table, table[target.lower()]) for table in lookups if target.lower() in table), None)
            if found is None:
                raise ValueError(f"MODEL_ALIASES: {alias!r} points at unknown model {target!r}")
            table, model = found
            for other in lookups:
                other.pop(key, None)
            table[key] = model
            mine, other = ((self.operator_aliases, self.media_aliases) if table is self._lookup
                           else (self.media_aliases, self.operator_aliases))
            other.pop(alias, None)
            mine[alias] = target

    def find_video(self, name: object) -> VideoModelSpec | None:
        """The video model ``name`` names (id, alias or operator alias), else None: how chat completions tell a
        video request from a chat one."""
        return self._video_lookup.get(name.strip().lower()) if isinstance(name, str) else None

    def add_video_models(self, models: list[VideoModelSpec]) -> None:
        for model in models:
            self.video_models[model.id] = model
            for name in (model.id, *model.aliases):
                self._video_lookup[name.lower()] = model

    def resolve_video(self, name: object) -> VideoModelSpec:
        """A video model id or alias → spec (``None``/empty: the first one); unknown → ``ModelNotFound``."""
        if name is None or (isinstance(name, str) and not name.strip()):
            if not self.video_models:
                raise ModelNotFound("no video model is configured", param="model")
            return next(iter(self.video_models.values()))
        if not isinstance(name, str):
            raise InvalidRequest("`model` must be a string", param="model")
        model = self._video_lookup.get(name.strip().lower())
        if model is None:
            raise ModelNotFound(
                f"The video model `{name}` does not exist. Video models: {', '.join(self.video_models)}.",
                param="model",
            )
        return model

    def add_image_models(self, models: list[ImageModelSpec]) -> None:
        for model in models:
            self.image_models[model.id] = model
            for name in (model.id, *model.aliases):
                self._image_lookup[name.lower()] = model

    def default_image_model(self, operation: str) -> ImageModelSpec:
        return next(m for m in self.image_models.values() if m.operation == operation)

    def resolve_image(self, name: object, *, operation: str) -> ImageModelSpec:
        """An image model id or alias → spec (``None``/empty: the first model of ``operation``). Unknown names are
        ``ModelNotFound`` (404); a model of the other operation is ``InvalidRequest`` (400) naming the right one."""
        if name is None or (isinstance(name, str) and not name.strip()):
            return self.default_image_model(operation)
        if not isinstance(name, str):
            raise InvalidRequest("`model` must be a string", param="model")
        model = self._image_lookup.get(name.strip().lower())
        if model is None:
            raise ModelNotFound(
                f"The image model `{name}` does not exist. Image models: {', '.join(self.image_models)}.",
                param="model",
            )
        if model.operation != operation:
            other = self.default_image_model(operation).id
            verb = "edits images" if model.operation == "edit" else "generates images"
            raise InvalidRequest(f"`{model.id}` {verb}; use `{other}` here", param="model")
        return model

    @classmethod
    def load(cls, extra_aliases: Mapping[str, str] | None = None, claude_model: str | None = None) -> Catalog:
        raw = json.loads(resources.files("core").joinpath("models.json").read_text("utf-8"))
        models = [ModelSpec(**{**m, "aliases": tuple(m.get("aliases", ()))}) for m in raw["models"]]
        catalog = cls(models, claude_model=claude_model)
        catalog.add_image_models([
            ImageModelSpec(**{**m, "aliases": tuple(m.get("aliases", ()))}) for m in raw.get("image_models", ())
        ])
        catalog.add_video_models([
            VideoModelSpec(**{**m, "aliases": tuple(m.get("aliases", ()))}) for m in raw.get("video_models", ())
        ])
        catalog.set_aliases(extra_aliases or {})  # last: an alias may name a model of any kind
        return catalog

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
