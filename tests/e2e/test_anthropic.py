"""The official anthropic SDK against the gateway's Messages API, over both chat transports, through the grok.com
simulator: scripted replies play the model exactly; agent mode answers tool calls by the gateway's instructions.
Assertions are on the SDK's parsed objects (and, for the wire details it hides, on the raw SSE)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from simulator.text import plain_answer
from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import png
from tests.support.asgi import ThreadedServer

MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {
    "name": "get_time",
    "description": "Get the local time in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def call(name: str, **arguments: Any) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def client(gw: Deployment, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=API_KEY, max_retries=0, **kwargs)


@pytest.fixture
def script(gateway: Deployment) -> Iterator[Any]:
    """``script(*replies)`` queues the next answers for whichever account serves; leftovers are dropped."""

    def queue(*replies: Any) -> None:
        gateway.sim.state.script_replies(None, list(replies), replace=True)

    yield queue
    gateway.sim.state.clear_replies()


def last_turn(gw: Deployment):
    turns = [t for c in gw.sim.state.conversations.values() for t in c.turns if c.owner_token in gw.tokens]
    return max(turns, key=lambda t: t.created)


def raw_events(gw: Deployment, body: dict[str, Any], **headers: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a streamed answer, read with plain httpx."""
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("POST", gw.url + "/v1/messages?beta=true", json={**body, "stream": True}, timeout=30,
                      headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01", **headers}) as response:
        assert response.status_code == 200, response.read()
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind or "", json.loads(line[6:])))
    return events


# -- text ------------------------------------------------------------------------------------------------------------


def test_create_text_with_system_string(gateway: Deployment, script) -> None:
    script("Hello from Grok.")
    message = client(gateway).messages.create(
        model=MODEL, max_tokens=1024, system="You are terse.", messages=[{"role": "user", "content": "Say hi"}],
    )
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from Grok."
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    turn = last_turn(gateway)
    assert "You are terse." in turn.message and "Say hi" in turn.message
    assert turn.mode == "auto"  # claude-* → CLAUDE_MODEL (grok-4.5)


def test_system_blocks_and_system_messages(gateway: Deployment, script) -> None:
    script("ok")
    message = client(gateway).messages.create(
        model=MODEL, max_tokens=16000,
        system=[{"type": "text", "text": "Block one."},
                {"type": "text", "text": "Block two.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "system", "content": "Inline system note."},  # Claude Code sends one
            {"role": "user", "content": [{"type": "text", "text": "Question?", "cache_control": {"type": "ephemeral"}}]},
        ],
        metadata={"user_id": "user-1"}, extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5},
    )
    assert message.content[0].text == "ok"
    sent = last_turn(gateway).message
    assert sent.index("Block one.") < sent.index("Block two.") < sent.index("Inline system note.") < sent.index("Question?")


def test_plain_answer_without_script(gateway: Deployment) -> None:
    prompt = f"plain {uuid.uuid4().hex[:6]}"
    message = client(gateway).messages.create(model="grok-4.5-fast", max_tokens=100,
                                              messages=[{"role": "user", "content": prompt}])
    assert message.content[0].text == plain_answer(prompt)
    assert message.model == "grok-4.5-fast"


def test_image_base64_is_uploaded(gateway: Deployment, script) -> None:
    script("A green square.")
    image = png(8, 8, (0, 200, 0))
    before = len(gateway.sim.state.files)
    message = client(gateway).messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(image).decode()}},
        {"type": "text", "text": "What is this?"},
    ]}])
    assert message.content[0].text == "A green square."
    assert len(gateway.sim.state.files) == before + 1
    uploaded = list(gateway.sim.state.files.values())[-1]
    assert uploaded.size == len(image) and uploaded.mime == "image/png"
    assert last_turn(gateway).file_attachments == [uploaded.id]


