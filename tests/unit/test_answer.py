"""AnswerBuilder: events in, client-visible deltas out."""

from __future__ import annotations

import json

import pytest

from core.answer import AnswerBuilder, ContentDelta, ReasoningDelta, estimate_tokens
from core.grok.events import (
    AnswerText,
    Card,
    FinalMessage,
    ImageProgress,
    SearchResults,
    SoftStop,
    Source,
    StreamError,
    ThinkingText,
    ToolUse,
)
from core.grok.parse import parse_rest_object
from tests.unit.helpers import data_bytes, decode, mgw_events, rest_events, sample_bytes
from tests.unit.test_parse import KIRO_ANSWER, KIRO_STREAM


def build(events, **options):
    builder = AnswerBuilder(**options)
    deltas = builder.feed_all(events) + builder.finish()
    answer = builder.answer
    # the invariant every caller relies on: streamed deltas and the final answer agree
    assert answer.content == "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    assert answer.reasoning == "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))
    return answer, deltas


def test_plain_capture():
    answer, deltas = build(rest_events(sample_bytes(KIRO_STREAM)))
    assert answer.content == KIRO_ANSWER and answer.reasoning == ""
    assert len(deltas) == 31  # one delta per token: nothing is batched up
    assert answer.finished and answer.error is None
    assert answer.conversation_id == "519dce3f-387b-47fa-bd14-4dfc4e30102a"
    assert answer.response_id == "70c96a48-1939-41ef-804a-4f86ae41f8fc"
    assert answer.model_hash == "f54V4nLGp4IcuJf0V+H7yBgHbw0FdgMUlmc0eOqrGR0="
    assert answer.title == "精简模式测试" and answer.final.message == KIRO_ANSWER


def test_reasoning_separate():
    answer, deltas = build(rest_events(data_bytes("transcript_b_reasoning.ndjson")))
    assert answer.content == "17 × 23 = **391**"
    assert (
        answer.reasoning
        == "Thinking about your request\nThe user asks for 17×23 = 391.\nComputing the product"
    )
    first_content = next(i for i, d in enumerate(deltas) if isinstance(d, ContentDelta))
    assert all(isinstance(d, ReasoningDelta) for d in deltas[:first_content])


def test_reasoning_inline():
    answer, deltas = build(rest_events(data_bytes("transcript_b_reasoning.ndjson")), thinking_output="inline")
    assert answer.reasoning == "" and not any(isinstance(d, ReasoningDelta) for d in deltas)
    assert answer.content == (
        "<think>\nThinking about your request\nThe user asks for 17×23 = 391.\nComputing the product\n"
        "</think>\n\n17 × 23 = **391**"
    )
    assert deltas[0] == ContentDelta("<think>\nThinking about your request")


def test_inline_think_is_closed_at_finish_without_answer_text():
    answer, _ = build([ThinkingText("only thoughts")], thinking_output="inline")
    assert answer.content == "<think>\nonly thoughts\n</think>\n\n"


def test_reasoning_hidden():
    events = rest_events(data_bytes("transcript_e_web_search.ndjson"))
    answer, deltas = build(events, thinking_output="hidden")
    assert answer.reasoning == "" and "think" not in answer.content and "WebSearch" not in answer.content
    assert all(isinstance(d, ContentDelta) for d in deltas)


def test_reasoning_after_answer_started_is_not_emitted():
    events = [
        ThinkingText("before"),
        AnswerText("answer"),
        ThinkingText("late"),
        ToolUse("t", "web_search", {}),
    ]
    answer, _ = build(events)
    assert answer.reasoning == "before" and answer.content == "answer"
    inline, _ = build(events, thinking_output="inline")
    assert inline.content == "<think>\nbefore\n</think>\n\nanswer"


