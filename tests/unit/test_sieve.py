"""ToolSieve on every chunking of representative replies: nothing lost, duplicated or delayed, calls found once."""

from __future__ import annotations

import itertools
import json
import random
import time

import pytest

from core.sieve import MAX_BLOCK_CHARS, Call, Text, ToolSieve, check_choice
from core.tools import CALL_CLOSE, CALL_OPEN, ToolCallOut, ToolChoice, ToolSpec

TOOLS = [
    ToolSpec("get_weather", "Current weather.", {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city"],
    }),
    ToolSpec("search", "Web search.", {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"],
        "additionalProperties": False,
    }),
    ToolSpec("ping", "No arguments."),
    ToolSpec("deep", "Anything nested.", {"type": "object", "properties": {"data": {}}}),
]


def call(name: str, arguments: dict) -> str:
    return CALL_OPEN + json.dumps({"name": name, "arguments": arguments}) + CALL_CLOSE


W = call("get_weather", {"city": "Paris"})
S = call("search", {"query": "grok", "limit": 3})
P = CALL_OPEN + '{"name": "ping"}' + CALL_CLOSE
WEATHER = ("get_weather", {"city": "Paris"})


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# (reply, the calls it holds). Short replies: every split into 1, 2 and 3 pieces is tried.
CASES: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "less-than": ("a < b and c > d, x<y", []),
    "html": ("<b>bold</b> and <i>x</i> <tool_result>", []),
    "tag-prefix-at-end": ("it ends with <tool", []),
    "open-tag-at-end": ("it ends with <tool_call>", []),
    "stray-close": ("</tool_call> alone", []),
    "one-call": (W, [WEATHER]),
    "text-around": ("Let me check.\n" + W + "\nDone.", [WEATHER]),
    "two-calls": (W + "\n" + S, [WEATHER, ("search", {"query": "grok", "limit": 3})]),
    "three-calls": (W + "\n" + S + "\n" + P,
                    [WEATHER, ("search", {"query": "grok", "limit": 3}), ("ping", {})]),
    "fenced": ("```\n" + W + "\n```\n", []),
    "tilde-fenced-then-call": ("~~~json\n" + P + "\n~~~\n" + P, [("ping", {})]),
    "inline-code": ("use `" + P + "` then", []),
    "undeclared": ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', []),
    "fence-in-block": ('<tool_call>\n```json\n{"name": "ping"}\n```\n</tool_call>', [("ping", {})]),
    "trailing-comma": ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris",},}</tool_call>',
                       [WEATHER]),
    "smart-quotes": ("<tool_call>{“name”: “get_weather”, “arguments”: {“city”: “Paris”}}</tool_call>", [WEATHER]),
    "single-quotes": ("<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>", [WEATHER]),
    "missing-brace": ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}</tool_call>', [WEATHER]),
    "unrepairable": ('<tool_call>{"name": "get_weather", "arguments": {"city": Paris}}</tool_call>', []),
    "schema-mismatch": (call("get_weather", {"city": 42}), []),
    "missing-required": (call("get_weather", {"town": "Paris"}), []),
    "close-tag-in-string": (call("search", {"query": 'a {b} [c] </tool_call> " q'}),
                            [("search", {"query": 'a {b} [c] </tool_call> " q'})]),
    "open-tag-in-string": (call("search", {"query": "use <tool_call> tags"}),
                           [("search", {"query": "use <tool_call> tags"})]),
    "unclosed": ("x " + W[:-5], []),
    "not-json-body": ("<tool_call> is the tag I use " + P, [("ping", {})]),
    "nested-open": (W[: -len(CALL_CLOSE)] + "\n" + P, [("ping", {})]),
    "string-arguments": (CALL_OPEN + json.dumps({"name": "get_weather", "arguments": '{"city": "Paris"}'})
                         + CALL_CLOSE, [WEATHER]),
    "input-key": ('<tool_call>{"name": "get_weather", "input": {"city": "Paris"}}</tool_call>', [WEATHER]),
    "longer-fence": ("````\n```\n" + P + "\n````\n" + P, [("ping", {})]),
    "tilde-not-closed-by-backticks": ("~~~\n" + P + "\n```\n" + P, []),
    "crlf-fence": ("```\r\n" + P + "\r\n```\r\n" + P, [("ping", {})]),
    "indented-fence": ("  ```\n" + P + "\n  ```\n" + P, [("ping", {})]),
    "escaped-quote-at-edge": (call("search", {"query": 'say \\"hi\\"'}), [("search", {"query": 'say \\"hi\\"'})]),
}