def test_stream_text(gateway: Deployment, script) -> None:
    script("one two three four five six")
    with client(gateway).messages.stream(model=MODEL, max_tokens=100,
                                         messages=[{"role": "user", "content": "count"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "one two three four five six" and len(pieces) > 3
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == "one two three four five six"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_stream_wire_order(gateway: Deployment, script) -> None:
    script({"text": "The answer.", "thinking": "Let me think."})
    events = raw_events(gateway, {"model": MODEL, "max_tokens": 100, "thinking": {"type": "adaptive"},
                                  "messages": [{"role": "user", "content": "q"}]})
    kinds = [k for k, _ in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert all(k == d["type"] for k, d in events)
    starts = [d for k, d in events if k == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "thinking"), (1, "text")]
    thinking = [d["delta"] for k, d in events if k == "content_block_delta" and d["index"] == 0]
    assert thinking[-1]["type"] == "signature_delta" and thinking[-1]["signature"]
    assert {d["type"] for d in thinking[:-1]} == {"thinking_delta"}
    stop0 = kinds.index("content_block_stop")
    assert events[stop0][1]["index"] == 0 and stop0 < kinds.index("content_block_start", stop0)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["usage"]["input_tokens"] > 0 and start["stop_reason"] is None


# -- thinking --------------------------------------------------------------------------------------------------------


def test_stream_thinking_with_signature_and_echo(gateway: Deployment, script) -> None:
    script({"text": "It is 4.", "thinking": "Two plus two is four."}, "Still 4.")
    sdk = client(gateway)
    with sdk.messages.stream(model=MODEL, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                             messages=[{"role": "user", "content": "2+2?"}]) as stream:
        thinking_events = [e for e in stream if e.type == "thinking"]
        final = stream.get_final_message()
    assert thinking_events
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert "Two plus two is four." in final.content[0].thinking
    assert final.content[0].signature
    assert final.content[1].text == "It is 4."
    # Claude Code sends the thinking block (with its signature) back: accepted, not forwarded upstream.
    again = sdk.messages.create(model=MODEL, max_tokens=2000, thinking={"type": "adaptive"}, messages=[
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]
         + [{"type": "redacted_thinking", "data": "opaque"}]},
        {"role": "user", "content": "Sure?"},
    ])
    assert again.content[-1].text == "Still 4."
    sent = last_turn(gateway).message
    assert "It is 4." in sent and "Two plus two is four." not in sent


def test_thinking_non_stream_and_hidden_unless_asked(gateway: Deployment, script) -> None:
    sdk = client(gateway)
    script({"text": "Done.", "thinking": "Hmm."})
    shown = sdk.messages.create(model=MODEL, max_tokens=100, thinking={"type": "adaptive"},
                                messages=[{"role": "user", "content": "go"}])
    assert [b.type for b in shown.content] == ["thinking", "text"] and shown.content[0].signature
    script({"text": "Done.", "thinking": "Hmm."})
    hidden = sdk.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "go"}])
    assert [b.type for b in hidden.content] == ["text"] and hidden.content[0].text == "Done."
    script({"text": "Done.", "thinking": "Hmm."})
    disabled = sdk.messages.create(model=MODEL, max_tokens=100, thinking={"type": "disabled"},
                                   messages=[{"role": "user", "content": "go"}])
    assert [b.type for b in disabled.content] == ["text"]


# -- tools -----------------------------------------------------------------------------------------------------------


def test_tool_use_round_trip_stream(gateway: Deployment, script) -> None:
    script(call("get_weather", city="Paris"), "It is sunny in Paris.")
    sdk = client(gateway)
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    with sdk.messages.stream(model=MODEL, max_tokens=1000, tools=[WEATHER], messages=history) as stream:
        json_events = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert json_events
    assert final.stop_reason == "tool_use"
    [use] = final.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    assert use.id.startswith("toolu_")
    history += [
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": [{"type": "text", "text": '{"sky": "clear"}'}]}]},
    ]
    with sdk.messages.stream(model=MODEL, max_tokens=1000, tools=[WEATHER], messages=history) as stream:
        answer = stream.get_final_message()
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "It is sunny in Paris."
    sent = last_turn(gateway).message
    assert use.id in sent and '{"sky": "clear"}' in sent and "<tool_result" in sent


def test_tool_use_non_stream_with_text_and_error_result(gateway: Deployment, script) -> None:
    script("Let me check. " + call("get_weather", city="Rome"), "Sorry, the lookup failed.")
    sdk = client(gateway)
    first = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER],
                                messages=[{"role": "user", "content": "Weather in Rome?"}])
    assert [b.type for b in first.content] == ["text", "tool_use"] and first.stop_reason == "tool_use"
    assert first.content[0].text.strip() == "Let me check."
    assert first.content[1].input == {"city": "Rome"}
    second = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "timeout", "is_error": True},
            {"type": "text", "text": "What happened?"},
        ]},
    ])
    assert second.content[0].text == "Sorry, the lookup failed."
    sent = last_turn(gateway).message
    assert 'error="true"' in sent and sent.index("timeout") < sent.index("What happened?")


