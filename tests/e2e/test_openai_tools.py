"""Tool calling, structured output, stop sequences and token limits on /v1/chat/completions, with the official
``openai`` SDK over real HTTP and the simulator playing the model (scripted replies, or its agent mode that follows
the gateway's instructions)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from api._app import create_app
from core.pool.tokens import account_id
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment
from tests.support.asgi import ThreadedServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast(agent_model=True)) as server:
        yield server


@pytest.fixture(scope="module", params=["rest", "mgw"])
def gw(request: pytest.FixtureRequest, sim: SimulatorServer, embedded_redis) -> Iterator[Deployment]:
    settings = Settings(
        api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"tools-{uuid.uuid4().hex[:10]}:", grok_base_url=sim.base_url, grok_assets_url=sim.assets_url,
        grok_ws_url=sim.ws_url, chat_transport=request.param, lease_wait=0.0,
    )
    server = ThreadedServer(create_app(settings)).start()
    deployment = Deployment(server.url, settings, sim)
    deployment.add_accounts(1, tier="heavy")
    yield deployment
    server.stop()


@pytest.fixture
def script(gw: Deployment) -> Iterator[Callable[..., None]]:
    """``script("reply", ...)``: the account's next answers, word for word."""
    token = gw.tokens[0]

    def queue(*replies: Any) -> None:
        gw.sim.state.script_replies(token, list(replies), replace=True)

    yield queue
    gw.sim.state.clear_replies(token)


def call_line(name: str, **arguments: Any) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


# -- tool calls -------------------------------------------------------------------------------------------------


def test_a_scripted_call_becomes_tool_calls(gw: Deployment, script) -> None:
    script("Let me check.\n" + call_line("get_weather", city="Paris"))
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id.startswith("call_")
    assert choice.message.content == "Let me check.\n"


def test_streamed_tool_calls_arrive_as_openai_deltas(gw: Deployment, script) -> None:
    script(call_line("get_weather", city="Paris") + "\n" + call_line("get_time", city="Tokyo"))
    stream = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "weather and time"}], tools=[WEATHER, TIME],
        stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function.name or "") if delta.function else ""
            entry["arguments"] += (delta.function.arguments or "") if delta.function else ""
        assert not (choice.delta.content or "").strip(), "whitespace between calls is not content"
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "Tokyo"})]
    assert all(c["id"].startswith("call_") for c in calls.values())


def test_stream_helper_accumulates_the_calls(gw: Deployment, script) -> None:
    script(call_line("get_weather", city="Oslo"))
    with gw.client().chat.completions.stream(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER],
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}


def test_tool_result_round_trip_with_the_agent_model(gw: Deployment) -> None:
    client = gw.client()
    messages: list[Any] = [{"role": "user", "content": "What is the weather in \"Paris\"?"}]
    first = client.chat.completions.create(model="grok-4.5-fast", messages=messages, tools=[WEATHER],
                                           tool_choice="required")
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["city"]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = client.chat.completions.create(model="grok-4.5-fast", messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert "sunny, 21 C" in second.choices[0].message.content


def test_forced_function_and_none(gw: Deployment, script) -> None:
    client = gw.client()
    forced = client.chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "anything"}], tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    (call,) = forced.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    # tool_choice none: even a reply that looks like a call stays text.
    script(call_line("get_weather", city="Rome"))
    none = client.chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "Rome"}], tools=[WEATHER], tool_choice="none")
    assert none.choices[0].message.tool_calls is None and "<tool_call>" in none.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_a_required_call_the_model_skipped_gets_one_reminder(gw: Deployment, script, stream: bool) -> None:
    """``tool_choice: required`` and an answer without a call: its text is held, and one reminder turn on the same
    account (quoting that answer) asks for the call; only the call reaches the client."""
    tag = uuid.uuid4().hex[:8]
    script(f"I think it is sunny in Oslo {tag}.")  # the first answer ignores the rule ...
    # ... and the simulator answers the reminder (recognised by its heading and the quoted answer) with a call.
    gw.sim.state.rules.add(rf"# Tool call required.*<previous_reply>\nI think it is sunny in Oslo {tag}\.",
                                  text=call_line("get_weather", city=f"Oslo-{tag}"))
    accepted = lambda: gw.sim.state.ledger(gw.tokens[0])["accepted"].get("fast", 0)  # noqa: E731
    before = accepted()
    kwargs: dict[str, Any] = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "Oslo?"}],
                              "tools": [WEATHER], "tool_choice": "required"}
    try:
        if stream:
            with gw.client().chat.completions.stream(**kwargs) as events:
                message = events.get_final_completion().choices[0]
        else:
            message = gw.client().chat.completions.create(**kwargs).choices[0]
    finally:
        gw.sim.state.rules.clear()
    (call,) = message.message.tool_calls
    assert json.loads(call.function.arguments) == {"city": f"Oslo-{tag}"} and message.finish_reason == "tool_calls"
    assert not message.message.content  # the skipped answer's text never reached the client
    assert accepted() == before + 2  # the answer and the reminder, on the same account