def test_headers_and_tool_lines_stand_on_their_own_lines():
    events = [
        ThinkingText("Thinking", step_id=0, header=True),
        ThinkingText(" about it", step_id=0, header=True),  # a header split over tokens stays one line
        ThinkingText("Let me search", step_id=0),
        ToolUse("t1", "web_search", {"query": "rust 1.80", "num_results": "5"}),
        ToolUse("t1", "web_search", {"query": "rust 1.80"}),  # the same card again
        ToolUse("t2", "code_execution", {"code": "print(1)"}),
        ToolUse("t3", "x_search", {"query": "from:rustlang"}, rollout_id="Agent 2"),
        ToolUse("t4", "chatroom_send", {"message": "hi all", "to": "All"}),
        ToolUse("t5", "browse_page", {"url": "https://r.example"}),
        ToolUse("t6", "search_images", {"image_description": "crab"}),
        ToolUse("t7", "brand_new_tool", {"query": "q"}),
        ThinkingText("Next step", step_id=1, header=True),
        ThinkingText("done"),
    ]
    answer, _ = build(events)
    assert answer.reasoning.split("\n") == [
        "Thinking about it",
        "Let me search",
        "[WebSearch] rust 1.80",
        "[CodeExecution]",
        "[Agent 2] [XSearch] from:rustlang",
        "[AgentThink] hi all",
        "[BrowsePage] https://r.example",
        "[SearchImage] crab",
        "[BrandNewTool] q",
        "Next step",
        "done",
    ]


def test_web_search_transcript_citations_and_sources():
    answer, _ = build(rest_events(data_bytes("transcript_e_web_search.ndjson")))
    url = "https://blog.rust-lang.org/releases/"
    assert answer.content == f"The latest stable release is Rust 1.xx[[1]]({url})."
    assert answer.reasoning == "Thinking about your request\n[WebSearch] latest Rust release\n"
    assert answer.citations == [(1, url, "Rust Releases")]
    assert [(s.url, s.title) for s in answer.sources] == [(url, "Rust Releases")]


def _card_after_tag() -> list:
    """Transcript (e) with the citation card moved after the token that references it, and no cards in the
    final message: the order the reference cannot rule out."""
    bodies = [
        obj["result"].get("response", {}) for obj in decode(data_bytes("transcript_e_web_search.ndjson"))
    ]
    objects = decode(data_bytes("transcript_e_web_search.ndjson"))
    card_line = next(i for i, body in enumerate(bodies) if "cardAttachment" in body)
    soft_stop = next(i for i, body in enumerate(bodies) if body.get("isSoftStop"))
    objects.insert(soft_stop, objects.pop(card_line))
    for obj in objects:
        obj["result"].get("response", {}).get("modelResponse", {}).pop("cardAttachmentsJson", None)
    return [event for obj in objects for event in parse_rest_object(obj)]


def test_late_citation_card_is_dropped_when_streaming():
    answer, _ = build(_card_after_tag())
    assert answer.content == "The latest stable release is Rust 1.xx."


def test_late_citation_card_is_resolved_when_not_streaming():
    builder = AnswerBuilder(stream=False)
    events = _card_after_tag()
    tag_index = next(i for i, e in enumerate(events) if isinstance(e, AnswerText) and "grok:render" in e.text)
    held = builder.feed_all(events[: tag_index + 2])  # the tag and the "." after it
    assert (
        "".join(d.text for d in held if isinstance(d, ContentDelta))
        == "The latest stable release is Rust 1.xx"
    )
    rest = builder.feed_all(events[tag_index + 2 :]) + builder.finish()
    assert "".join(d.text for d in rest) == "[[1]](https://blog.rust-lang.org/releases/)."


def test_citation_card_only_in_final_message_resolves_when_not_streaming():
    card = Card(
        "c9", "render_inline_citation", {"id": "c9", "cardType": "citation", "url": "https://z.example"}
    )
    tag = '<grok:render card_id="c9" card_type="citation" type="render_inline_citation"></grok:render>'
    events = [
        AnswerText("Fact" + tag + "."),
        SoftStop(),
        FinalMessage("r", message="Fact" + tag + ".", cards=(card,)),
    ]
    answer, _ = build(events, stream=False)
    assert answer.content == "Fact[[1]](https://z.example)."


def test_mgw_positional_citations():
    answer, _ = build(mgw_events(sample_bytes("chenyme_mgw_ws_search_citation_frames.jsonl")))
    x_url, web_url = (
        "https://x.com/elonmusk/status/2082707547203518569",
        "https://www.ithome.com/0/981/947.htm",
    )
    assert answer.content == f"预计发布[[1]]({x_url})[[2]]({web_url})。"
    assert answer.reasoning == "[WebSearch] grok 4.6\n[XSearch] from:elonmusk\n"
    assert answer.citations == [(1, x_url, "Elon Musk (@elonmusk)"), (2, web_url, "IT之家 Grok 4.6")]
    assert [s.url for s in answer.sources] == [web_url, x_url]