def test_parallel_tool_calls(gateway: Deployment, script) -> None:
    both = call("get_weather", city="Oslo") + "\n" + call("get_time", city="Oslo")
    script(both, both)
    sdk = client(gateway)
    with sdk.messages.stream(model=MODEL, max_tokens=1000, tools=[WEATHER, TIME],
                             messages=[{"role": "user", "content": "Weather and time in Oslo?"}]) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [
        ("tool_use", "get_weather", {"city": "Oslo"}), ("tool_use", "get_time", {"city": "Oslo"})]
    assert len({b.id for b in final.content}) == 2 and final.stop_reason == "tool_use"
    single = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER, TIME],
                                 tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                                 messages=[{"role": "user", "content": "Weather and time in Oslo?"}])
    assert [b.name for b in single.content] == ["get_weather"]


def test_tool_choice_any_tool_none(gateway: Deployment, script) -> None:
    sdk = client(gateway)
    script(call("get_time", city="Lima"))
    forced = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER, TIME],
                                 tool_choice={"type": "tool", "name": "get_time"},
                                 messages=[{"role": "user", "content": "Lima?"}])
    assert [b.name for b in forced.content] == ["get_time"]
    assert "MUST call the tool `get_time`" in last_turn(gateway).message
    script(call("get_weather", city="Lima"))
    required = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER, TIME], tool_choice={"type": "any"},
                                   messages=[{"role": "user", "content": "Lima?"}])
    assert required.content[0].type == "tool_use" and "MUST call" in last_turn(gateway).message
    script("No tools needed.")
    none = sdk.messages.create(model=MODEL, max_tokens=1000, tools=[WEATHER], tool_choice={"type": "none"},
                               messages=[{"role": "user", "content": "Lima?"}])
    assert [b.type for b in none.content] == ["text"] and none.stop_reason == "end_turn"


def test_tool_choice_any_skipped_gets_one_reminder_stream(gateway: Deployment, script) -> None:
    """``tool_choice: any`` answered in prose: nothing of it is streamed; the reminder turn quotes it, and its call
    is the whole message."""
    script("Let me think about Lima first.", call("get_weather", city="Lima"))
    with client(gateway).messages.stream(model=MODEL, max_tokens=1000, tools=[WEATHER], tool_choice={"type": "any"},
                                         messages=[{"role": "user", "content": "Lima?"}]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"] and final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Lima"} and "text" not in kinds
    reminder = last_turn(gateway).message
    assert "# Tool call required" in reminder and "<previous_reply>\nLet me think about Lima first." in reminder


def test_web_search_server_tool_maps_to_grok_search(gateway: Deployment, script) -> None:
    script("Found it.")
    message = client(gateway).messages.create(
        model=MODEL, max_tokens=100, tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        messages=[{"role": "user", "content": "Search the news"}])
    assert message.content[0].text == "Found it."
    assert "# Tools" not in last_turn(gateway).message


# -- limits ----------------------------------------------------------------------------------------------------------


def test_stop_sequences(gateway: Deployment, script) -> None:
    sdk = client(gateway)
    script("alpha beta END gamma delta")
    message = sdk.messages.create(model=MODEL, max_tokens=100, stop_sequences=["END", "never"],
                                  messages=[{"role": "user", "content": "go"}])
    assert message.content[0].text.rstrip() == "alpha beta"
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"
    script("alpha beta END gamma delta")
    with sdk.messages.stream(model=MODEL, max_tokens=100, stop_sequences=["END"],
                             messages=[{"role": "user", "content": "go"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "END"
    assert "gamma" not in final.content[0].text


def test_max_tokens_cut(gateway: Deployment) -> None:
    sdk = client(gateway)
    message = sdk.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "#long=60"}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens <= 5
    assert 0 < len(message.content[0].text) <= 20
    with sdk.messages.stream(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "#long=60"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens <= 5


def test_count_tokens_matches_usage(gateway: Deployment, script) -> None:
    sdk = client(gateway)
    request = {"model": MODEL, "system": "Be brief.", "tools": [WEATHER],
               "messages": [{"role": "user", "content": "What is the weather like in Paris today?"}]}
    before = gateway.sim.state.ledger()["accepted_total"]
    counted = sdk.messages.count_tokens(**request)
    assert counted.input_tokens > 0
    assert gateway.sim.state.ledger()["accepted_total"] == before  # no upstream call
    script("Sunny.")
    message = sdk.messages.create(max_tokens=100, **request)
    assert message.usage.input_tokens == counted.input_tokens


# -- errors ----------------------------------------------------------------------------------------------------------


def _error(info: pytest.ExceptionInfo[anthropic.APIStatusError], kind: str) -> str:
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == kind, body
    return body["error"]["message"]


def test_errors_in_anthropic_shape(gateway: Deployment) -> None:
    sdk = client(gateway)
    user = [{"role": "user", "content": "hi"}]
    response = httpx.post(gateway.url + "/v1/messages", json={"model": MODEL, "messages": user}, timeout=10,
                          headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    assert response.json()["type"] == "error" and "max_tokens" in response.json()["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk.messages.create(model="gpt-nonexistent", max_tokens=10, messages=user)
    assert "gpt-nonexistent" in _error(info, "not_found_error")
    with pytest.raises(anthropic.AuthenticationError) as info:
        anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=user)
    _error(info, "authentication_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, tools=[WEATHER], messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}]}])
    assert "toolu_nope" in _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, tools=[WEATHER], messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "rm_rf", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}])
    assert "rm_rf" in _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert "document" in _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=user,
                            tools=[{"type": "bash_20250124", "name": "bash"}])
    assert "bash_20250124" in _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=user,
                            extra_body={"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "m"}]})
    assert "mcp_servers" in _error(info, "invalid_request_error")
    many = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(129)]
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=user, tools=many)
    assert "too many tools" in _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=user, tool_choice={"type": "any"})
    _error(info, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}])
    _error(info, "invalid_request_error")