def test_a_required_call_still_missing_answers_with_the_text(gw: Deployment, script) -> None:
    script("no tools for me", "still no tools")
    accepted = lambda: gw.sim.state.ledger(gw.tokens[0])["accepted"].get("fast", 0)  # noqa: E731
    before = accepted()
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "x"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = result.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert choice.message.content == "still no tools" and accepted() == before + 2


def test_a_reminder_turn_that_fails_leaves_the_first_answer(gw: Deployment, script) -> None:
    """The reminder turn refused upstream (the account hit its usage limit meanwhile): the client still gets the
    first answer's text, not an error, and nothing of it is lost."""
    tag = uuid.uuid4().hex[:8]
    script(f"Sunny, I believe ({tag}).")
    gw.sim.state.rules.add(rf"# Tool call required.*\({tag}\)", usage_limit=True)
    try:
        result = gw.client().chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER],
            tool_choice="required")
    finally:
        gw.sim.state.rules.clear()
        # the usage-limit answer zeroed the account's fast quota in the pool: read grok.com's real numbers again
        tested = gw.admin("POST", f"/admin/tokens/{account_id(gw.tokens[0])}/test")
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
    choice = result.choices[0]
    assert choice.message.content == f"Sunny, I believe ({tag})." and choice.finish_reason == "stop"
    assert choice.message.tool_calls is None and result.usage.completion_tokens > 0


def test_a_stored_response_survives_a_reminder_that_could_not_open(gw: Deployment, script) -> None:
    """The first turn was settled for its reminder, which then failed: the answer is still stored (``store``:
    retrievable) and its log entry still carries the model, the account and the tokens."""
    tag = uuid.uuid4().hex[:8]
    script(f"Sunny, I believe ({tag}).")
    gw.sim.state.rules.add(rf"# Tool call required.*\({tag}\)", usage_limit=True)
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    try:
        response = gw.client().responses.create(model="grok-4.5-fast", input=f"Oslo? {tag}", store=True,
                                                tools=[tool], tool_choice="required")
    finally:
        gw.sim.state.rules.clear()
        tested = gw.admin("POST", f"/admin/tokens/{account_id(gw.tokens[0])}/test")
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
    assert response.output_text == f"Sunny, I believe ({tag})."
    assert gw.client().responses.retrieve(response.id).output_text == response.output_text
    entry = gw.admin("GET", "/admin/logs", params={"limit": 1}).json()["data"][0]
    assert entry["route"] == "POST /v1/responses" and entry["model"] == "grok-4.5-fast", entry
    assert entry["account"] and entry["completion_tokens"] > 0 and entry["prompt_tokens"] > 0


def test_what_is_not_a_declared_valid_call_stays_text(gw: Deployment, script) -> None:
    fenced = "```\n" + call_line("get_weather", city="Paris") + "\n```"
    for reply in (fenced, call_line("launch_rockets", target="moon"), call_line("get_weather", town="Paris")):
        script(reply)
        result = gw.client().chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": "x"}], tools=[WEATHER])
        assert result.choices[0].message.tool_calls is None, reply
        assert result.choices[0].message.content == reply and result.choices[0].finish_reason == "stop"


def test_parallel_tool_calls_false_keeps_the_first(gw: Deployment, script) -> None:
    script(call_line("get_weather", city="A") + "\n" + call_line("get_time", city="B"))
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "x"}], tools=[WEATHER, TIME],
        parallel_tool_calls=False)
    assert [c.function.name for c in result.choices[0].message.tool_calls] == ["get_weather"]


