"""The agent model against the gateway's real instruction text (``core.tools`` / ``core.structured``): its answers
must read back through the gateway's own parsers. Skipped if those modules are not importable."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from simulator.agent import agent_answer, parse_instructions
from simulator.rules import Plan
from tests.simulator.helpers import chat, final_text

tools = pytest.importorskip("core.tools")
structured = pytest.importorskip("core.structured")
prompt = pytest.importorskip("core.prompt")

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
           "required": ["city", "unit"], "additionalProperties": False}
WRITE = {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
         "required": ["file_path", "content"], "additionalProperties": False}
TODO_DESCRIPTION = ("Track tasks.\n\n## When to Use This Tool\nOften.\n\n# Examples\n```json\n{\"not\": \"a schema\"}\n"
                    "```")


def specs() -> list[Any]:
    return [tools.ToolSpec("TodoWrite", TODO_DESCRIPTION, {"type": "object", "properties": {
                "todos": {"type": "array", "items": {"type": "string"}}}, "required": ["todos"]}),
            tools.ToolSpec("get_weather", "Get the current weather for a city.", WEATHER),
            tools.ToolSpec("Write", "Writes a file to the local filesystem.", WRITE)]


def message(history: list[Any], *blocks: str) -> str:
    """Instructions as a system turn ahead of the history, rendered the gateway's way."""
    turns = [prompt.Turn("system", "\n\n".join(blocks)), *history]
    return tools.render_history(turns)


def read_back(text: str) -> Any:
    assert text.startswith(tools.CALL_OPEN) and text.endswith(tools.CALL_CLOSE), text
    body = text[len(tools.CALL_OPEN):-len(tools.CALL_CLOSE)]
    call = tools.read_call(body, {spec.name: spec for spec in specs()})
    assert not isinstance(call, str), call
    return call


def test_the_real_tools_block_is_read() -> None:
    found = parse_instructions(message([prompt.Turn("user", "hi")], tools.instructions(specs())))
    assert [t.name for t in found.tools] == ["TodoWrite", "get_weather", "Write"]
    assert found.tools[1].schema == tools.ToolSpec("w", "", WEATHER).schema
    assert "When to Use" in found.tools[0].description and "not" not in found.tools[0].schema.get("properties", {})
    assert not found.calls_disabled and found.forced is None and not found.required


@pytest.mark.parametrize(("choice", "request_text", "expected"), [
    (None, "What's the weather in Paris?", "get_weather"),
    (None, 'Create /tmp/a.txt with content "hi"', "Write"),
    (tools.ToolChoice("required"), "hello", "TodoWrite"),
    (tools.ToolChoice.function("Write"), "What's the weather in Paris?", "Write"),
])
def test_calls_read_back_through_the_gateway(choice: Any, request_text: str, expected: str) -> None:
    text = agent_answer(message([prompt.Turn("user", request_text)], tools.instructions(specs(), choice)), Plan())
    call = read_back(text)
    assert call.name == expected


def test_results_and_tool_choice_none() -> None:
    history = [
        prompt.Turn("user", "Weather in Paris?"),
        prompt.Turn("assistant", "", tool_calls=[prompt.ToolCall("call_1", "get_weather", '{"city": "Paris"}')]),
        prompt.Turn("tool", '{"temp": 21}', tool_call_id="call_1"),
    ]
    assert agent_answer(message(history, tools.instructions(specs())), Plan()) == 'The tool returned: {"temp": 21}'
    none = tools.instructions(specs(), tools.ToolChoice("none"))
    assert agent_answer(message(history, none), Plan()) == 'The tool returned: {"temp": 21}'
    assert agent_answer(message([prompt.Turn("user", "hi")], none), Plan()) is None  # the plain answer


@pytest.mark.parametrize("fmt", [
    structured.OutputFormat("json_object"),
    structured.OutputFormat("json_schema", name="person", schema={
        "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 3},
                                         "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}},
        "required": ["name", "age", "tags"], "additionalProperties": False,
        "$defs": {"tag": {"enum": ["a", "b"]}}}),
    structured.OutputFormat("json_schema", schema={"type": "array", "items": {"type": "integer"}}),
])
@pytest.mark.parametrize("markers", ["", "#fenced", "#prose", "#fenced #prose"])
def test_json_reads_back_through_the_gateway(fmt: Any, markers: str) -> None:
    text = agent_answer(message([prompt.Turn("user", f'Describe "Ada" {markers}')], structured.instructions(fmt)),
                        Plan(fenced="#fenced" in markers, prose="#prose" in markers))
    value, problems = structured.check(fmt, text)
    assert value is not None and problems == [], text


def test_repair_prompt_gets_valid_json() -> None:
    fmt = structured.OutputFormat("json_schema", schema={"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 5}}, "required": ["n"]})
    repair = structured.repair_prompt(fmt, '{"wrong": {"n": 1}}', ["at $: 'n' is a required property"])
    text = agent_answer(message([prompt.Turn("user", "count"), prompt.Turn("assistant", '{"wrong": 1}'),
                                 prompt.Turn("user", repair)]), Plan())
    assert structured.check(fmt, text) == ({"n": 5}, [])


def test_over_http_with_the_real_block(client: httpx.Client, sim) -> None:
    sim.config.agent_model = True
    text = final_text(chat(client, message([prompt.Turn("user", "Weather in Oslo?")], tools.instructions(specs())),
                           modeId="fast"))
    call = read_back(text)
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo", "unit": "c"}
    assert json.loads(text[len(tools.CALL_OPEN):-len(tools.CALL_CLOSE)])["arguments"] == call.arguments
