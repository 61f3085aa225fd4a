"""Tool declarations, schema normalisation, instructions, history rendering, JSON repair and argument checks."""

from __future__ import annotations

import json

import pytest

from core import tools as tools_module
from core.errors import InvalidRequest
from core.prompt import ToolCall, Turn
from core.sieve import ToolSieve
from core.tools import (
    CALL_CLOSE,
    CALL_OPEN,
    MAX_JSON_DEPTH,
    MAX_TOOLS,
    MAX_TOTAL_SCHEMA_NODES,
    NOT_JSON,
    TOOLS_MARKER,
    ToolCallOut,
    ToolChoice,
    ToolSpec,
    declare_tools,
    instructions,
    normalise_schema,
    parse_json,
    prepare_tools,
    read_call,
    render_call,
    render_history,
    render_result,
    validate_arguments,
)

WEATHER = ToolSpec("get_weather", "Current weather for a city.", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
    "required": ["city"],
})


# -- declarations -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "quote\"", "x" * 129, None, "new\nline"])
def test_bad_tool_names(name) -> None:
    with pytest.raises(InvalidRequest, match="tool name"):
        ToolSpec(name, "", {})


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ([1, 2], "must be a JSON Schema object, not an array"),
        ("object", "not a string"),
        (False, "not a boolean"),
        ({"type": "string"}, "must describe a JSON object, not 'string'"),
        ({"type": ["string", "null"]}, "must describe a JSON object"),
        ({"type": "object", "properties": {"a": {"type": 5}}}, "not a valid JSON Schema at properties/a/type"),
        ({"$ref": "https://example.com/s.json"}, "unsupported \\$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points at nothing"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "no alternative"),
    ],
)
def test_unusable_schemas_name_the_tool(parameters, message) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        ToolSpec("my_tool", "", parameters)
    assert "'my_tool'" in caught.value.message


def test_schema_size_bounds() -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6000)}}
    with pytest.raises(InvalidRequest, match="too large"):
        ToolSpec("big", "", wide)
    deep: dict = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(InvalidRequest, match="nested deeper"):
        ToolSpec("deep", "", deep)


def test_ref_expansion_bomb_is_refused() -> None:
    defs = {"d0": {"type": "string"}}
    for i in range(1, 30):
        defs[f"d{i}"] = {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i - 1}"},
                                                          "b": {"$ref": f"#/$defs/d{i - 1}"}}}
    with pytest.raises(InvalidRequest, match="expands past"):
        ToolSpec("bomb", "", {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d29"}}})


def test_prepare_tools() -> None:
    assert prepare_tools([WEATHER], ToolChoice.function("get_weather")) == [WEATHER]
    with pytest.raises(InvalidRequest, match="too many tools"):
        prepare_tools([ToolSpec(f"t{i}") for i in range(MAX_TOOLS + 1)])
    with pytest.raises(InvalidRequest, match="declared twice") as caught:
        prepare_tools([WEATHER, ToolSpec("x"), WEATHER])
    assert caught.value.param == "tools[2]"
    with pytest.raises(InvalidRequest, match="not among the tools"):
        prepare_tools([WEATHER], ToolChoice.function("other"))
    with pytest.raises(InvalidRequest, match="needs at least one tool"):
        prepare_tools([], ToolChoice("required"))
    with pytest.raises(InvalidRequest):
        ToolChoice("sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        ToolChoice("function")


def test_declare_tools() -> None:
    specs = declare_tools([("get_weather", None, WEATHER.parameters), ("ping", "Ping.", None)],
                          ToolChoice("required"))
    assert [(s.name, s.description) for s in specs] == [("get_weather", ""), ("ping", "Ping.")]
    with pytest.raises(InvalidRequest, match="must describe a JSON object") as caught:
        declare_tools([("ok", "", {}), ("bad", "", {"type": "string"})])
    assert caught.value.param == "tools[1]"
    with pytest.raises(InvalidRequest, match="declared twice"):
        declare_tools([("a", "", {}), ("a", "", {})])
    with pytest.raises(InvalidRequest, match="too many tools"):
        declare_tools([(f"t{i}", "", {}) for i in range(MAX_TOOLS + 1)])
    chunk = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(1_500)}}  # 3003 values
    fits = MAX_TOTAL_SCHEMA_NODES // 3_003
    assert len(declare_tools([(f"t{i}", "", chunk) for i in range(fits)])) == fits
    with pytest.raises(InvalidRequest, match="too large together") as caught:
        declare_tools([(f"t{i}", "", chunk) for i in range(fits + 1)])
    assert caught.value.param == f"tools[{fits}]"


def test_shown_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools_module, "MAX_SHOWN_CHARS", 500)
    specs = [ToolSpec(f"t{i}", "x" * 60, WEATHER.parameters) for i in range(4)]
    with pytest.raises(InvalidRequest, match="too large to send"):
        prepare_tools(specs)
    assert prepare_tools(specs[:2]) == specs[:2]


