"""ReplyShaper: stop sequences across every chunking, the token limit, calls in content and reasoning."""

from __future__ import annotations

import json
from itertools import combinations, pairwise

import pytest

from core.answer import ContentDelta, ReasoningDelta
from core.reply import Finish, ReplyShaper, ReplySpec, TextDelta, ToolCallEvent
from core.structured import OutputFormat
from core.tools import ToolChoice, declare_tools

TOOLS = declare_tools([("get_weather", "weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]})])


def chunkings(text: str, pieces: int = 3):
    for cuts in combinations(range(1, len(text)), pieces - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in pairwise(bounds)]


def run(spec: ReplySpec, parts: list[str], *, reasoning: bool = False) -> tuple[list, Finish, ReplyShaper]:
    shaper = ReplyShaper(spec)
    kind = ReasoningDelta if reasoning else ContentDelta
    events = []
    for part in parts:
        events += shaper.feed([kind(part)])
        if shaper.done:
            break
    tail, finish = shaper.finish()
    return events + tail, finish, shaper


@pytest.mark.parametrize("text,stops,expected,hit", [
    ("hello STOP world", ("STOP",), "hello ", "STOP"),
    ("aaab", ("aab",), "a", "aab"),
    ("no match here", ("zzz",), "no match here", None),
    ("two stops: B then A", ("A", "B"), "two stops: ", "B"),
    ("ends with ST", ("STOP",), "ends with ST", None),
])
def test_stop_sequences_cut_at_the_first_match_on_every_chunking(text, stops, expected, hit) -> None:
    for parts in [[text], *chunkings(text, 2), *chunkings(text, 3)]:
        events, finish, shaper = run(ReplySpec(stop=stops), parts)
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == expected, parts
        assert finish == Finish("stop", hit) and shaper.done == (hit is not None)


def test_token_limit_cuts_with_length() -> None:
    events, finish, _ = run(ReplySpec(max_tokens=3), ["abcd", "efgh", "ijkl", "mnop"])
    assert "".join(e.text for e in events) == "abcdefghijkl" and finish.reason == "length"
    events, finish, _ = run(ReplySpec(max_tokens=2), ["你好世界"])  # one token per CJK character
    assert "".join(e.text for e in events) == "你好" and finish.reason == "length"
    events, finish, _ = run(ReplySpec(max_tokens=100), ["short"])
    assert finish.reason == "stop"


def test_calls_in_content_and_reasoning_become_events() -> None:
    line = "<tool_call>" + json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}) + "</tool_call>"
    for parts in [[line], *chunkings(line, 2)]:
        events, finish, shaper = run(ReplySpec(tools=TOOLS), ["Checking.\n", *parts, "\n"])
        calls = [e for e in events if isinstance(e, ToolCallEvent)]
        assert [c.call.arguments for c in calls] == [{"city": "Oslo"}] and finish.reason == "tool_calls"
        assert shaper.content == "Checking.\n"  # trailing whitespace after the call is not content
    events, finish, _ = run(ReplySpec(tools=TOOLS), ["thinking... ", line, " and again ", line], reasoning=True)
    assert len([e for e in events if isinstance(e, ToolCallEvent)]) == 1 and finish.reason == "tool_calls"


def test_tool_choice_none_and_forced() -> None:
    line = "<tool_call>" + json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}) + "</tool_call>"
    events, finish, _ = run(ReplySpec(tools=TOOLS, choice=ToolChoice("none")), [line])
    assert events == [TextDelta(line)] and finish.reason == "stop"
    events, finish, shaper = run(ReplySpec(tools=TOOLS, choice=ToolChoice("required")), ["no ", "call"])
    assert finish.reason == "stop" and shaper.choice_problem()
    # held back for a second try (AnswerRun's repair turn); given as the answer only when there is none
    assert events == [] and shaper.call_missing and shaper.withheld_text == "no call"
    assert shaper.release_held() == [TextDelta("no call")] and not shaper.call_missing
    assert shaper.content == "no call"


def test_json_answer_without_its_required_call_is_still_quotable() -> None:
    spec = ReplySpec(tools=TOOLS, choice=ToolChoice("required"), output=OutputFormat(kind="json_object"))
    _, finish, shaper = run(spec, ['{"a": ', '1}'])
    assert shaper.call_missing and finish.reason == "stop"
    assert shaper.content + shaper.withheld_text == '{"a": 1}'  # what the reminder turn quotes


@pytest.mark.parametrize("choice", [ToolChoice("required"), ToolChoice("function", "get_weather")])
def test_required_call_shows_the_text_before_it_in_order(choice: ToolChoice) -> None:
    line = "<tool_call>" + json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}) + "</tool_call>"
    events, finish, shaper = run(ReplySpec(tools=TOOLS, choice=choice), ["Let me ", "check.\n", line, "\nDone."])
    assert [type(e) for e in events] == [TextDelta, ToolCallEvent, TextDelta] and finish.reason == "tool_calls"
    assert events[0] == TextDelta("Let me check.\n") and not shaper.call_missing


def test_required_call_cut_by_the_limit_is_the_answer() -> None:
    spec = ReplySpec(tools=TOOLS, choice=ToolChoice("required"), max_tokens=2)
    events, finish, shaper = run(spec, ["a long answer without any call"])
    assert finish.reason == "length" and not shaper.call_missing
    assert events == [TextDelta("a long a")]


def test_structured_output_is_held_then_extracted() -> None:
    fmt = OutputFormat(kind="json_object")
    shaper = ReplyShaper(ReplySpec(output=fmt))
    assert shaper.feed([ContentDelta("Here: ```json\n{\"a\": "), ContentDelta("1}\n```")]) == []
    events, finish = shaper.finish()
    assert events == [TextDelta('{"a": 1}')] and finish.reason == "stop"


def test_plain_spec_passes_deltas_through() -> None:
    events, finish, _ = run(ReplySpec(), ["a <b", "> c"])
    assert events == [TextDelta("a <b"), TextDelta("> c")] and finish.reason == "stop"
