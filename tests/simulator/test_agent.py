"""The agent model (``SimConfig.agent_model``): tool calls, tool-result summaries and JSON answers from the gateway's
``# Tools`` / ``# Response format`` instructions, over REST and mgw."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import websockets

from simulator.agent import agent_answer, parse_instructions
from simulator.rules import Plan
from simulator.schema_fill import Request, fill
from simulator.text import plain_answer
from tests.simulator.helpers import TOKEN, chat, final_text
from tests.simulator.test_websockets import ask, mgw_headers, open_session

try:
    import jsonschema
except ImportError:  # pragma: no cover - the dev extras install it
    jsonschema = None

CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "schema": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "detailed": {"type": "boolean"}},
        "required": ["city", "unit", "days", "detailed"], "additionalProperties": False},
}
TIME = {
    "name": "get_time",
    "description": "The current time in a timezone.",
    "schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
}
# Claude Code's tools (abridged descriptions, real schemas' shape).
CLAUDE_TOOLS = [
    {"name": "Bash", "description": "Executes a given bash command in a persistent shell session.",
     "schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"},
                                                 "run_in_background": {"type": "boolean"}},
                "required": ["command"], "additionalProperties": False}},
    {"name": "Read", "description": "Reads a file from the local filesystem.",
     "schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "limit": {"type": "number"}},
                "required": ["file_path"], "additionalProperties": False}},
    {"name": "Write", "description": "Writes a file to the local filesystem.",
     "schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"file_path": {"type": "string", "description": "The absolute path to the file"},
                               "content": {"type": "string", "description": "The content to write"}},
                "required": ["file_path", "content"], "additionalProperties": False}},
]
CODEX_TOOLS = [
    {"name": "shell", "description": "Runs a shell command and returns its output.",
     "schema": {"type": "object", "properties": {
         "command": {"type": "array", "items": {"type": "string"}}, "workdir": {"type": "string"},
         "timeout_ms": {"type": "number"}}, "required": ["command"], "additionalProperties": False}},
    {"name": "exec_command", "description": "Runs a command in a PTY.",
     "schema": {"type": "object", "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
                "required": ["cmd"]}},
]


def tools_block(tools: list[dict[str, Any]], choice: str | None = None) -> str:
    """The block the gateway writes (its exact wording may differ; only the structure matters)."""
    parts = ["# Tools", "", "You can call the following tools.", ""]
    for tool in tools:
        parts += [f"## {tool['name']}", tool["description"], "```json", json.dumps(tool["schema"]), "```", ""]
    parts.append('To call a tool, write <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
                 "</tool_call>, one block per call.")
    if choice == "required":
        parts.append("In this answer you MUST call one of the tools.")
    elif choice:
        parts.append(f"In this answer you MUST call the tool `{choice}`.")
    return "\n".join(parts)


def format_block(schema: dict[str, Any] | None) -> str:
    if schema is None:
        return "# Response format\n\nAnswer with a JSON object only."
    return f"# Response format\n\nAnswer with JSON matching this schema:\n```json\n{json.dumps(schema)}\n```"


def transcript(*turns: tuple[str, str]) -> str:
    return "\n\n".join(f"[{role}]\n{text}" for role, text in turns)


def validate(value: Any, schema: dict[str, Any]) -> None:
    if jsonschema is not None:
        jsonschema.validate(value, schema)
        return
    assert isinstance(value, dict) and set(schema.get("required", [])) <= set(value)  # pragma: no cover


def the_call(text: str) -> dict[str, Any]:
    calls = CALL_RE.findall(text)
    assert len(calls) == 1, text
    call = json.loads(calls[0])
    assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)
    return call


@pytest.fixture
def agent(sim):
    sim.config.agent_model = True
    return sim


# -- over HTTP ---------------------------------------------------------------------------------------------------


def test_tools_block_gives_one_schema_valid_call(client: httpx.Client, agent) -> None:
    message = transcript(("system", tools_block([TIME, WEATHER])), ("user", "What's the weather in Paris?"))
    lines = chat(client, message, modeId="fast")
    text = final_text(lines)
    assert text == CALL_RE.search(text).group(0)  # nothing but the call
    call = the_call(text)
    assert call == {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 1,
                                                         "detailed": True}}
    validate(call["arguments"], WEATHER["schema"])


def test_tool_result_gets_a_text_answer(client: httpx.Client, agent) -> None:
    message = transcript(
        ("system", tools_block([WEATHER])), ("user", "Weather in Paris?"),
        ("assistant", '<tool_call>{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'),
        ("tool result for call_1", '<tool_result id="call_1" name="get_weather">{"temp": 21, "sky": "clear"}'
                                   "</tool_result>"),
    )
    assert final_text(chat(client, message, modeId="fast")) == 'The tool returned: {"temp": 21, "sky": "clear"}'
    # A new user message after the result asks for a new call.
    follow_up = message + "\n\n[user]\nAnd what time is it in Tokyo?"
    again = json.loads(CALL_RE.search(agent_answer(follow_up.replace(
        tools_block([WEATHER]), tools_block([WEATHER, TIME])), Plan())).group(1))
    assert again == {"name": "get_time", "arguments": {"timezone": "Tokyo"}}


def test_response_format_gives_valid_json(client: httpx.Client, agent) -> None:
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 3}, "age": {"type": "integer", "minimum": 18},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["city", "zip"], "additionalProperties": False},
        "kind": {"enum": ["person", "robot"]}, "score": {"type": "number", "exclusiveMaximum": 1},
        "nickname": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
        "required": ["name", "age", "tags", "address", "kind", "score", "nickname"], "additionalProperties": False}
    message = transcript(("system", format_block(schema)), ("user", 'Describe "Alice"'))
    value = json.loads(final_text(chat(client, message, modeId="fast")))
    validate(value, schema)
    assert value["name"] == "Alice" and value["kind"] == "person"


def test_json_object_format_echoes(client: httpx.Client, agent) -> None:
    message = transcript(("system", format_block(None)), ("user", "Tell me a joke #prose"))
    text = final_text(chat(client, message, modeId="fast"))
    assert text.startswith("Here is the JSON you asked for:\n\n") and text.endswith("anything else.")
    assert json.loads(text.split("\n\n")[1]) == {"answer": "Tell me a joke"}


def test_fenced_and_prose_wrap_json(client: httpx.Client, agent) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    message = transcript(("system", format_block(schema)), ("user", "Say hi #fenced"))
    text = final_text(chat(client, message, modeId="fast"))
    assert text.startswith("```json\n") and text.endswith("\n```")
    validate(json.loads(text[len("```json\n"):-len("\n```")]), schema)
    both = final_text(chat(client, message + " #prose", modeId="fast"))
    assert re.fullmatch(r"Here is the JSON you asked for:\n\n```json\n\{.*\}\n```\n\nLet me know.*", both, re.S)


def test_ignore_format_answers_plainly(client: httpx.Client, agent) -> None:
    for block in (tools_block([WEATHER]), format_block(None)):
        message = transcript(("system", block), ("user", "Weather in Paris? #ignore_format"))
        assert final_text(chat(client, message, modeId="fast")) == plain_answer(message)


def test_no_instructions_leaves_the_answer_unchanged(client: httpx.Client, agent) -> None:
    for message in ("Hello there", transcript(("system", "Be brief."), ("user", "Hi"))):
        assert final_text(chat(client, message, modeId="fast")) == plain_answer(message)


def test_instructions_are_ignored_without_agent_mode(client: httpx.Client, sim) -> None:
    message = transcript(("system", tools_block([WEATHER])), ("user", "Weather in Paris?"))
    assert final_text(chat(client, message, modeId="fast")) == plain_answer(message)


def test_scripted_reply_wins_and_markers_apply(client: httpx.Client, agent) -> None:
    message = transcript(("system", tools_block([WEATHER])), ("user", "Weather in Paris?"))
    agent.state.script_replies(TOKEN, ["I'd rather not."])
    assert final_text(chat(client, message, modeId="fast")) == "I'd rather not."
    lines = chat(client, message + " #error", modeId="fast")
    assert lines[-1]["result"]["response"]["error"]["severity"] == "STREAM_ERROR_SEVERITY_FATAL"
    assert final_text(lines).startswith("<tool_call>")  # half a call, then the stream breaks


def test_expert_mode_thinks_then_calls(client: httpx.Client, agent) -> None:
    message = transcript(("system", tools_block([WEATHER])), ("user", "Weather in Oslo?"))
    lines = chat(client, message, modeId="expert")
    assert any(line["result"]["response"].get("isThinking") for line in lines[1:-1] if "response" in line["result"])
    assert the_call(final_text(lines))["arguments"]["city"] == "Oslo"


async def test_mgw_tool_call(agent, account) -> None:
    message = transcript(("system", tools_block([WEATHER], choice="get_weather")), ("user", "hello"))
    async with websockets.connect(f"{agent.ws_url}?uid={account.user_id}",
                                  additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "fast")
        events = await ask(ws, message)
    text = next(e["text"] for e in events if e["type"] == "response.output_text.done")
    call = the_call(text)
    assert call["name"] == "get_weather"
    validate(call["arguments"], WEATHER["schema"])


# -- choosing a tool and its arguments (in process) --------------------------------------------------------------


@pytest.mark.parametrize(("choice", "request_text", "expected"), [
    (None, "What time is it in Tokyo?", "get_time"),  # name shares "time"
    (None, "Is it raining in Rome?", "get_weather"),  # no shared word: the first tool
    (None, "What's the current hour in a timezone?", "get_time"),  # description shares the most words
    ("required", "hello", "get_weather"),
    ("get_time", "Weather in Paris?", "get_time"),  # forced wins over the words
])
def test_tool_choice(choice: str | None, request_text: str, expected: str) -> None:
    tools = [WEATHER, TIME]
    message = transcript(("system", tools_block(tools, choice)), ("user", request_text))
    found = parse_instructions(message)
    assert [t.name for t in found.tools] == ["get_weather", "get_time"]
    assert found.required is (choice is not None) and found.forced == (choice if choice != "required" else None)
    call = the_call(agent_answer(message, Plan()))
    assert call["name"] == expected
    validate(call["arguments"], next(t for t in tools if t["name"] == expected)["schema"])


def test_claude_code_write_tool() -> None:
    message = transcript(("system", "You are Claude Code."), ("system", tools_block(CLAUDE_TOOLS)),
                         ("user", 'Create the file /tmp/demo/hello.txt with content "Hello, world!"'))
    call = the_call(agent_answer(message, Plan()))
    assert call == {"name": "Write", "arguments": {"file_path": "/tmp/demo/hello.txt", "content": "Hello, world!"}}
    validate(call["arguments"], CLAUDE_TOOLS[2]["schema"])
    unquoted = message.replace('with content "Hello, world!"', "containing hi there")
    assert the_call(agent_answer(unquoted, Plan()))["arguments"]["content"] == "hi there"
    reminded = message.replace("[user]\n", "[user]\n<system-reminder>Use \"/etc/x.conf\" with care.</system-reminder>\n")
    assert the_call(agent_answer(reminded, Plan())) == call  # client context around the request is not the request
    bash = the_call(agent_answer(message.replace("Create the file", "Run `ls -la` and then write"), Plan()))
    assert bash == {"name": "Bash", "arguments": {"command": "ls -la"}}


def test_markdown_inside_descriptions_does_not_end_the_block() -> None:
    bash = dict(CLAUDE_TOOLS[0], description="Runs commands.\n\n# Committing changes with git\n\n## When to use\n"
                                              "Only when asked.")
    message = transcript(("system", tools_block([bash, *CLAUDE_TOOLS[1:]]) + "\n\n# Tone and style\nBe brief."),
                         ("user", "Write notes.md containing done"))
    found = parse_instructions(message)
    assert [t.name for t in found.tools] == ["Bash", "Read", "Write"]
    assert "When to use" in found.tools[0].description and found.tools[0].schema == CLAUDE_TOOLS[0]["schema"]
    assert the_call(agent_answer(message, Plan())) == {"name": "Write", "arguments": {"file_path": "notes.md",
                                                                                       "content": "done"}}


def test_codex_shell_tool() -> None:
    ask_for = transcript(("developer", tools_block(CODEX_TOOLS)), ("user", "Run `echo hi > out.txt` please"))
    call = the_call(agent_answer(ask_for, Plan()))
    assert call == {"name": "shell", "arguments": {"command": ["bash", "-lc", "echo hi > out.txt"]}}
    forced = ask_for.replace("one block per call.", "one block per call.\nYou MUST call the tool `exec_command`.")
    assert the_call(agent_answer(forced, Plan())) == {"name": "exec_command",
                                                       "arguments": {"cmd": "echo hi > out.txt"}}
    plain = transcript(("developer", tools_block(CODEX_TOOLS)), ("user", "run something"))
    assert the_call(agent_answer(plain, Plan()))["arguments"] == {"command": ["bash", "-lc", "echo hello"]}


def test_prose_before_a_call_and_single_message_layout() -> None:
    message = tools_block([WEATHER]) + "\n\n[user]\nWeather in Paris? #prose"
    text = agent_answer(message, Plan(prose=True))
    assert text.startswith("I'll use the get_weather tool.\n\n<tool_call>")
    unlabelled = tools_block([WEATHER]) + "\n\nWeather in Lima?"  # no role labels at all
    assert the_call(agent_answer(unlabelled, Plan()))["arguments"]["city"] == "Lima"
    after = "Weather in Quito?\n\n" + tools_block([WEATHER])  # the block after the request
    assert the_call(agent_answer(after, Plan()))["arguments"]["city"] == "Quito"


def test_several_results_and_json_after_a_result() -> None:
    results = ('<tool_result id="call_1" name="a">one</tool_result>\n'
               '<tool_result id="call_2" name="b">two</tool_result>')
    message = transcript(("system", tools_block([WEATHER])), ("user", "go"), ("assistant", "<tool_call>{}</tool_call>"),
                         ("user", results))  # Anthropic puts results in a user turn
    assert agent_answer(message, Plan()) == "The tool returned: one; two"
    with_format = message.replace("[system]\n", "[system]\n" + format_block(None) + "\n\n")
    assert json.loads(agent_answer(with_format, Plan())) == {"answer": "The tool returned: one; two"}


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/item"}}, "required": ["a"],
     "$defs": {"item": {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 5}},
                        "required": ["n"]}}},
    {"type": "object", "properties": {"child": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},  # recursive
     "required": ["child"]},
    {"allOf": [{"type": "object", "properties": {"x": {"type": "string", "format": "date"}}, "required": ["x"]},
               {"properties": {"y": {"type": ["null", "number"], "maximum": 0.5}}, "required": ["y"]}]},
    {"type": "object", "properties": {"pair": {"type": "array", "prefixItems": [{"type": "string"},
                                                                                {"type": "integer"}]},
                                      "ids": {"type": "array", "items": {"type": "string"}, "minItems": 2,
                                              "uniqueItems": True},
                                      "email": {"type": "string", "format": "email"},
                                      "short": {"type": "string", "maxLength": 2}, "c": {"const": 3}}},
    {"type": "object", "required": ["undeclared"], "additionalProperties": {"type": "integer"}},
])
def test_fill_is_schema_valid_and_deterministic(schema: dict[str, Any]) -> None:
    request = Request('Fill it for "Ada" please')
    value = fill(schema, request)
    validate(value, schema)
    assert fill(schema, Request('Fill it for "Ada" please')) == value