def test_no_account_is_429_and_too_large_is_413(deploy) -> None:
    empty = deploy(max_request_bytes=4096)  # no accounts in the pool
    with pytest.raises(anthropic.RateLimitError) as info:
        client(empty).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    _error(info, "rate_limit_error")
    with pytest.raises(anthropic.APIStatusError) as info:
        client(empty).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x" * 8000}])
    assert info.value.status_code == 413
    _error(info, "request_too_large")


def test_mid_stream_failure_is_an_error_event(gateway: Deployment) -> None:
    body = {"model": MODEL, "max_tokens": 1000, "messages": [{"role": "user", "content": "#long=20 #disconnect"}]}
    events = raw_events(gateway, body)
    kinds = [k for k, _ in events]
    assert kinds[0] == "message_start" and kinds[-1] == "error" and "message_stop" not in kinds
    assert "content_block_delta" in kinds  # it failed after the answer started
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == "api_error" and error["error"]["message"]
    with pytest.raises(anthropic.APIStatusError):
        with client(gateway).messages.stream(**body) as stream:
            for _ in stream:
                pass


def test_ping_while_upstream_is_silent(deploy) -> None:
    gw = deploy(heartbeat_interval=0.2, stream_idle_timeout=10.0)
    gw.add_accounts(1)
    events = raw_events(gw, {"model": "grok-4.5-fast", "max_tokens": 1000,
                             "messages": [{"role": "user", "content": "#stall=1.2 wait for it"}]})
    kinds = [k for k, _ in events]
    assert "ping" in kinds and kinds[-1] == "message_stop"
    assert kinds.index("ping") > kinds.index("content_block_start")  # the stall comes mid-answer
    assert events[kinds.index("ping")][1] == {"type": "ping"}
    with client(gw).messages.stream(model="grok-4.5-fast", max_tokens=1000,
                                    messages=[{"role": "user", "content": "#stall=1 again"}]) as stream:
        assert stream.get_final_message().content[0].text == plain_answer("#stall=1 again")


# -- clients ---------------------------------------------------------------------------------------------------------