def test_checked_schemas_are_cached() -> None:
    schema = {"type": "object", "properties": {"cached": {"type": "string"}}}
    first, second = ToolSpec("a", "", schema), ToolSpec("b", "", json.loads(json.dumps(schema)))
    assert first.schema is second.schema and first._validator is second._validator
    with pytest.raises(InvalidRequest, match="'c'"):  # errors are not cached: each names its own tool
        ToolSpec("c", "", {"type": "string"})
    with pytest.raises(InvalidRequest, match="'d'"):
        ToolSpec("d", "", {"type": "string"})


METASCHEMA_SAMPLES = [
    {}, {"type": "object"}, {"type": ["string", "null"]}, {"type": 5}, {"type": "strin"}, {"required": "a"},
    {"required": ["a", "a"]}, {"items": [{}]}, {"prefixItems": [{"type": "string"}], "items": False},
    {"minimum": "1"}, {"maxLength": -1}, {"$defs": {"a": 1}}, {"$defs": {"a": {"$ref": "#/$defs/a"}}},
    {"additionalProperties": 3}, {"enum": []}, {"pattern": "("}, {"pattern": "^a+$"},
    {"properties": {"a": {"properties": {"b": {"type": "nope"}}}}}, {"anyOf": []}, {"anyOf": [{}, True]},
    {"dependentRequired": {"a": ["b"]}}, {"dependencies": {"a": ["b"]}}, {"$ref": 5}, {"unevaluatedProperties": 1},
    {"contentMediaType": 3}, {"format": "date", "deprecated": "yes"}, {"if": {}, "then": 1},
]


@pytest.mark.parametrize("schema", METASCHEMA_SAMPLES)
def test_fast_metaschema_check_agrees_with_jsonschema(schema) -> None:
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
        official = None
    except SchemaError as error:
        official = error.message
    assert tools_module._meta_2020_12() is not None
    ours = next(iter(tools_module._meta_2020_12().iter_errors(schema)), None)
    assert (ours is None) == (official is None), (ours, official)


# -- normalisation ----------------------------------------------------------------------------------------------


def test_missing_and_empty_schemas_become_objects() -> None:
    for parameters in (None, {}, True):
        assert normalise_schema(parameters) == {"type": "object", "properties": {}}
    assert normalise_schema({"properties": {"a": {"type": "string"}}})["type"] == "object"


def test_nullable_root() -> None:
    shown = normalise_schema({"type": ["object", "null"], "nullable": True, "properties": {"a": {}}})
    assert shown == {"type": "object", "properties": {"a": {}}}


def test_refs_inlined_and_defs_dropped() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"City": {"type": "string", "description": "a city"}},
        "properties": {"from": {"$ref": "#/$defs/City"}, "to": {"$ref": "#/$defs/City", "description": "dest"}},
    }
    shown = normalise_schema(schema)
    assert shown == {"type": "object", "properties": {
        "from": {"type": "string", "description": "a city"},
        "to": {"type": "string", "description": "dest"},
    }}


