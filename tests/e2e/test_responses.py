"""The OpenAI Responses API through the official SDK: the gateway over real HTTP, the grok.com simulator behind it
(scripted replies play the model exactly; agent mode for black-box flows), the embedded Redis as the store.

Covers create (string input, items, instructions), the SDK's ``responses.stream`` state machine with and without
tools, the tool round trip, ``previous_response_id`` chains (the simulator sees earlier turns), ``store: false``,
retrieve / delete / input items, ``text.format`` json_schema, ``max_output_tokens``, a failure mid-stream (one
``response.failed``), the store commands a request costs, and Codex-shaped requests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from api._app import create_app
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from simulator.text import plain_answer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment
from tests.e2e.media import data_uri, png
from tests.support.asgi import ThreadedServer

MODEL = "grok-4.5-fast"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PARIS_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@dataclass
class Gw:
    deployment: Deployment
    app: Any
    token: str

    @property
    def sim(self) -> SimulatorServer:
        return self.deployment.sim

    def client(self) -> openai.OpenAI:
        return self.deployment.client()

    def script(self, *replies: Any) -> None:
        self.sim.state.script_replies(self.token, list(replies), replace=True)

    def last_message(self) -> str:
        convs = [c for c in self.sim.state.conversations.values() if c.owner_token == self.token]
        return convs[-1].turns[-1].message

    def commands(self) -> int:
        return self.app.state.gateway._gateway.store.commands_sent

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.deployment.base_url + path, json=body, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture(scope="module")
def make(sim: SimulatorServer, embedded_redis) -> Iterator[Callable[..., Gw]]:
    servers: list[ThreadedServer] = []

    def build(**overrides: Any) -> Gw:
        values: dict[str, Any] = {
            "api_keys": (API_KEY,), "admin_password": ADMIN_PASSWORD, "redis_url": embedded_redis.url,
            "store_prefix": f"resp-{uuid.uuid4().hex[:10]}:", "grok_base_url": sim.base_url,
            "grok_assets_url": sim.assets_url, "grok_ws_url": sim.ws_url, "first_byte_timeout": 10.0,
            "stream_idle_timeout": 5.0, "heartbeat_interval": 5.0, **overrides,
        }
        settings = Settings(**values)
        app = create_app(settings)
        server = ThreadedServer(app).start()
        servers.append(server)
        deployment = Deployment(server.url, settings, sim)
        (token,) = deployment.add_accounts(1, tier="heavy")
        return Gw(deployment, app, token)

    yield build
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def gw(make: Callable[..., Gw]) -> Gw:
    return make()


@pytest.fixture
def agent(sim: SimulatorServer) -> Iterator[None]:
    sim.config.update({"agent_model": True})
    try:
        yield
    finally:
        sim.config.update({"agent_model": False})


@pytest.fixture(autouse=True)
def _no_leftover_replies(sim: SimulatorServer) -> Iterator[None]:
    yield
    sim.state.clear_replies()


# -- create ---------------------------------------------------------------------------------------------------------


def test_string_input_non_stream(gw: Gw) -> None:
    prompt = f"hello responses {uuid.uuid4().hex[:6]}"
    response = gw.client().responses.create(model=MODEL, input=prompt)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.error is None and response.incomplete_details is None
    assert response.model == MODEL
    assert response.output_text == plain_answer(prompt)
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert gw.last_message() == prompt  # a lone user message goes upstream as it is


def test_items_and_instructions_reach_upstream(gw: Gw) -> None:
    gw.script("Bonjour!")
    response = gw.client().responses.create(
        model=MODEL,
        instructions="Answer in French.",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
            {"role": "user", "content": [{"text": "Again, please"}]},  # Codex: parts without type
            {"type": "reasoning", "id": "rs_1", "summary": []},  # dropped upstream
        ],
    )
    assert response.output_text == "Bonjour!"
    assert response.instructions == "Answer in French."
    message = gw.last_message()
    assert message.index("Answer in French.") < message.index("Be brief.") < message.index("Say hi")
    assert "[assistant]\nHi!" in message and message.rstrip().endswith("Again, please")


def test_unsupported_inputs_are_clear_400s(gw: Gw) -> None:
    cases = [
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
         "input[0].content[0].file_id"),
        ({"input": [{"type": "mystery"}]}, "input[0].type"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": []}, "input"),
    ]
    for extra, param in cases:
        response = gw.post("/responses", {"model": MODEL, **extra})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


# -- streaming --------------------------------------------------------------------------------------------------


def test_stream_text_with_the_sdk_state_machine(gw: Gw) -> None:
    gw.script({"text": "The answer is 42.", "thinking": "Let me think."})
    with gw.client().responses.stream(model=MODEL, input="what is it?", reasoning={"summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.reasoning_summary_text.delta" in kinds and "response.output_text.delta" in kinds
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index("response.content_part.added")
    assert final.status == "completed" and final.output_text == "The answer is 42."
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text.endswith("Let me think.")
    assert message.type == "message" and message.status == "completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "The answer is 42."
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens > 0


def test_stream_function_call(gw: Gw) -> None:
    gw.script("Let me check. " + PARIS_CALL)
    with gw.client().responses.stream(model=MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[-1] == "response.completed" and kinds.count("response.completed") == 1
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    message, call = final.output
    assert message.type == "message" and final.output_text.strip() == "Let me check."
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id.startswith("call_")
    assert call.id.startswith("fc_")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == call.arguments and done.output_index == 1


def test_tool_round_trip_with_function_call_output(gw: Gw) -> None:
    gw.script(PARIS_CALL, "It is 21 degrees in Paris.")
    client = gw.client()
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER], store=False)
    (call,) = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model=MODEL, tools=[WEATHER], store=False,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'},
        ],
    )
    assert second.output_text == "It is 21 degrees in Paris."
    message = gw.last_message()
    assert call.call_id in message and '{"temp": 21}' in message and "get_weather" in message


def test_agent_mode_round_trip_streamed(gw: Gw, agent: None) -> None:
    client = gw.client()
    with client.responses.stream(model=MODEL, input="What's the weather in Paris?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Paris"}
    follow = client.responses.create(
        model=MODEL, tools=[WEATHER], previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}],
    )
    assert "sunny, 24C" in follow.output_text


# -- chains and storage ---------------------------------------------------------------------------------------------


def test_previous_response_id_chain_of_three(gw: Gw) -> None:
    client = gw.client()
    gw.script("Nice to meet you, Ada.", "You like tea.", "Ada, who likes tea.")
    one = client.responses.create(model=MODEL, input="My name is Ada.", instructions="Be kind.")
    two = client.responses.create(model=MODEL, input="I like tea.", previous_response_id=one.id)
    message = gw.last_message()
    assert "My name is Ada." in message and "Nice to meet you, Ada." in message and "I like tea." in message
    assert "Be kind." not in message  # instructions are not carried over
    three = client.responses.create(model=MODEL, input="Who am I?", previous_response_id=two.id)
    message = gw.last_message()
    for text in ("My name is Ada.", "Nice to meet you, Ada.", "I like tea.", "You like tea.", "Who am I?"):
        assert text in message
    assert three.previous_response_id == two.id and three.output_text == "Ada, who likes tea."


def test_unknown_previous_response_is_404(gw: Gw) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().responses.create(model=MODEL, input="hi", previous_response_id="resp_doesnotexist")
    error = caught.value.body
    assert error["code"] == "previous_response_not_found" and error["param"] == "previous_response_id"


def test_store_false_is_not_retrievable(gw: Gw) -> None:
    client = gw.client()
    response = client.responses.create(model=MODEL, input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_retrieve_input_items_delete(gw: Gw) -> None:
    client = gw.client()
    gw.script("stored answer")
    created = client.responses.create(
        model=MODEL, metadata={"k": "v"},
        input=[{"role": "user", "content": "first"}, {"role": "user", "content": "second"}],
    )
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "stored answer" and fetched.metadata == {"k": "v"}
    items = client.responses.input_items.list(created.id)
    assert [i.content[0].text for i in items.data] == ["second", "first"]  # newest first by default
    ascending = client.responses.input_items.list(created.id, order="asc", limit=1)
    assert [i.content[0].text for i in ascending.data] == ["first"] and ascending.has_more
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_store_commands_per_request(gw: Gw) -> None:
    client = gw.client()
    gw.script("warm", "one", "two")
    client.responses.create(model=MODEL, input="warm up", store=False)  # scripts loaded, quota known
    before = gw.commands()
    first = client.responses.create(model=MODEL, input="one")
    stored = gw.commands() - before
    before = gw.commands()
    with client.responses.stream(model=MODEL, input="two", previous_response_id=first.id) as stream:
        stream.get_final_response()
    chained = gw.commands() - before
    assert stored == 2, stored  # lease + settle (which also stores): measured 2
    assert chained == 3, chained  # + one GET for previous_response_id: measured 3


# -- formats and limits ---------------------------------------------------------------------------------------------


def test_text_format_json_schema(gw: Gw, agent: None) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    response = gw.client().responses.create(
        model=MODEL, input="What is the capital of France?",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}},
    )
    assert set(json.loads(response.output_text)) == {"answer"}
    assert response.text.format.type == "json_schema"


def test_max_output_tokens_is_incomplete(gw: Gw) -> None:
    with gw.client().responses.stream(model=MODEL, input="#long=200 talk", max_output_tokens=16) as stream:
        events = list(stream)
    assert events[-1].type == "response.incomplete"
    response = events[-1].response
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    plain = gw.client().responses.create(model=MODEL, input="#long=200 talk", max_output_tokens=16)
    assert plain.status == "incomplete" and plain.incomplete_details.reason == "max_output_tokens"
    assert 0 < plain.usage.output_tokens <= 16


def test_mid_stream_failure_is_one_response_failed(gw: Gw) -> None:
    with gw.client().responses.stream(model=MODEL, input="#long=20 #disconnect go") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError):
            stream.get_final_response()  # the SDK reports no completed response
    kinds = [e.type for e in events]
    terminal = [k for k in kinds if k in ("response.completed", "response.incomplete", "response.failed")]
    assert terminal == ["response.failed"] and kinds[-1] == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error" and failed.error.message
    assert "response.output_text.delta" in kinds  # it had started answering


def test_raw_stream_frames_and_event_names(gw: Gw) -> None:
    with httpx.stream("POST", gw.deployment.base_url + "/responses", timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": MODEL, "input": "raw frames", "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    frames = [f for f in text.split("\n\n") if f.strip() and not f.startswith(":")]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line[len("event: "):] == json.loads(data_line[len("data: "):])["type"]
    assert "[DONE]" not in text


def test_input_tokens_estimate(gw: Gw) -> None:
    count = gw.client().responses.input_tokens.count(model=MODEL, input="count these few words please")
    assert count.object == "response.input_tokens" and count.input_tokens > 0


# -- Codex-shaped requests --------------------------------------------------------------------------------------


CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "description": "Runs a command.", "strict": False,
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
                    "required": ["cmd"], "additionalProperties": False}},
    {"type": "namespace", "name": "mcp_files", "description": "File tools.",
     "tools": [{"type": "function", "name": "read", "description": "Read a file.",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                               "required": ["path"]}}]},
    {"type": "web_search"},
    {"type": "custom", "name": "apply_patch", "description": "Freeform patch."},
]


def codex_body(input_items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": MODEL, "stream": True, "store": False, "include": ["reasoning.encrypted_content"],
            "reasoning": {"summary": "auto"}, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": CODEX_TOOLS, "input": input_items, "prompt_cache_key": "abc"}


def sse_payloads(gw: Gw, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", gw.deployment.base_url + "/responses", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        assert response.status_code == 200, response.read()
        text = "".join(response.iter_text())
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_codex_shaped_requests_namespace_tool_round_trip(gw: Gw) -> None:
    gw.script('<tool_call>{"name": "mcp_files.read", "arguments": {"path": "README.md"}}</tool_call>',
              "The README says hello.")
    developer = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]}
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Read README.md"}]}
    events = sse_payloads(gw, codex_body([developer, user]))
    assert events[-1]["type"] == "response.completed"
    call = next(e["item"] for e in events if e["type"] == "response.output_item.done"
                and e["item"]["type"] == "function_call")
    assert call["name"] == "read" and call["namespace"] == "mcp_files"
    message = gw.last_message()
    assert "mcp_files.read" in message and "exec_command" in message and "apply_patch" not in message
    # Codex echoes the call, then its output; reasoning items and content: null are replayed too.
    replay = [developer, user, {"type": "reasoning", "id": "rs_x", "summary": [], "content": None,
                                "encrypted_content": None},
              {"type": "function_call", "name": "read", "namespace": "mcp_files", "arguments": call["arguments"],
               "call_id": call["call_id"]},
              {"type": "function_call_output", "call_id": call["call_id"], "output": "hello"},
              {"type": "message", "role": "assistant", "content": None}]
    events = sse_payloads(gw, codex_body(replay))
    assert events[-1]["type"] == "response.completed"
    texts = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(texts) == "The README says hello."
    assert "hello" in gw.last_message() and call["call_id"] in gw.last_message()


# -- more controls ------------------------------------------------------------------------------------------------


def test_image_input_is_uploaded(gw: Gw) -> None:
    image = png(8, 8)
    before = len(gw.sim.state.files)
    response = gw.client().responses.create(model=MODEL, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is in this image"},
        {"type": "input_image", "image_url": data_uri(image), "detail": "auto"},
    ]}])
    assert response.output_text == plain_answer("what is in this image")
    assert len(gw.sim.state.files) == before + 1


def test_tool_choice_forced_and_parallel_calls_off(gw: Gw) -> None:
    other = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
    two = PARIS_CALL + '\n<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    gw.script(two, two)
    client = gw.client()
    forced = client.responses.create(model=MODEL, input="weather?", tools=[WEATHER, other],
                                     tool_choice={"type": "function", "name": "get_weather"})
    assert [item.type for item in forced.output] == ["function_call", "function_call"]
    assert "you MUST call the tool `get_weather`" in gw.last_message()
    single = client.responses.create(model=MODEL, input="weather?", tools=[WEATHER], parallel_tool_calls=False)
    assert [item.type for item in single.output] == ["function_call"] and single.parallel_tool_calls is False


def test_text_format_json_object(gw: Gw) -> None:
    gw.script('Sure: {"city": "Paris"}')
    response = gw.client().responses.create(model=MODEL, input="JSON please",
                                            text={"format": {"type": "json_object"}})
    assert json.loads(response.output_text) == {"city": "Paris"}


def test_failure_before_the_stream_is_a_json_error(make: Callable[..., Gw]) -> None:
    own = make()  # upstream failures cool the account down: keep them off the shared one
    with pytest.raises(openai.APIStatusError) as caught:
        own.client().responses.create(model=MODEL, input="#crash now", stream=True)
    assert caught.value.status_code >= 500 and caught.value.body["type"] == "upstream_error"


def test_heartbeats_while_upstream_is_silent(make: Callable[..., Gw]) -> None:
    quick = make(heartbeat_interval=0.3, stream_idle_timeout=5.0)
    with httpx.stream("POST", quick.deployment.base_url + "/responses", timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": MODEL, "input": "#stall=1 wait for it", "stream": True}) as response:
        text = "".join(response.iter_text())
    assert ": keep-alive" in text and '"type":"response.completed"' in text.replace(" ", "")


def test_too_large_to_store_says_so(gw: Gw) -> None:
    client = gw.client()
    gw.script("ok")
    big = client.responses.create(model=MODEL, input="x " * 300_000)  # ~600 KB of input
    assert big.status == "completed"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="and now?", previous_response_id=big.id)
    assert caught.value.body["code"] == "response_too_large"


def test_sdk_parse_with_a_pydantic_model(gw: Gw, agent: None) -> None:
    from pydantic import BaseModel

    class Capital(BaseModel):
        answer: str

    parsed = gw.client().responses.parse(model=MODEL, input="What is the capital of France?", text_format=Capital)
    assert isinstance(parsed.output_parsed, Capital) and parsed.output_parsed.answer


def test_usage_limit_before_the_stream_is_a_429(make: Callable[..., Gw]) -> None:
    own = make()
    with pytest.raises(openai.RateLimitError) as caught:
        own.client().responses.create(model=MODEL, input="#usage_limit now", stream=True)
    assert caught.value.status_code == 429


def test_error_message_carries_the_retry_hint() -> None:
    from api._responses import error_code, error_message
    from core.errors import FailureKind, UpstreamError

    error = UpstreamError(FailureKind.RATE_LIMITED, "grok.com rate-limited the account", retry_after=12.2)
    assert error_code(error) == "rate_limit_exceeded"
    assert error_message(error) == "grok.com rate-limited the account. Please try again in 13s."


async def test_async_client_stream_with_a_tool(gw: Gw) -> None:
    gw.script(PARIS_CALL)
    client = gw.deployment.async_client()
    async with client.responses.stream(model=MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[-1] == "response.completed"
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    await client.close()
