"""Structured output: format declaration, instructions, JSON extraction from real-looking replies, validation."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidRequest
from core.structured import (
    JSON_MARKER,
    MAX_ECHO_CHARS,
    MAX_PROBLEMS,
    OutputFormat,
    check,
    extract_json,
    instructions,
    repair_prompt,
    validate,
)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
FMT = OutputFormat("json_schema", "person", PERSON, strict=True)
VALUE = {"name": "Ada", "age": 36}


def test_declaration_errors() -> None:
    with pytest.raises(InvalidRequest, match="needs a schema"):
        OutputFormat("json_schema")
    with pytest.raises(InvalidRequest, match="not a valid JSON Schema"):
        OutputFormat("json_schema", "x", {"type": "nope"})
    with pytest.raises(InvalidRequest, match="unsupported \\$ref") as caught:
        OutputFormat("json_schema", "x", {"$ref": "other.json"})
    assert caught.value.param == "response_format"
    with pytest.raises(InvalidRequest, match="not text, json_object or json_schema"):
        OutputFormat("yaml")  # type: ignore[arg-type]


def test_from_openai() -> None:
    fmt = OutputFormat.from_openai({"type": "json_schema", "json_schema": {
        "name": "person", "schema": PERSON, "strict": True, "description": "A person."}})
    assert (fmt.kind, fmt.name, fmt.strict, fmt.description, fmt.root) == (
        "json_schema", "person", True, "A person.", "object")
    assert OutputFormat.from_openai(None).kind == "text"
    assert OutputFormat.from_openai({"type": "json_object"}).root == "object"


def test_instructions() -> None:
    assert instructions(OutputFormat()) == ""
    text = instructions(FMT)
    assert text.startswith(JSON_MARKER + "\n")
    assert "one JSON object that matches this JSON Schema (named `person`)" in text
    assert json.dumps(PERSON, separators=(",", ":")) in text
    assert "no Markdown code fences" in text
    plain = instructions(OutputFormat("json_object"))
    assert plain.startswith(JSON_MARKER) and "one JSON object, and nothing else" in plain
    array = instructions(OutputFormat("json_schema", None, {"type": "array"}))
    assert "one JSON array" in array


def test_instructions_show_refs_inlined() -> None:
    fmt = OutputFormat("json_schema", "x", {"$defs": {"A": {"type": "integer"}}, "type": "object",
                                            "properties": {"a": {"$ref": "#/$defs/A"}}})
    assert '{"type":"object","properties":{"a":{"type":"integer"}}}' in instructions(fmt)


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "Ada", "age": 36}',
        '  {"name": "Ada", "age": 36}\n',
        '```json\n{"name": "Ada", "age": 36}\n```',
        'Here you go:\n\n```\n{"name": "Ada", "age": 36}\n```\n\nAnything else?',
        'Sure! {"name": "Ada", "age": 36} is the answer.',
        'As noted [1], the record is: {"name": "Ada", "age": 36}',  # a bracketed citation first: skipped
        'Result: {"name": "Ada", "age": 36,}',  # trailing comma
        "{'name': 'Ada', 'age': 36}",
        'Here: {"name": "Ada", "age": 36',  # the closing brace forgotten
        '~~~json\n{“name”: “Ada”, “age”: 36}\n~~~',
    ],
)
def test_extraction(reply: str) -> None:
    assert extract_json(reply, root="object") == VALUE
    assert check(FMT, reply) == (VALUE, [])


def test_extraction_minds_strings_and_escapes() -> None:
    reply = 'Note {this} first. {"name": "a } \\" {", "age": 1} trailing {junk}'
    assert extract_json(reply, root="object") == {"name": 'a } " {', "age": 1}


def test_extraction_without_root() -> None:
    assert extract_json("[1, 2] and {\"a\": 1}") == [1, 2]
    assert extract_json("42") == 42
    assert extract_json('"text"') == "text"
    assert extract_json("no json here") is None
    assert extract_json("") is None
    assert extract_json("null") is None


def test_extraction_is_bounded() -> None:
    assert extract_json("[" * 100_000) is None
    assert extract_json("{" * 5_000 + "}" * 5_000) is None
    junk = "{x} " * 1_000 + '{"name": "Ada", "age": 36}'
    assert extract_json(junk, root="object") is None  # past MAX_CANDIDATES starts: not searched further


def test_validation_problems() -> None:
    assert validate(FMT, VALUE) == []
    problems = validate(FMT, {"name": 1, "age": -1, "extra": True, "tags": ["a", 2]})
    assert problems == [
        "at $: Additional properties are not allowed ('extra' was unexpected)",
        "at $.age: -1 is less than the minimum of 0",
        "at $.name: 1 is not of type 'string'",
        "at $.tags[1]: 2 is not of type 'string'",
    ]
    many = OutputFormat("json_schema", None, {"type": "array", "items": {"type": "string"}})
    assert len(validate(many, list(range(50)))) == MAX_PROBLEMS
    assert validate(OutputFormat("json_object"), [1]) == ["the reply is not a JSON object (got an array)"]
    assert validate(OutputFormat("json_object"), {}) == []
    assert validate(OutputFormat(), "anything") == []


def test_check_reports_missing_json() -> None:
    assert check(FMT, "I cannot do that.") == (None, ["the reply holds no JSON object"])
    assert check(OutputFormat(), "text") == (None, [])
    value, problems = check(FMT, 'Here: {"name": "Ada"}')
    assert value == {"name": "Ada"} and problems == ["at $: 'age' is a required property"]


def test_repair_prompt() -> None:
    prompt = repair_prompt(FMT, 'Here: {"name": "Ada"} </previous_reply>', ["at $: 'age' is a required property"])
    assert prompt.startswith(JSON_MARKER + "\n")
    assert "- at $: 'age' is a required property" in prompt
    assert '<previous_reply>\nHere: {"name": "Ada"} &lt;/previous_reply>\n</previous_reply>' in prompt
    assert json.dumps(PERSON, separators=(",", ":")) in prompt
    assert prompt.endswith("Reply again now with only the corrected JSON.")
    assert prompt.count(JSON_MARKER) == 1
    long = repair_prompt(FMT, "x" * (MAX_ECHO_CHARS * 3), [])
    assert "[... truncated]" in long and len(long) < MAX_ECHO_CHARS + 2_000
    assert "- it could not be read as required" in long
