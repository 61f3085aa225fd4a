"""MODEL_ALIASES naming image and video models (not only chat models)."""

import pytest

from core.catalog import Catalog
from core.errors import ModelNotFound
from core.settings import Settings


def test_aliases_of_image_and_video_models_resolve() -> None:
    catalog = Catalog.load({"my-pics": "grok-imagine-image-pro", "clip": "sora-2", "chat": "grok-4.5-fast"})
    assert catalog.resolve_image("my-pics", operation="generate").id == "grok-imagine-image-pro"
    assert catalog.resolve_video("CLIP").id == "grok-imagine-video"  # an alias of an alias, any case
    assert catalog.find_video("clip") is not None and catalog.find_video("chat") is None
    assert catalog.resolve("chat").id == "grok-4.5-fast"
    assert catalog.operator_aliases == {"chat": "grok-4.5-fast"}  # /v1/models lists these as chat models
    assert catalog.media_aliases == {"my-pics": "grok-imagine-image-pro", "clip": "sora-2"}
    with pytest.raises(ModelNotFound):
        catalog.resolve("my-pics")  # an image model is not a chat model


def test_an_alias_takes_its_name_from_the_other_kinds() -> None:
    catalog = Catalog.load({"dall-e-3": "grok-4.5-fast", "grok-fast": "grok-imagine-video"})
    assert catalog.resolve("dall-e-3").id == "grok-4.5-fast"  # no longer the built-in image alias
    with pytest.raises(ModelNotFound):
        catalog.resolve_image("dall-e-3", operation="generate")
    assert catalog.find_video("grok-fast") is not None
    with pytest.raises(ModelNotFound):
        catalog.resolve("grok-fast")


def test_unknown_targets_still_fail_at_start_up() -> None:
    with pytest.raises(ValueError, match="no-such"):
        Catalog.load({"x": "no-such-model"})
    settings = Settings(model_aliases={"v": "grok-imagine-video"})
    assert Catalog.load(settings.model_aliases).resolve_video("v").id == "grok-imagine-video"
