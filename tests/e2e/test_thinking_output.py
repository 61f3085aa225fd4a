"""THINKING_OUTPUT decides where reasoning goes: a separate field (default), inline <think>, or nowhere."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Deployment

PROMPT = [{"role": "user", "content": "why is the sky blue #reasoning"}]


@pytest.fixture(scope="module")
def inline(deploy) -> Deployment:
    gateway = deploy(thinking_output="inline")
    gateway.add_accounts(1)
    return gateway


@pytest.fixture(scope="module")
def hidden(deploy) -> Deployment:
    gateway = deploy(thinking_output="hidden")
    gateway.add_accounts(1)
    return gateway


def test_inline_wraps_reasoning_in_think_tags(inline: Deployment) -> None:
    message = inline.client().chat.completions.create(model="grok-4.5-expert", messages=PROMPT).choices[0].message
    assert message.content.startswith("<think>\n")
    thought, _, answer = message.content.partition("</think>")
    assert thought.strip() != "<think>" and answer.strip()
    assert "reasoning_content" not in (message.model_extra or {})


def test_inline_stream_matches_non_stream_shape(inline: Deployment) -> None:
    chunks = list(inline.client().chat.completions.create(model="grok-4.5-expert", messages=PROMPT, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith("<think>\n") and "</think>" in content
    assert not any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices)


def test_hidden_drops_reasoning(hidden: Deployment) -> None:
    message = hidden.client().chat.completions.create(model="grok-4.5-expert", messages=PROMPT).choices[0].message
    assert "<think>" not in message.content and message.content.strip()
    assert not (message.model_extra or {}).get("reasoning_content")
    chunks = list(hidden.client().chat.completions.create(model="grok-4.5-expert", messages=PROMPT, stream=True))
    assert not any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices)