def test_legacy_functions_answer_with_function_call(gw: Deployment, script) -> None:
    script(call_line("get_weather", city="Lima"))
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "Lima"}],
        functions=[WEATHER["function"]], function_call="auto")
    choice = result.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Lima"}


def test_a_call_written_in_the_reasoning_is_found(gw: Deployment, script) -> None:
    script({"thinking": "I should look it up. " + call_line("get_weather", city="Kyiv"), "text": ""})
    result = gw.client().chat.completions.create(
        model="grok-4.5-expert", messages=[{"role": "user", "content": "Kyiv"}], tools=[WEATHER])
    (call,) = result.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Kyiv"}


def test_bad_tool_declarations_are_clear_400s(gw: Deployment) -> None:
    client = gw.client()
    cases = [
        ({"tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "nonsense"}}}]}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [WEATHER] * 2}, "tools"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": "x"}],
                                           **extra)
        assert info.value.body["param"].startswith(param), (extra, info.value.body)


# -- structured output ------------------------------------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


def test_parse_with_a_pydantic_model(gw: Deployment) -> None:
    result = gw.client().chat.completions.parse(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "Invent a person"}], response_format=Person)
    person = result.choices[0].message.parsed
    assert isinstance(person, Person)


@pytest.mark.parametrize("marker", ["#fenced", "#prose"])
def test_json_is_dug_out_of_fences_and_prose(gw: Deployment, marker: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": Person.model_json_schema(), "strict": True}}
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": f"a person {marker}"}], response_format=fmt)
    value = json.loads(result.choices[0].message.content)
    assert set(value) == {"name", "age"}


def test_strict_schema_not_met_twice_is_a_clear_error(gw: Deployment, script) -> None:
    script('{"name": "Ann"}', 'still {"name": "Ann"}')
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": Person.model_json_schema(), "strict": True}}
    with pytest.raises(openai.APIStatusError) as info:
        gw.client().chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": "x"}], response_format=fmt)
    assert info.value.status_code == 502 and info.value.body["code"] == "invalid_structured_output"
    assert "age" in info.value.body["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_one_repair_turn_fixes_invalid_json(gw: Deployment, script, stream: bool) -> None:
    script('{"name": "Ann"}', '{"name": "Ann", "age": 41}')
    accepted = lambda: gw.sim.state.ledger(gw.tokens[0])["accepted"].get("fast", 0)  # noqa: E731
    before = accepted()
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": Person.model_json_schema(), "strict": True}}
    kwargs: dict[str, Any] = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "x"}],
                              "response_format": fmt}
    if stream:
        chunks = list(gw.client().chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        result = gw.client().chat.completions.create(**kwargs)
        text = result.choices[0].message.content
    assert json.loads(text) == {"name": "Ann", "age": 41}  # only the repaired answer reaches the client
    assert accepted() == before + 2  # the answer and its repair, on the same account
    if not stream:  # the client's usage is the answer it got; the log counts both turns upstream answered
        entry = gw.admin("GET", "/admin/logs", params={"limit": 1}).json()["data"][0]
        assert entry["completion_tokens"] > result.usage.completion_tokens, (entry, result.usage)
        assert entry["prompt_tokens"] > result.usage.prompt_tokens, (entry, result.usage)


def test_json_object_mode(gw: Deployment, script) -> None:
    script('Sure! Here it is:\n```json\n{"ok": true}\n```')
    result = gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"})
    assert json.loads(result.choices[0].message.content) == {"ok": True}


# -- stop sequences and token limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_cuts_the_answer(gw: Deployment, script, stream: bool) -> None:
    script("one two three STOP four five")
    kwargs: dict[str, Any] = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "count"}],
                              "stop": ["STOP", "never"]}
    if stream:
        chunks = list(gw.client().chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        result = gw.client().chat.completions.create(**kwargs)
        text, finish = result.choices[0].message.content, [result.choices[0].finish_reason]
    assert text == "one two three " and finish == ["stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cuts_with_length(gw: Deployment, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "long #long=200"}],
                              "max_tokens": 10}
    if stream:
        chunks = list(gw.client().chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                          **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = chunks[-1].usage
    else:
        result = gw.client().chat.completions.create(**kwargs)
        text, finish, usage = result.choices[0].message.content, [result.choices[0].finish_reason], result.usage
    assert finish == ["length"] and 30 <= len(text) <= 40  # ~4 characters a token
    assert usage.completion_tokens == 10