LONG_CASES: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "deep-ok": (call("deep", {"data": nested(40)}), [("deep", {"data": nested(40)})]),
    "deep-too-deep": (call("deep", {"data": nested(200)}), []),
    "very-deep": (CALL_OPEN + '{"name": "deep", "arguments": {"data": ' + "[" * 5000 + "]" * 5000 + "}}"
                  + CALL_CLOSE, []),
}


def run(chunks: list[str], tools=TOOLS) -> tuple[list, ToolSieve]:
    sieve = ToolSieve(tools)
    pieces: list = []
    for chunk in chunks:
        pieces += sieve.feed(chunk)
    pieces += sieve.finish()
    return pieces, sieve


def merged(pieces: list) -> list:
    """Pieces with adjacent texts joined and call ids dropped: the chunking-independent shape."""
    out: list = []
    for piece in pieces:
        if isinstance(piece, Text):
            assert piece.text, "empty text piece"
            if out and isinstance(out[-1], str):
                out[-1] += piece.text
            else:
                out.append(piece.text)
        else:
            assert isinstance(piece, Call)
            out.append((piece.call.name, piece.call.arguments, piece.call.raw))
    return out


def joined(pieces: list) -> str:
    return "".join(p.text if isinstance(p, Text) else p.call.raw for p in pieces)