def test_claude_code_shaped_request(gateway: Deployment, script) -> None:
    """Claude Code's request shape (see /work/shared/notes/agent-clients.md), read with plain httpx."""
    script("Done: " + call("Write", file_path="/tmp/x.txt", content="Hi"))
    write = {"name": "Write", "description": "Write a file",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                               "content": {"type": "string"}},
                              "required": ["file_path", "content"], "additionalProperties": False,
                              "$schema": "http://json-schema.org/draft-07/schema#"}}
    body = {
        "model": "claude-opus-4-1-20250805", "max_tokens": 64000, "thinking": {"type": "adaptive"},
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "system", "content": "context"},
                     {"role": "user", "content": [{"type": "text", "text": "Create /tmp/x.txt with Hi",
                                                   "cache_control": {"type": "ephemeral"}}]}],
        "tools": [write], "metadata": {"user_id": "u"}, "context_management": {"edits": []},
        "output_config": {"effort": "high"},
    }
    events = raw_events(gateway, body, **{"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                                          "X-Claude-Code-Session-Id": "s1"})
    starts = [d["content_block"] for k, d in events if k == "content_block_start"]
    assert [s["type"] for s in starts] == ["text", "tool_use"]
    partial = "".join(d["delta"]["partial_json"] for k, d in events
                      if k == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"file_path": "/tmp/x.txt", "content": "Hi"}
    assert starts[1]["input"] == {} and starts[1]["name"] == "Write"
    delta = next(d for k, d in events if k == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0


@pytest.fixture
def agent(gateway: Deployment) -> Iterator[Deployment]:
    gateway.sim.config.update({"agent_model": True})
    try:
        yield gateway
    finally:
        gateway.sim.config.update({"agent_model": False})


def test_agent_model_black_box_round_trip(agent: Deployment) -> None:
    sdk = client(agent)
    write = {"name": "Write", "description": "Write a file to the local filesystem.",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                               "content": {"type": "string"}},
                              "required": ["file_path", "content"]}}
    history: list[dict[str, Any]] = [
        {"role": "user", "content": 'Create the file /tmp/hello.txt with content "Hi"'}]
    with sdk.messages.stream(model=MODEL, max_tokens=4000, tools=[write, WEATHER], messages=history) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "Write" and use.input == {"file_path": "/tmp/hello.txt", "content": "Hi"}
    history += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                              "content": "File created successfully"}]}]
    final = sdk.messages.create(model=MODEL, max_tokens=4000, tools=[write, WEATHER], messages=history)
    assert final.stop_reason == "end_turn"
    assert "File created successfully" in final.content[-1].text


# -- more inputs -----------------------------------------------------------------------------------------------------


def test_image_url_source_and_tool_result_image(gateway: Deployment, script) -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    image = png(16, 16, (10, 20, 200))
    shot = png(12, 12, (200, 20, 10))
    app = Starlette(routes=[Route("/cat.png", lambda request: Response(image, media_type="image/png"))])
    script("A blue cat.", "A red screenshot.")
    sdk = client(gateway)
    before = len(gateway.sim.state.files)
    with ThreadedServer(app) as host:
        message = sdk.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": f"{host.url}/cat.png"}},
            {"type": "text", "text": "Describe"}]}])
    assert message.content[0].text == "A blue cat."
    assert list(gateway.sim.state.files.values())[-1].size == len(image)
    answer = sdk.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER], messages=[
        {"role": "user", "content": "Screenshot?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_shot", "name": "get_weather",
                                           "input": {"city": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_shot", "content": [
            {"type": "text", "text": "here"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(shot).decode()}}]}]},
    ])
    assert answer.content[0].text == "A red screenshot."
    assert len(gateway.sim.state.files) == before + 2
    assert list(gateway.sim.state.files.values())[-1].size == len(shot)


def test_structured_output(gateway: Deployment, script) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    script('Sure! ```json\n{"answer": "42"}\n```')
    message = client(gateway).messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Meaning of life?"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert json.loads(message.content[0].text) == {"answer": "42"}
    assert "# Response format" in last_turn(gateway).message


def test_structured_output_gets_its_repair_turn(gateway: Deployment, script) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    script('{"answer": "forty-two"}', '{"answer": 42}')
    message = client(gateway).messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Meaning of life?"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert json.loads(message.content[0].text) == {"answer": 42}  # only the repaired answer
    assert "does not follow the required response format" in last_turn(gateway).message


async def test_async_client_stream(gateway: Deployment, script) -> None:
    script("async hello there")
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=API_KEY, max_retries=0)
    async with sdk.messages.stream(model=MODEL, max_tokens=100,
                                   messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == "async hello there"
    await sdk.close()


def test_claude_model_setting_and_aliases(deploy) -> None:
    gw = deploy(claude_model="grok-4.5-expert", model_aliases={"claude-haiku-4-5": "grok-4.5-fast"})
    gw.add_accounts(1)
    sdk = client(gw)
    for name, mode in (("claude-opus-4-1", "expert"), ("claude-haiku-4-5", "fast"), ("grok-4.5", "auto")):
        message = sdk.messages.create(model=name, max_tokens=500, messages=[{"role": "user", "content": "hi"}])
        assert message.model == name
        assert last_turn(gw).mode == mode
    with pytest.raises(anthropic.NotFoundError):
        client(deploy(claude_model="grok-nope")).messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