def test_generated_images_are_appended_once_each():
    answer, deltas = build(rest_events(data_bytes("transcript_c_images.ndjson")))
    images = [
        "https://assets.grok.com/users/U/generated/img-a/image.jpg",
        "https://assets.grok.com/users/U/generated/img-b/image.jpg",
    ]
    assert answer.images == images
    text = "I generated images with the prompt: 'a red fox in snow'"
    assert answer.content == text + "".join(f"\n\n![image]({url})" for url in images)
    assert deltas[-1] == ContentDelta("".join(f"\n\n![image]({url})" for url in images))


def test_moderated_and_partial_images_are_not_shown():
    events = [
        ImageProgress("a", "users/U/generated/a-part-0/image.jpg", 50),
        ImageProgress("a", "users/U/generated/a/image.jpg", 100, moderated=True),
        ImageProgress("b", "users/U/generated/b/image.jpg", 100),
        AnswerText("done"),
        FinalMessage(
            "r",
            generated_image_urls=(
                "users/U/generated/a/image.jpg",
                "users/U/generated/b/image.jpg",
                "x-part-1/i.jpg",
            ),
        ),
    ]
    answer, _ = build(events, asset_url=lambda path: f"/v1/files/{path}")
    assert answer.images == ["/v1/files/users/U/generated/b/image.jpg"]
    assert answer.content == "done\n\n![image](/v1/files/users/U/generated/b/image.jpg)"


def test_lite_image_card_flow():
    answer, _ = build(rest_events(sample_bytes("chenyme_lite_image_render_file_flow_captured.txt")))
    assert answer.content == (
        "这段文本不应影响图片完成\n\n![image](https://assets.grok.com/users/user_1/generated/cat/image.jpg)"
    )


def test_image_edit_stream_without_text_tokens():
    answer, _ = build(rest_events(sample_bytes("chenyme_image_edit_concatenated_frames.txt")))
    assert answer.content == "\n\n![image](https://assets.grok.com/users/test/generated/edit/image.jpg)"


def test_final_message_is_the_fallback_when_no_tokens_arrived():
    message = 'See<grok:render card_id="c" type="render_inline_citation"></grok:render> this.<xaiArtifact>x</xaiArtifact>'
    card = Card(
        "c", "render_inline_citation", {"id": "c", "url": "https://c.example", "cardType": "citation"}
    )
    builder = AnswerBuilder()
    assert builder.feed(FinalMessage("r", message=message, cards=(card,))) == []
    assert builder.finish() == [ContentDelta("See[[1]](https://c.example) this.")]
    assert builder.finish() == []  # idempotent


def test_tokens_stand_when_the_final_message_is_empty_or_present():
    answer, _ = build([AnswerText("agent "), AnswerText("text"), FinalMessage("r", message="")])
    assert answer.content == "agent text"
    answer, _ = build([AnswerText("token text"), FinalMessage("r", message="token text")])
    assert answer.content == "token text"  # not doubled


def test_errors_and_finished_flag():
    usage = parse_rest_object(json.loads(sample_bytes("chenyme_usage_limit_error_frame.json")))
    answer, deltas = build([StreamError("warn", fatal=False), *usage])
    assert answer.error.is_usage_limit and deltas == [] and not answer.finished
    answer, _ = build([AnswerText("x"), SoftStop()])
    assert answer.finished and answer.final is None


def test_sources_are_unique_and_ordered():
    events = [
        SearchResults((Source("https://a"), Source("https://b", "B"))),
        Card("c", "render_inline_citation", {"url": "https://c", "cardType": "citation"}),
        SearchResults((Source("https://b", "B again"),)),
        FinalMessage("r", sources=(Source("https://a"), Source("https://d"))),
    ]
    answer, _ = build(events)
    assert [s.url for s in answer.sources] == ["https://a", "https://b", "https://c", "https://d"]


def test_filter_tags_are_configurable():
    text = "<xaiArtifact>doc</xaiArtifact> ok"
    assert build([AnswerText(text)], filter_tags=())[0].content == text
    assert build([AnswerText(text)])[0].content == " ok"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("", 0, 0),
        ("hi", 1, 1),
        ("The quick brown fox jumps over the lazy dog.", 8, 14),
        ("测试收到精简模式", 8, 8),
        ("Grok 说：你好世界", 6, 9),
    ],
)
def test_estimate_tokens(text, low, high):
    assert low <= estimate_tokens(text) <= high