def splits(text: str, parts: int):
    n = len(text)
    for cuts in itertools.combinations(range(1, n), parts - 1):
        bounds = (0, *cuts, n)
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def random_chunkings(text: str, count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        chunks, i = [], 0
        while i < len(text):
            step = rng.choice((1, 1, 2, 3, 5, 8, 13, 40))
            chunks.append(text[i:i + step])
            i += step
        yield chunks


def check(text: str, expected: list[tuple[str, dict]], chunkings) -> None:
    reference, sieve = run([text])
    assert joined(reference) == text
    assert [(c.name, c.arguments) for c in sieve.calls] == expected
    shape = merged(reference)
    for chunks in chunkings:
        pieces, sieve = run(chunks)
        assert joined(pieces) == text, chunks
        assert merged(pieces) == shape, chunks
        assert [(c.name, c.arguments) for c in sieve.calls] == expected


@pytest.mark.parametrize("name", list(CASES))
def test_every_split(name: str) -> None:
    text, expected = CASES[name]
    chunkings = itertools.chain(splits(text, 2), splits(text, 3) if len(text) <= 130 else (),
                                random_chunkings(text, 200, seed=len(text)))
    check(text, expected, chunkings)


@pytest.mark.parametrize("name", list(LONG_CASES))
def test_long_cases(name: str) -> None:
    text, expected = LONG_CASES[name]
    check(text, expected, itertools.chain(random_chunkings(text, 30, seed=7), [list(text)]))


def test_long_mixed_reply_random_chunkings() -> None:
    parts = [CASES[name][0] for name in CASES] * 3
    random.Random(1).shuffle(parts)
    text = "\n\n".join(parts)
    reference, _ = run([text])
    shape = merged(reference)
    for chunks in random_chunkings(text, 150, seed=2):
        pieces, _ = run(chunks)
        assert merged(pieces) == shape


def test_call_pieces_and_ids() -> None:
    pieces, sieve = run(["Checking.\n", W[:20], W[20:], "\n", S, "\n"])
    shape = merged(pieces)
    assert shape[0] == "Checking.\n"
    assert shape[1] == ("get_weather", {"city": "Paris"}, W)
    assert shape[2] == "\n"
    assert shape[3][0] == "search"
    ids = [c.id for c in sieve.calls]
    assert all(len(i) == 29 and i.startswith("call_") and int(i[5:], 16) >= 0 for i in ids)
    assert len(set(ids)) == 2
    assert sieve.saw_call and sieve.ended_in_calls
    assert sieve.calls[0].arguments_json == '{"city": "Paris"}'


def test_ended_in_calls() -> None:
    assert not run(["hi"])[1].ended_in_calls
    assert run([W, " \n"])[1].ended_in_calls
    assert not run([W, "\nanything else"])[1].ended_in_calls
    assert run(["text first ", W])[1].ended_in_calls


def test_plain_text_passes_at_once() -> None:
    """No '<': each delta comes back as the very same single Text piece, whatever the fences and newlines."""
    text = "Intro line\n```python\nx = 1  # code\n```\n  ~~~\nmore ~~~ text\n~~~\n\n   spaced\n````\nend"
    for chunks in itertools.chain(splits(text, 2), splits(text, 3), random_chunkings(text, 50, seed=3)):
        sieve = ToolSieve(TOOLS)
        for chunk in chunks:
            assert sieve.feed(chunk) == [Text(chunk)]
        assert sieve.finish() == []


def test_text_is_held_at_most_while_it_may_be_a_tag() -> None:
    """Outside a block, all text is out after each feed except a suffix that is a proper prefix of the tag."""
    text = "a < b <b>x</b> <tool <tool_ x <tool_cal>\n`<tool_call>` done"
    for chunks in itertools.chain(splits(text, 2), splits(text, 3)):
        sieve = ToolSieve(TOOLS)
        fed, out = "", ""
        for chunk in chunks:
            fed += chunk
            out += joined(sieve.feed(chunk))
            held = fed[len(out):]
            assert fed.startswith(out)
            assert held == "" or (CALL_OPEN.startswith(held) and len(held) < len(CALL_OPEN))
        assert out + joined(sieve.finish()) == text


def test_non_json_block_is_released_without_waiting() -> None:
    sieve = ToolSieve(TOOLS)
    assert joined(sieve.feed("I use <tool_call>")) == "I use "
    assert joined(sieve.feed(" tags")) == "<tool_call> tags"


def test_rejections_are_explained() -> None:
    _, sieve = run(['<tool_call>{"name": "nope"}</tool_call>', call("get_weather", {"city": 1})])
    assert "undeclared tool 'nope'" in sieve.rejected[0]
    assert "do not match its schema" in sieve.rejected[1]
    assert not sieve.saw_call


def test_oversized_block_is_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.sieve.MAX_BLOCK_CHARS", 100)
    text = call("search", {"query": "x" * 200}) + " after"
    pieces, sieve = run([text[i:i + 7] for i in range(0, len(text), 7)])
    assert joined(pieces) == text and not sieve.calls
    assert MAX_BLOCK_CHARS >= 100_000


def test_mapping_of_tools_limits_what_counts() -> None:
    pieces, sieve = run([W + S], tools={"search": TOOLS[1]})
    assert [c.name for c in sieve.calls] == ["search"]
    assert merged(pieces)[0] == W


def test_feed_after_finish_is_ignored() -> None:
    sieve = ToolSieve(TOOLS)
    sieve.feed("<tool_ca")
    assert joined(sieve.finish()) == "<tool_ca"
    assert sieve.finish() == [] and sieve.feed("x") == []


def call_out(name: str) -> ToolCallOut:
    return ToolCallOut(id="call_1", name=name, arguments={})


@pytest.mark.parametrize(
    ("choice", "names", "problem"),
    [
        (None, [], None),
        (ToolChoice("auto"), [], None),
        (ToolChoice("none"), [], None),
        (ToolChoice("none"), ["ping"], "'none' but the model called ping"),
        (ToolChoice("required"), [], "called no tool"),
        (ToolChoice("required"), ["ping", "search"], None),
        (ToolChoice.function("ping"), ["ping", "ping"], None),
        (ToolChoice.function("ping"), [], "forces 'ping' but the model called no tool"),
        (ToolChoice.function("ping"), ["ping", "search"], "forces 'ping' but the model called ping, search"),
    ],
)
def test_check_choice(choice, names, problem) -> None:
    found = check_choice(choice, [call_out(n) for n in names])
    assert (found is None) if problem is None else (problem in found)


def test_plain_text_cost_stays_small() -> None:
    """The sieve runs on every delta of every answer with tools: plain text must cost next to nothing (about
    0.3 µs over a no-op on a laptop; the bound leaves room for a loaded CI machine)."""
    deltas = ["Hello there, ", "this is a ", "plain answer", " with words", " and more.\n", "Next ", "line"] * 300
    sieve = ToolSieve(TOOLS)
    started = time.perf_counter()
    for delta in deltas:
        sieve.feed(delta)
    per_delta = (time.perf_counter() - started) / len(deltas)
    assert per_delta < 20e-6
