"""The official openai SDK (sync and async, stream and non-stream) against the gateway, over both chat
transports, through the grok.com simulator."""

from __future__ import annotations

import uuid

import openai
import pytest

from simulator.text import plain_answer
from tests.e2e.conftest import Deployment
from tests.e2e.media import data_uri, png
from tests.support.asgi import ThreadedServer


def expected(prompt: str) -> str:
    return plain_answer(prompt)


def test_non_stream_plain_answer(gateway: Deployment) -> None:
    prompt = f"hello there {uuid.uuid4().hex[:6]}"
    completion = gateway.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": prompt}]
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "grok-4.5-fast"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == expected(prompt)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_stream_follows_openai_sse(gateway: Deployment) -> None:
    prompt = "stream me a reply"
    chunks = list(
        gateway.client().chat.completions.create(
            model="grok-4.5-fast", stream=True, messages=[{"role": "user", "content": prompt}]
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == expected(prompt)
    assert len([c for c in chunks if c.choices[0].delta.content]) > 3  # really incremental
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_usage_chunk_when_asked(gateway: Deployment) -> None:
    chunks = list(
        gateway.client().chat.completions.create(
            model="grok-4.5-fast", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "count my tokens"}],
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_async_client_stream_and_non_stream(gateway: Deployment) -> None:
    client = gateway.async_client()
    completion = await client.chat.completions.create(
        model="grok-4", messages=[{"role": "user", "content": "async hello"}]
    )
    assert completion.choices[0].message.content == expected("async hello")
    stream = await client.chat.completions.create(
        model="grok-4", stream=True, messages=[{"role": "user", "content": "async stream"}]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == expected("async stream")
    await client.close()


def test_history_is_flattened_with_roles(gateway: Deployment) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    completion = gateway.client().chat.completions.create(model="grok-4.5-fast", messages=messages)
    # The simulator answers about the last line of the message it received: the latest user turn.
    assert completion.choices[0].message.content == expected("second question")
    turn = _last_turn(gateway)
    assert turn.message.startswith("[system]\nYou are terse.")
    assert "[assistant]\nfirst answer" in turn.message
    assert turn.message.endswith("[user]\nsecond question")


def test_reasoning_streams_as_reasoning_content(gateway: Deployment) -> None:
    chunks = list(
        gateway.client().chat.completions.create(
            model="grok-4.5-expert", stream=True, messages=[{"role": "user", "content": "think hard #reasoning"}]
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning.strip()
    assert "<think>" not in content and content.strip()
    first_reasoning = next(i for i, c in enumerate(chunks) if (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    first_content = next(i for i, c in enumerate(chunks) if c.choices[0].delta.content)
    assert first_reasoning < first_content


def test_reasoning_non_stream(gateway: Deployment) -> None:
    completion = gateway.client().chat.completions.create(
        model="grok-4.5-expert", messages=[{"role": "user", "content": "think #reasoning"}]
    )
    message = completion.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content", "").strip()
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0


def test_search_citations_become_markdown_links(gateway: Deployment) -> None:
    completion = gateway.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "rust release #search"}]
    )
    message = completion.choices[0].message
    assert "<grok:render" not in message.content and "xai:tool_usage_card" not in message.content
    assert "[[1]](https://" in message.content
    annotations = message.annotations or []
    assert annotations and annotations[0].type == "url_citation"
    cite = annotations[0].url_citation
    assert message.content[cite.start_index:cite.end_index] == f"[[1]]({cite.url})"
    # Search results also surface as a Sources list a chat app can show.
    assert "\n\nSources:\n1. [" in message.content and cite.url in message.content.split("Sources:")[1]


def test_search_stream_has_tool_line_in_reasoning(gateway: Deployment) -> None:
    chunks = list(
        gateway.client().chat.completions.create(
            model="grok-4.5-expert", stream=True, messages=[{"role": "user", "content": "rust release #search"}]
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[WebSearch]" in reasoning
    assert "[[1]](https://" in content and "<grok:render" not in content


def test_image_input_data_uri_is_uploaded(gateway: Deployment) -> None:
    image = png(8, 8)
    before = len(gateway.sim.state.files)
    completion = gateway.client().chat.completions.create(
        model="grok-4.5-fast",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is in this image"},
            {"type": "image_url", "image_url": {"url": data_uri(image)}},
        ]}],
    )
    assert completion.choices[0].message.content == expected("what is in this image")
    assert len(gateway.sim.state.files) == before + 1
    uploaded = list(gateway.sim.state.files.values())[-1]
    assert uploaded.size == len(image) and uploaded.mime == "image/png"
    assert _last_turn(gateway).file_attachments == [uploaded.id]


def test_image_input_http_url_is_fetched_and_uploaded(gateway: Deployment) -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    image = png(16, 16, (10, 200, 10))
    app = Starlette(routes=[Route("/cat.png", lambda request: Response(image, media_type="image/png"))])
    with ThreadedServer(app) as host:
        completion = gateway.client().chat.completions.create(
            model="grok-4.5-fast",
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"{host.url}/cat.png"}},
                {"type": "text", "text": "describe"},
            ]}],
        )
    assert completion.choices[0].message.content == expected("describe")
    uploaded = list(gateway.sim.state.files.values())[-1]
    assert uploaded.size == len(image)


def test_models_list_and_retrieve(gateway: Deployment) -> None:
    client = gateway.client()
    ids = {m.id for m in client.models.list()}
    assert {"grok-4.5", "grok-4.5-fast", "grok-4.5-expert", "grok-4.5-heavy"} <= ids
    model = client.models.retrieve("grok-4-heavy")
    assert model.id == "grok-4-heavy" and (model.model_extra or {})["mode"] == "heavy"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-nonexistent")
    assert info.value.body["code"] == "model_not_found"


def _last_turn(gateway: Deployment):
    turns = [t for c in gateway.sim.state.conversations.values() for t in c.turns if c.owner_token in gateway.tokens]
    return max(turns, key=lambda t: t.created)
