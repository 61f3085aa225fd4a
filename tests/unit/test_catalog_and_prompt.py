import pytest

from core.catalog import Catalog
from core.errors import ModelNotFound
from core.prompt import ATTACHMENT_ONLY_MESSAGE, ToolCall, Turn, flatten


def test_catalog_covers_every_mode_with_aliases() -> None:
    catalog = Catalog.load()
    assert {spec.mode for spec in catalog} == {"auto", "fast", "expert", "heavy"}
    assert catalog.resolve("grok-4-heavy").mode == "heavy"
    assert catalog.resolve("GROK-4.1-FAST").mode == "fast"
    assert catalog.resolve("grok-4.5-heavy").min_tier == "heavy"
    with pytest.raises(ModelNotFound) as info:
        catalog.resolve("gpt-5")
    assert info.value.param == "model"


def test_operator_aliases() -> None:
    catalog = Catalog.load({"gpt-4o": "grok-4.5-fast"})
    assert catalog.resolve("gpt-4o").id == "grok-4.5-fast"
    assert "gpt-4o" in catalog.public_ids()
    with pytest.raises(ValueError):
        Catalog.load({"x": "no-such-model"})


def test_single_user_message_is_sent_as_is() -> None:
    assert flatten([Turn("user", "  hello  ")]).message == "hello"


def test_history_becomes_labelled_blocks() -> None:
    prompt = flatten([
        Turn("system", "be brief"),
        Turn("user", "what is 2+2", images=["data:image/png;base64,AAA"]),
        Turn("assistant", "", tool_calls=[ToolCall("c1", "calc", '{"x": 2}')]),
        Turn("tool", "4", tool_call_id="c1"),
        Turn("user", "thanks"),
    ])
    assert prompt.message == (
        "[system]\nbe brief\n\n[user]\nwhat is 2+2\n\n[assistant]\n[tool call c1] calc {\"x\": 2}\n\n"
        "[tool result for c1]\n4\n\n[user]\nthanks"
    )
    assert prompt.images == ("data:image/png;base64,AAA",)


def test_images_without_text_get_a_prompt() -> None:
    prompt = flatten([Turn("user", "", images=["https://x/a.png"])])
    assert prompt.message == ATTACHMENT_ONLY_MESSAGE and prompt.images == ("https://x/a.png",)