def test_draft7_definitions_and_keyword_like_names_and_data() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"N": {"type": "integer"}},
        "properties": {
            "$ref": {"type": "string"},  # a property called "$ref": a name, not a keyword
            "definitions": {"$ref": "#/definitions/N"},
            "opts": {"type": "object", "default": {"$ref": "#/definitions/N"}},  # data, never rewritten
        },
    }
    shown = normalise_schema(schema)
    assert shown["properties"] == {
        "$ref": {"type": "string"},
        "definitions": {"type": "integer"},
        "opts": {"type": "object", "default": {"$ref": "#/definitions/N"}},
    }


def test_recursive_ref_is_cut_with_a_note() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {
            "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    }
    shown = normalise_schema(schema)
    node = shown["properties"]["root"]
    assert node["title"] == "Node"
    assert node["properties"]["children"]["items"] == {
        "type": "object", "description": "same schema as the enclosing `Node` above"}
    assert "$defs" not in json.dumps(shown)
    tool = ToolSpec("tree", "", schema)  # validation uses the original: the recursion is enforced
    deep_ok = {"root": {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}}
    assert validate_arguments(tool, json.dumps(deep_ok)) == deep_ok
    assert validate_arguments(tool, json.dumps({"root": {"children": [{"value": "x"}]}})) is None


def test_root_ref_and_deep_ref_chains() -> None:
    chain = {f"d{i}": {"type": "object", "properties": {"next": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(12)}
    chain["d12"] = {"type": "string"}
    shown = normalise_schema({"$defs": chain, "$ref": "#/$defs/d0"})
    text = json.dumps(shown)
    assert shown["type"] == "object" and "same schema as the `d" in text and "$ref" not in text


def test_anyof_root_is_merged_and_described() -> None:
    shown = normalise_schema({"anyOf": [
        {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        {"type": "object", "title": "by name", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        {"type": "null"},
    ]})
    assert shown["type"] == "object"
    assert set(shown["properties"]) == {"id", "name"}
    assert "required" not in shown
    assert "(1) id; (2) by name: name" in shown["description"]
    tool = ToolSpec("lookup", "", {"oneOf": [{"type": "object", "properties": {"id": {"type": "integer"}},
                                                "required": ["id"]}]})
    assert tool.schema == {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}


def test_allof_root_is_merged() -> None:
    shown = normalise_schema({"allOf": [
        {"properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]},
    ]})
    assert shown == {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                     "required": ["a", "b"]}


# -- instructions and history -----------------------------------------------------------------------------------


def test_instructions_shape() -> None:
    text = instructions([WEATHER, ToolSpec("ping")], ToolChoice("auto"))
    assert text.startswith(TOOLS_MARKER + "\n")
    assert "### get_weather\nCurrent weather for a city.\nParameters (JSON Schema): " in text
    assert json.dumps(WEATHER.schema, separators=(",", ":")) in text
    assert f'{CALL_OPEN}{{"name": "TOOL_NAME", "arguments": {{"ARGUMENT": "VALUE"}}}}{CALL_CLOSE}' in text
    assert "one <tool_call> line per call" in text and "<tool_result" in text and "stop" in text
    assert "otherwise reply normally" in text
    assert "MUST call at least one tool" in instructions([WEATHER], ToolChoice("required"))
    forced = instructions([WEATHER], ToolChoice.function("get_weather"))
    assert "MUST call the tool `get_weather`" in forced
    assert instructions([WEATHER]) == text.replace("\n\n### ping\nParameters (JSON Schema): "
                                                   '{"type":"object","properties":{}}', "")


def test_instructions_for_none_list_names_only() -> None:
    text = instructions([WEATHER, ToolSpec("ping")], ToolChoice("none"))
    assert text.startswith(TOOLS_MARKER)
    assert "- get_weather: Current weather for a city.\n- ping\n" in text
    assert "JSON Schema" not in text and "do not write <tool_call>" in text and "TOOL_NAME" not in text


def test_render_call_round_trips_through_the_sieve() -> None:
    rendered = render_call(ToolCall(id="call_1", name="get_weather", arguments='{"city": "a </tool_call> b"}'))
    assert rendered == (CALL_OPEN + '{"id": "call_1", "name": "get_weather", "arguments": '
                        '{"city": "a <\\/tool_call> b"}}' + CALL_CLOSE)
    sieve = ToolSieve([WEATHER])
    pieces = sieve.feed(rendered) + sieve.finish()
    assert len(pieces) == 1 and sieve.calls[0].arguments == {"city": "a </tool_call> b"}
    assert sieve.calls[0].id != "call_1"  # a copied id is ignored: every call found gets a fresh one
    out = ToolCallOut(id="call_2", name="ping", arguments={})
    assert render_call(out) == CALL_OPEN + '{"id": "call_2", "name": "ping", "arguments": {}}' + CALL_CLOSE
    broken = render_call(ToolCall(id="c", name="x", arguments="{not json"))
    assert '"arguments": "{not json"' in broken
    assert '"arguments": {}' in render_call(ToolCall(id="c", name="x", arguments=""))


def test_render_result_escapes() -> None:
    text = render_result('a"b', "get_weather", "\nline </tool_result> and <tool_call>x</TOOL_CALL>\n", is_error=True)
    assert text == ('<tool_result id="a&quot;b" name="get_weather" error="true">\n'
                    "line &lt;/tool_result> and &lt;tool_call>x&lt;/TOOL_CALL>\n</tool_result>")
    assert text.count("</tool_result>") == 1
    assert render_result("call_1", None, "ok") == '<tool_result id="call_1">\nok\n</tool_result>'


def test_render_history() -> None:
    turns = [
        Turn("system", "Be brief."),
        Turn("user", "Weather in Paris and Rome?"),
        Turn("assistant", "Checking.", tool_calls=[
            ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_2", "get_weather", '{"city":"Rome"}')]),
        Turn("tool", "21 C", tool_call_id="call_1"),
        Turn("tool", "25\x00 C", tool_call_id="call_2"),
        Turn("assistant", "Paris 21, Rome 25."),
        Turn("user", "Thanks", name="bob"),
    ]
    assert render_history(turns) == "\n\n".join([
        "[system]\nBe brief.",
        "[user]\nWeather in Paris and Rome?",
        "[assistant]\nChecking.\n"
        '<tool_call>{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"id": "call_2", "name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>',
        '[tool results]\n<tool_result id="call_1" name="get_weather">\n21 C\n</tool_result>\n'
        '<tool_result id="call_2" name="get_weather">\n25 C\n</tool_result>',
        "[assistant]\nParis 21, Rome 25.",
        "[user bob]\nThanks",
    ])


# -- JSON repair ------------------------------------------------------------------------------------------------

OBJ = {"city": "Paris", "n": [1, 2.5, True, None]}


@pytest.mark.parametrize(
    "text",
    [
        '{"city": "Paris", "n": [1, 2.5, true, null]}',
        '```json\n{"city": "Paris", "n": [1, 2.5, true, null]}\n```',
        '  ~~~\n{"city": "Paris", "n": [1, 2.5, true, null]}\n~~~  ',
        '{"city": "Paris", "n": [1, 2.5, true, null,],}',
        "{“city”: “Paris”, “n”: [1, 2.5, true, null]}",
        "{'city': 'Paris', 'n': [1, 2.5, true, null]}",
        '{"city": "Paris", "n": [1, 2.5, true, null]',
        '{"city": "Paris", "n": [1, 2.5, true, null',
        "```\n{'city': “Paris”, 'n': [1, 2.5, true, null,]\n```",
    ],
)
def test_repairs(text: str) -> None:
    assert parse_json(text) == OBJ


@pytest.mark.parametrize(
    "text",
    [
        '{"city": Paris}',  # unquoted value
        '{city: "Paris"}',  # unquoted key
        '{"city": "Paris" // comment\n}',
        '{"city": "Par',  # cut inside a string
        '{"a": {"b": {"c": 1',  # three closers missing
        '{"a": 1}}',  # one closer too many
        '{"a": NaN}',
        "{'it's': 1}",  # an apostrophe inside single quotes: ambiguous
        '{"a": 1} and more',
        "",
    ],
)
def test_not_repaired(text: str) -> None:
    assert parse_json(text) is NOT_JSON


def test_strict_mode_and_control_characters() -> None:
    assert parse_json("{'a': 1}", repair=False) is NOT_JSON
    assert parse_json('{"code": "line1\nline2"}', repair=False) == {"code": "line1\nline2"}
    assert parse_json('{"s": "\\u00e9\\n"}') == {"s": "é\n"}
    assert parse_json("{'s': 'it\\'s \\u00e9'}") == {"s": "it's é"}
    assert parse_json("{“s”: “a \"quoted\" \\ word”}") == {"s": 'a "quoted" \\ word'}


def test_surrogate_escapes() -> None:
    assert parse_json('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}
    assert parse_json("{'a': '\\ud83d\\ude00'}") == {"a": "\U0001f600"}
    assert parse_json('{"a": "\\ud83d"}') is NOT_JSON  # a lone surrogate could not be sent as UTF-8
    assert parse_json("{'a': '\\udc00 x'}") is NOT_JSON


def test_ref_chains_are_bounded() -> None:
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(1_500)}
    defs["d1500"] = {"type": "object"}
    with pytest.raises(InvalidRequest, match="nested deeper than"):
        ToolSpec("chain", "", {"$defs": defs, "$ref": "#/$defs/d0"})


def test_depth_bound_never_recurses() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(ok) is not NOT_JSON
    for depth in (MAX_JSON_DEPTH + 1, 5_000, 200_000):
        assert parse_json("[" * depth + "]" * depth) is NOT_JSON
        assert parse_json("{'a': " * depth + "1" + "}" * depth) is NOT_JSON  # the lenient reader is bounded too
    assert parse_json('["' + "[" * 500 + '"]') == ["[" * 500]  # brackets inside strings do not count


def test_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools_module, "MAX_ARGUMENT_CHARS", 50)
    assert parse_json('{"a": "' + "x" * 60 + '"}') is NOT_JSON


# -- arguments --------------------------------------------------------------------------------------------------


def test_validate_arguments() -> None:
    assert validate_arguments(WEATHER, '{"city": "Paris", "unit": "C"}') == {"city": "Paris", "unit": "C"}
    assert validate_arguments(WEATHER, "{'city': 'Paris',}") == {"city": "Paris"}
    assert validate_arguments(WEATHER, '{"city": "Paris", "unit": "K"}') is None
    assert validate_arguments(WEATHER, '{"unit": "C"}') is None
    assert validate_arguments(WEATHER, '["Paris"]') is None
    assert validate_arguments(WEATHER, "not json") is None
    assert validate_arguments(ToolSpec("ping"), "") == {}
    assert validate_arguments(WEATHER, "[" * 100_000) is None


def test_validation_honours_the_schema_draft() -> None:
    draft4 = ToolSpec("d4", "", {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                                 "properties": {"n": {"type": "number", "maximum": 5, "exclusiveMaximum": True}}})
    assert validate_arguments(draft4, '{"n": 4}') == {"n": 4}
    assert validate_arguments(draft4, '{"n": 5}') is None


def test_read_call() -> None:
    tools = {"get_weather": WEATHER, "ping": ToolSpec("ping")}
    found = read_call(' {"name": "get_weather", "arguments": {"city": "Paris"}} ', tools, raw="R")
    assert isinstance(found, ToolCallOut) and found.raw == "R" and found.arguments == {"city": "Paris"}
    assert found.id.startswith("call_") and len(found.id) == 29
    assert isinstance(read_call('{"name": "ping"}', tools), ToolCallOut)
    assert isinstance(read_call('{"name": "ping", "parameters": {}}', tools), ToolCallOut)
    assert "undeclared" in read_call('{"name": "pong"}', tools)
    assert "not a JSON object" in read_call("[1]", tools)
    assert "not a JSON object" in read_call('{"name": "ping", "arguments": "nope"}', tools)
    assert "do not match" in read_call('{"name": "get_weather", "arguments": {}}', tools)
