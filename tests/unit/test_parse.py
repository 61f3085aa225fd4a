"""Stream framing and event mapping, checked against every recorded sample and the reference transcripts."""

from __future__ import annotations

import json

import pytest

from core.grok.events import (
    AnswerText,
    Card,
    ConversationStarted,
    FinalMessage,
    ImageProgress,
    ModelInfo,
    SearchResults,
    SoftStop,
    StreamError,
    ThinkingText,
    Title,
    ToolUse,
    UserTurn,
    VideoProgress,
)
from core.grok.parse import (
    JsonStreamDecoder,
    is_terminal_mgw,
    parse_mgw_event,
    parse_rest_object,
    parse_rest_stream,
)
from tests.unit.helpers import SAMPLES, data_bytes, decode, mgw_events, rest_events, sample_bytes

KIRO_STREAM = "kiroexport_new_conversation_plain_text_compact.ndjson"
KIRO_ANSWER = (
    "测试收到！  \n\n精简模式已就位 😄  \n\n你想让我继续保持这种最短回答风格，还是有具体问题要丢过来？"
)


def of_type(events, kind):
    return [event for event in events if isinstance(event, kind)]


def answer_text(events) -> str:
    return "".join(event.text for event in of_type(events, AnswerText))


# --------------------------------------------------------------------------------------------------------------
# JsonStreamDecoder
# --------------------------------------------------------------------------------------------------------------


def test_ndjson_lines_come_out_as_soon_as_each_line_is_complete():
    decoder = JsonStreamDecoder()
    assert decoder.feed(b'{"a":1}\n{"b":') == [{"a": 1}]
    assert decoder.feed(b"2}\n") == [{"b": 2}]
    assert decoder.close() == []


def test_sse_style_noise_is_skipped():
    body = b'data: {"a":1}\r\n\r\nevent: message\n: keep-alive\nid: 7\ndata:{"b":2}\n\ndata: [DONE]\n'
    assert decode(body) == [{"a": 1}, {"b": 2}]


def test_concatenated_objects_without_newlines_are_emitted_without_waiting_for_close():
    decoder = JsonStreamDecoder()
    assert decoder.feed(b'{"a":1}{"b":{"c":"}{"}}{"d"') == [{"a": 1}, {"b": {"c": "}{"}}]
    assert decoder.feed(b":3}") == [{"d": 3}]
    assert decoder.close() == []


def test_pretty_printed_objects_spanning_lines():
    body = b'{\n  "result": {\n    "token": "a\\nb"\n  }\n}{\n "x": [1, {"y": 2}]\n}\n'
    assert decode(body) == [{"result": {"token": "a\nb"}}, {"x": [1, {"y": 2}]}]


def test_garbage_between_and_inside_lines_is_skipped():
    body = b'HTTP junk\n<html>{not json}</html>{"a":1} trailing words\nxx{"b":"\\"}"}yy\n[1,2]\n42\n"str"\n'
    assert decode(body) == [{"a": 1}, {"b": '"}'}]


def test_stray_open_brace_in_junk_does_not_swallow_the_stream_for_good():
    # The "{" never closes; the real object after it is recovered at close() at the latest.
    assert decode(b'junk { more junk\n{"a":1}\n') == [{"a": 1}]


def test_lone_backslash_at_chunk_end_inside_a_string():
    chunks = [b'{"t":"a\\', b'"b"}', b"\n"]
    assert decode(b"", chunks) == [{"t": 'a"b'}]


def test_last_line_without_newline_is_flushed_on_close():
    decoder = JsonStreamDecoder()
    assert decoder.feed(b'{"a":1}\n{"b":2}') == [{"a": 1}]
    assert decoder.close() == [{"b": 2}]


def test_unterminated_huge_object_is_abandoned():
    decoder = JsonStreamDecoder(max_object_chars=64)
    out = decoder.feed(b'{"x":"' + b"a" * 100)
    out += decoder.feed(b'\n{"ok":true}\n')
    assert out == [{"ok": True}]


def test_escaped_markup_is_decoded():
    obj = decode(sample_bytes("kiroexport_tool_usage_card_code_execution_line.json"))[0]
    assert obj["result"]["response"]["token"].startswith("<xai:tool_usage_card>")


def _split_everywhere(data: bytes):
    expected = decode(data)
    for offset in range(len(data) + 1):
        assert decode(data, [data[:offset], data[offset:]]) == expected, f"split at byte {offset}"
    return expected


def test_plain_stream_is_independent_of_chunking_at_every_byte():
    data = sample_bytes(KIRO_STREAM)  # CJK and an emoji: splits fall inside multi-byte characters
    expected = _split_everywhere(data)
    assert len(expected) == len(data.splitlines()) == 39
    assert decode(data, [data[i : i + 1] for i in range(len(data))]) == expected


@pytest.mark.parametrize(
    "name", ["chenyme_video_concatenated_frames.txt", "chenyme_lite_image_render_file_flow_captured.txt"]
)
def test_concatenated_and_prefixed_streams_are_independent_of_chunking(name):
    data = sample_bytes(name)
    expected = _split_everywhere(data)
    assert decode(data, [data[i : i + 3] for i in range(0, len(data), 3)]) == expected


def test_pretty_stream_is_independent_of_chunking():
    objects = [json.loads(line) for line in data_bytes("transcript_e_web_search.ndjson").splitlines()]
    pretty = "".join(json.dumps(obj, indent=2, ensure_ascii=False) for obj in objects).encode()
    assert _split_everywhere(pretty) == objects


# --------------------------------------------------------------------------------------------------------------
# Every recorded sample
# --------------------------------------------------------------------------------------------------------------

NON_STREAM_SAMPLES = {
    # request bodies, quota bodies, header dumps, binary: parsing must stay quiet, not crash
    "README.md",
    "chenyme_imagine_quota_info_observed.json",
    "chenyme_weekly_credits_grpcweb_captured.hex",
    "kiroexport_cloudflare_challenge_403_EXCERPT.html",
    "kiroexport_request_bodies.json",
    "sudoai_imagine_quota_info_2026-07-20.json",
    "sudoai_imagine_ws_frames_2026-07-20.txt",
    "sudoai_mgw_ws_client_events.json",
    "sudoai_rate_limits_observed.txt",
    "sudoai_rest_modes_response.json",
    "video_gen_2025-09-29_request_payload.json",
    "video_gen_2025-09-29_response_headers.txt",
}
STREAM_SAMPLES = {
    "chenyme_anti_bot_error_line.json",
    "chenyme_blocked_user_403_body.json",
    "chenyme_image_edit_concatenated_frames.txt",
    "chenyme_lite_image_render_file_flow_captured.txt",
    "chenyme_mgw_ws_basic_frames.jsonl",
    "chenyme_mgw_ws_search_citation_frames.jsonl",
    "chenyme_rest_chat_fixture_sse_prefixed.txt",
    "chenyme_usage_limit_error_frame.json",
    "chenyme_video_concatenated_frames.txt",
    "kiroexport_anti_bot_rejection_body.json",
    KIRO_STREAM,
    "kiroexport_tool_usage_card_code_execution_line.json",
    "sudoai_mgw_ws_server_grammar.txt",
    "thirdparty_imagine_edit_stream_trimmed_capture.ndjson",
    "thirdparty_rate_limit_429_body.json",
}


def test_every_sample_has_a_test():
    if not SAMPLES.is_dir():
        pytest.skip(f"upstream samples not found at {SAMPLES}")
    present = {path.name for path in SAMPLES.iterdir() if path.is_file()}
    assert present - NON_STREAM_SAMPLES - STREAM_SAMPLES == set(), "new sample: add expectations for it"


@pytest.mark.parametrize("name", sorted(NON_STREAM_SAMPLES))
def test_non_stream_samples_produce_no_events(name):
    data = sample_bytes(name)
    assert rest_events(data) == []
    assert mgw_events(data) == []


def test_kiroexport_plain_text_stream():
    events = rest_events(sample_bytes(KIRO_STREAM))
    final = of_type(events, FinalMessage)
    assert answer_text(events) == KIRO_ANSWER == final[0].message
    assert events[:3] == [
        ConversationStarted("519dce3f-387b-47fa-bd14-4dfc4e30102a"),
        UserTurn("569fd0dc-fa2c-49eb-ac55-21456fbc622c"),
        ModelInfo("f54V4nLGp4IcuJf0V+H7yBgHbw0FdgMUlmc0eOqrGR0="),
    ]
    assert events[-3:] == [SoftStop(), final[0], Title("精简模式测试")]
    assert final[0].response_id == "70c96a48-1939-41ef-804a-4f86ae41f8fc"
    assert final[0].stream_errors == () and final[0].sources == ()
    assert of_type(events, ThinkingText) == [] and of_type(events, StreamError) == []


def test_continue_stream_flat_form():
    """``/conversations/{id}/responses``: no conversation/title lines and no ``response`` wrapper."""
    lines = []
    for obj in decode(sample_bytes(KIRO_STREAM)):
        if "response" in obj["result"]:
            lines.append(json.dumps({"result": obj["result"]["response"]}, ensure_ascii=False))
    events = parse_rest_stream("\n".join(lines).encode())
    assert answer_text(events) == KIRO_ANSWER
    assert of_type(events, FinalMessage)[0].message == KIRO_ANSWER
    assert of_type(events, ModelInfo) and of_type(events, SoftStop)
    assert of_type(events, ConversationStarted) == [] and of_type(events, Title) == []
    assert parse_rest_object({"result": {"token": "hi", "isThinking": False, "isSoftStop": False}}) == [
        AnswerText("hi")
    ]


def test_tool_usage_card_is_a_tool_use_and_never_text():
    events = rest_events(sample_bytes("kiroexport_tool_usage_card_code_execution_line.json"))
    assert events == [
        ToolUse(
            card_id="2acf194f-dbdf-4b1f-9449-fc706f1ae763",
            name="code_execution",
            args={"code": 'print("测试Header精简功能是否正常")', "language": ""},
        )
    ]


@pytest.mark.parametrize(
    "name", ["kiroexport_anti_bot_rejection_body.json", "chenyme_anti_bot_error_line.json"]
)
def test_anti_bot_body(name):
    (error,) = rest_events(sample_bytes(name))
    assert isinstance(error, StreamError) and error.is_anti_bot and not error.is_usage_limit
    assert error.code == 7 and error.fatal


def test_usage_limit_frame():
    events = rest_events(sample_bytes("chenyme_usage_limit_error_frame.json"))
    assert len(events) == 1  # the image card's systemErrCode is not reported twice, and is not an image
    assert events[0].is_usage_limit and events[0].fatal and not events[0].is_anti_bot


def test_rate_limit_body():
    (error,) = rest_events(sample_bytes("thirdparty_rate_limit_429_body.json"))
    assert error.is_usage_limit and error.code == 8


def test_blocked_user_body_is_not_mistaken_for_anti_bot():
    (error,) = rest_events(sample_bytes("chenyme_blocked_user_403_body.json"))
    assert error.code == "unauthorized:blocked-user" and not error.is_anti_bot
    (variant,) = parse_rest_object({"code": "unauthorized:blocked-user", "error": "User is blocked"})
    assert variant.message == "User is blocked" and not variant.is_anti_bot


def test_image_edit_concatenated_frames():
    events = rest_events(sample_bytes("chenyme_image_edit_concatenated_frames.txt"))
    url = "users/test/generated/edit/image.jpg"
    assert [(e.url, e.progress, e.done) for e in of_type(events, ImageProgress)] == [
        (url, 50, False),
        (url, 100, True),
    ]
    assert of_type(events, FinalMessage)[0].generated_image_urls == (url,)
    assert len(events) == 3


def test_video_concatenated_frames():
    events = rest_events(sample_bytes("chenyme_video_concatenated_frames.txt"))
    assert events[0] == ConversationStarted("conversation_1")
    videos = of_type(events, VideoProgress)
    assert [video.progress for video in videos] == [1, 95, 100]
    assert videos[-1] == VideoProgress(
        video_id="video_1",
        progress=100,
        url="users/user_1/generated/video_1/generated_video.mp4",
        thumbnail_url="users/user_1/generated/video_1/preview_image.jpg",
    )
    # a soft-stop line may carry text: the text comes first
    assert events[-2:] == [AnswerText("I generated a video"), SoftStop()]


def test_sse_prefixed_rest_fixture():
    events = rest_events(sample_bytes("chenyme_rest_chat_fixture_sse_prefixed.txt"))
    assert [type(event) for event in events] == [
        ConversationStarted,
        UserTurn,
        ThinkingText,
        SearchResults,
        AnswerText,
    ]
    assert events[2].text == "thinking " and events[4].text == "hello"
    assert events[3].sources[0].url == "https://example.com"


def test_lite_image_render_file_flow():
    events = rest_events(sample_bytes("chenyme_lite_image_render_file_flow_captured.txt"))
    cards = of_type(events, Card)
    assert [card.card_id for card in cards] == ["x1Xyo", "x1Xyo"]
    assert cards[0].type == "render_file" and cards[0].data["image_chunk"] is None
    (image,) = of_type(events, ImageProgress)
    assert image.done and image.url == "users/user_1/generated/cat/image.jpg" and image.image_id == "image_1"
    texts = of_type(events, AnswerText)
    assert texts[0].text.startswith("<grok:render card_id=") and texts[1].text == "这段文本不应影响图片完成"


def test_imagine_edit_trimmed_capture():
    events = rest_events(sample_bytes("thirdparty_imagine_edit_stream_trimmed_capture.ndjson"))
    images = of_type(events, ImageProgress)
    assert [(image.progress, "-part-" in image.url) for image in images] == [(50, True), (100, False)]
    assert images[1].done and events[-2:] == [AnswerText("I edited the image"), SoftStop()]


def test_mgw_basic_frames():
    events = mgw_events(sample_bytes("chenyme_mgw_ws_basic_frames.jsonl"))
    assert events == [
        ConversationStarted("conversation-1"),
        AnswerText("TOKEN"),
        AnswerText("LESS"),
        ThinkingText("thought"),
        FinalMessage(response_id="response-1"),
    ]
    assert [is_terminal_mgw(obj) for obj in decode(sample_bytes("chenyme_mgw_ws_basic_frames.jsonl"))] == [
        False,
        False,
        False,
        False,
        True,
    ]


def test_mgw_search_and_citation_frames():
    events = mgw_events(sample_bytes("chenyme_mgw_ws_search_citation_frames.jsonl"))
    tools = of_type(events, ToolUse)
    assert [(tool.card_id, tool.name, tool.args) for tool in tools] == [
        ("tool-1", "web_search", {"query": "grok 4.6"}),
        ("tool-2", "x_search", {"query": "from:elonmusk"}),
    ]
    sources = [source for result in of_type(events, SearchResults) for source in result.sources]
    assert [source.url for source in sources] == [
        "https://www.ithome.com/0/981/947.htm",
        "https://x.com/elonmusk/status/2082707547203518569",
    ]
    assert sources[0].title == "IT之家 Grok 4.6" and "Grok 4.6 comes out" in sources[1].snippet
    cards = of_type(events, Card)
    assert [(card.card_id, card.type, card.url, card.data["citation_id"]) for card in cards] == [
        ("c1", "render_inline_citation", "https://x.com/elonmusk/status/2082707547203518569", 1),
        ("c2", "render_inline_citation", "https://www.ithome.com/0/981/947.htm", 0),
    ]
    assert answer_text(events) == "预计发布。"


def test_mgw_abridged_grammar_chunks():
    events = mgw_events(sample_bytes("sudoai_mgw_ws_server_grammar.txt"))
    assert events == [
        Card(
            card_id="407f7b",
            type="render_inline_citation",
            data={
                "id": "407f7b",
                "kind": "CITATION_KIND_X_POST",
                "url": "https://x.com/ToonHive/status/2083580420990324809",
                "citation_id": 29,
            },
        )
    ]


# --------------------------------------------------------------------------------------------------------------
# Reconstructed transcripts (§4.8 b, c, e)
# --------------------------------------------------------------------------------------------------------------


def test_transcript_reasoning():
    events = rest_events(data_bytes("transcript_b_reasoning.ndjson"))
    thinking = of_type(events, ThinkingText)
    assert [(t.text, t.step_id, t.header) for t in thinking] == [
        ("Thinking about your request", 0, True),
        ("The user asks", 0, False),
        (" for 17×23 = 391.", 0, False),
        ("Computing the product", 1, True),
    ]
    assert answer_text(events) == "17 × 23 = **391**" == of_type(events, FinalMessage)[0].message
    assert events.index(thinking[-1]) < events.index(of_type(events, AnswerText)[0])
    assert of_type(events, ModelInfo) == [ModelInfo("hash-b")]


def test_transcript_images():
    events = rest_events(data_bytes("transcript_c_images.ndjson"))
    images = of_type(events, ImageProgress)
    assert [(i.image_id, i.index, i.progress, i.done) for i in images] == [
        ("img-a", 0, 50, False),
        ("img-b", 1, 50, False),
        ("img-a", 0, 100, True),
        ("img-b", 1, 100, True),
    ]
    final = of_type(events, FinalMessage)[0]
    assert final.generated_image_urls == (
        "users/U/generated/img-a/image.jpg",
        "users/U/generated/img-b/image.jpg",
    )
    assert final.cards == () and events[-1] == Title("Red Fox in Snow")


def test_transcript_web_search():
    events = rest_events(data_bytes("transcript_e_web_search.ndjson"))
    (tool,) = of_type(events, ToolUse)
    assert tool == ToolUse("t-1", "web_search", {"query": "latest Rust release", "num_results": "5"})
    (results, *_) = of_type(events, SearchResults)
    assert results.sources[0].url == "https://blog.rust-lang.org/releases/"
    assert results.sources[0].title == "Rust Releases" and results.sources[0].snippet.startswith("Rust 1.xx")
    card = of_type(events, Card)[0]
    assert (card.card_id, card.type, card.url) == (
        "cite1",
        "render_inline_citation",
        "https://blog.rust-lang.org/releases/",
    )
    assert "tool_usage_card" not in answer_text(events)
    assert answer_text(events).startswith(
        'The latest stable release is Rust 1.xx<grok:render card_id="cite1"'
    )
    final = of_type(events, FinalMessage)[0]
    assert [s.url for s in final.sources] == ["https://blog.rust-lang.org/releases/"]
    assert [c.card_id for c in final.cards] == ["cite1"] and final.cards[0].url == card.url
    assert of_type(events, ThinkingText) == [
        ThinkingText("Thinking about your request", step_id=0, header=True)
    ]


# --------------------------------------------------------------------------------------------------------------
# Individual REST line shapes
# --------------------------------------------------------------------------------------------------------------


def response(**fields):
    return {"result": {"response": fields}}


def test_token_classification():
    assert parse_rest_object(response(token="a", messageTag="final", isThinking=False)) == [AnswerText("a")]
    assert parse_rest_object(response(token="b")) == [AnswerText("b")]
    assert parse_rest_object(response(token="c", messageTag="assistant")) == [AnswerText("c")]  # D0 dialect
    assert parse_rest_object(response(token="d", messageTag="analysis", isThinking=False)) == [
        ThinkingText("d")
    ]
    assert parse_rest_object(
        response(token="e", isThinking=True, rolloutId="Agent 2", messageStepId="3")
    ) == [ThinkingText("e", step_id=3, rollout_id="Agent 2")]
    assert parse_rest_object(response(token="f", messageStepId=1)) == [ThinkingText("f", step_id=1)]
    assert parse_rest_object(response(token="", messageTag="final")) == []
    assert parse_rest_object(response(token="raw", messageTag="raw_function_result", isThinking=True)) == []


def test_tool_card_without_structure_falls_back_to_xml_and_partial_tokens_are_silent():
    xml = (
        "<xai:tool_usage_card><xai:tool_usage_card_id>t-9</xai:tool_usage_card_id>"
        '<xai:tool_name>x_search</xai:tool_name><xai:tool_args><![CDATA[{"query":"grok"}]]></xai:tool_args>'
        "</xai:tool_usage_card>"
    )
    cut = xml.index("x_search") + 3  # the tool name is split: neither half can be read on its own
    head, tail = xml[:cut], xml[cut:]
    assert parse_rest_object(response(token=head, messageTag="tool_usage_card", isThinking=True)) == []
    assert parse_rest_object(response(token=tail, messageTag="tool_usage_card", isThinking=True)) == []
    assert parse_rest_object(response(token=xml, messageTag="tool_usage_card", rolloutId="r1")) == [
        ToolUse("t-9", "x_search", {"query": "grok"}, rollout_id="r1")
    ]


@pytest.mark.parametrize(
    ("key", "name"),
    [("browsePage", "browse_page"), ("searchImages", "search_images"), ("chatroomSend", "chatroom_send")],
)
def test_tool_card_names(key, name):
    card = {"toolUsageCardId": "t", key: {"args": {"x": 1}}}
    line = response(token="<xai:tool_usage_card>", messageTag="tool_usage_card", toolUsageCard=card)
    assert parse_rest_object(line) == [ToolUse("t", name, {"x": 1})]


def test_search_result_shapes():
    line = response(
        webSearchResults=[{"url": "https://a.example", "title": "A", "snippet": "sa"}],
        citedWebSearchResults={"results": [{"url": "https://a.example"}, {"url": "https://b.example"}]},
        xSearchResults={"results": [{"username": "jack", "postId": "20", "text": "just setting up"}]},
        xposts=[{"username": "", "postId": "1"}, {"title": "no url"}],
    )
    (results,) = parse_rest_object(line)
    assert [s.url for s in results.sources] == [
        "https://a.example",
        "https://b.example",
        "https://x.com/jack/status/20",
    ]
    assert results.sources[0].snippet == "sa" and results.sources[2].snippet == "just setting up"


def test_card_attachments_array_and_bad_json_data():
    line = response(
        cardAttachments=[
            {"jsonData": json.dumps({"id": "k1", "type": "render_searched_image", "image": {"title": "T"}})},
            {"jsonData": "{not json"},
            {"jsonData": json.dumps({"id": "k2", "cardType": "citation", "url": "https://c.example"})},
        ]
    )
    cards = parse_rest_object(line)
    assert [(c.card_id, c.type) for c in cards] == [("k1", "render_searched_image"), ("k2", "citation")]
    assert cards[1].url == "https://c.example"


def test_image_progress_flags():
    moderated = response(
        streamingImageGenerationResponse={"imageId": "i", "imageUrl": "u", "progress": 100, "moderated": True}
    )
    (image,) = parse_rest_object(moderated)
    assert image.moderated and not image.done
    (final,) = parse_rest_object(
        response(streamingImageGenerationResponse={"imageId": "i", "progress": 80, "isFinal": True})
    )
    assert final.progress == 100


def test_model_response_normalisation():
    model_response = {
        "responseId": "r",
        "message": "m",
        "generatedImageUrls": ["a.jpg", None, ""],
        "fileAttachments": ["vid-1"],
        "xposts": [{"username": "u", "postId": "5"}],
        "cardAttachmentsJson": [
            json.dumps({"id": "c", "type": "render_inline_citation", "url": "https://x"}),
            "junk",
        ],
        "streamErrors": [
            "boom",
            {"message": "nested", "severity": "STREAM_ERROR_SEVERITY_FATAL"},
            {"code": 3},
        ],
    }
    events = parse_rest_object(response(modelResponse=model_response, responseId="outer"))
    final, error = events
    assert final.generated_image_urls == ("a.jpg",) and final.file_attachments == ("vid-1",)
    assert final.sources[0].url == "https://x.com/u/status/5"
    assert [c.card_id for c in final.cards] == ["c"]
    assert final.stream_errors[:2] == ("boom", "nested") and all(
        isinstance(e, str) for e in final.stream_errors
    )
    assert isinstance(error, StreamError) and error.message == "boom" and error.fatal
    (only_final,) = parse_rest_object(response(modelResponse={"message": "x"}, responseId="outer"))
    assert only_final.response_id == "outer"


def test_in_stream_errors():
    (fatal,) = parse_rest_object(
        response(error={"message": "bad", "severity": "STREAM_ERROR_SEVERITY_FATAL"})
    )
    assert fatal.fatal and fatal.message == "bad"
    (warning,) = parse_rest_object(
        response(error={"message": "meh", "severity": "STREAM_ERROR_SEVERITY_WARNING"})
    )
    assert not warning.fatal
    (flat,) = parse_rest_object({"result": {"error": {"message": "You've reached your usage limit."}}})
    assert flat.is_usage_limit
    (heavy,) = parse_rest_object({"error": {"code": 8, "message": "Grok is under heavy usage right now"}})
    assert heavy.is_usage_limit


def test_unknown_and_malformed_lines_are_ignored():
    lines = [
        {},
        {"result": 5},
        {"result": {"response": "oops"}},
        {"result": {"somethingNew": {"a": 1}}},
        response(
            finalMetadata={"followUpSuggestions": []}, isThinking=False, isSoftStop=False, responseId="r"
        ),
        response(uiLayout={"reasoningUiLayout": "SPLIT"}),
        response(progressReport={"state": "PROGRESS_REPORT_STATUS_PENDING"}),
        response(imageDimensions={"width": 1, "height": 2}),
        response(token=None, llmInfo="not-an-object", userResponse=[]),
        {"result": {"title": {"newTitle": ""}}},
    ]
    assert [event for line in lines for event in parse_rest_object(line)] == []


# --------------------------------------------------------------------------------------------------------------
# Individual mgw frames
# --------------------------------------------------------------------------------------------------------------


def chunk_frame(chunk, session_id="s-1"):
    return {"session_id": session_id, "event": {"type": "response.chunk", "event_id": "e", "chunk": chunk}}


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("CHANNEL_ASSISTANT_RESPONSE", AnswerText("x")),
        ("", AnswerText("x")),
        (1, AnswerText("x")),
        ("CHANNEL_ANALYSIS", ThinkingText("x", step_id=2)),
        ("CHANNEL_REASONING", ThinkingText("x", step_id=2)),
        ("CHANNEL_ASSISTANT_THINKING", ThinkingText("x", step_id=2)),
        ("CHANNEL_ASSISTANT_NOTETAKER_SUMMARY", ThinkingText("x", step_id=2)),
        ("CHANNEL_ASSISTANT_NOTETAKER_HEADER", ThinkingText("x", step_id=2, header=True)),
        (3, ThinkingText("x", step_id=2, header=True)),
        ("CHANNEL_FOLLOW_UP", None),
        (99, None),
    ],
)
def test_mgw_text_channels(channel, expected):
    events = parse_mgw_event(
        chunk_frame({"metadata": {"step_id": 2}, "text": {"text": "x", "channel": channel}})
    )
    assert events == ([expected] if expected else [])


def test_mgw_session_events():
    assert parse_mgw_event({"session_id": "conv-9", "event": {"type": "session.created"}}) == [
        ConversationStarted("conv-9")
    ]
    attached = {"event": {"type": "conversation.attached", "conversation": {"id": "conv-9"}, "mode": "new"}}
    assert parse_mgw_event(attached) == [ConversationStarted("conv-9")]
    assert parse_mgw_event({"type": "conversation.title.updated", "title": "Ping"}) == [Title("Ping")]
    for kind in (
        "pong",
        "response.created",
        "response.persisted",
        "response.output_text.done",
        "conversation.item.added",
    ):
        assert parse_mgw_event({"event": {"type": kind, "text": "full"}}) == []


def test_mgw_end_of_turn():
    done = {
        "event": {"type": "response.done", "response": {"id": "resp-1", "status": "completed", "usage": {}}}
    }
    assert parse_mgw_event(done) == [FinalMessage(response_id="resp-1")] and is_terminal_mgw(done)
    failed = {"event": {"type": "response.done", "response": {"id": "resp-2", "status": "failed"}}}
    final, error = parse_mgw_event(failed)
    assert final.response_id == "resp-2" and isinstance(error, StreamError) and "failed" in error.message
    ended = {"session_id": "s", "event": {"type": "session.ended"}}
    assert parse_mgw_event(ended) == [StreamError("session ended", code="session_ended")] and is_terminal_mgw(
        ended
    )
    anti_bot = {"event": {"type": "error", "error": {"code": "anti_bot", "message": "anti-bot rejected"}}}
    (error,) = parse_mgw_event(anti_bot)
    assert error.is_anti_bot and is_terminal_mgw(anti_bot)
    assert not is_terminal_mgw(chunk_frame({"text": {"text": "x"}})) and not is_terminal_mgw({})


def test_mgw_output_and_misc_events():
    output = {
        "event": {
            "type": "response.grok.output",
            "output": {
                "stream_error": {"message": "You've reached your usage limit", "code": "rate_limit"},
                "card_attachment": {"jsonData": json.dumps({"id": "g1", "type": "render_generated_image"})},
                "tool_result": {"web_search": {"webpages": [{"url": "https://w.example"}]}},
                "progress_report": {"state": "x"},
            },
        }
    }
    card, results, error = parse_mgw_event(output)
    assert card.card_id == "g1" and results.sources[0].url == "https://w.example" and error.is_usage_limit
    delta = {"event": {"type": "response.output_text.delta", "delta": "hi"}}
    assert parse_mgw_event(delta) == [AnswerText("hi")]
    search = {
        "event": {"type": "response.search.result", "result": {"url": "https://s.example", "title": "S"}}
    }
    assert parse_mgw_event(search)[0].sources[0].title == "S"


def test_mgw_generated_image_chunk():
    chunk = {
        "render_generated_image": {"id": "g", "image_url": "users/u/generated/g/image.jpg", "progress": 100}
    }
    card, image = parse_mgw_event(chunk_frame(chunk))
    assert card == Card("g", "render_generated_image", chunk["render_generated_image"])
    assert image.done and image.url.endswith("g/image.jpg")
    partial = {"render_generated_image": {"imageUrl": "users/u/generated/g-part-0/image.jpg"}}
    (image,) = parse_mgw_event(chunk_frame(partial))
    assert not image.done
    wrapped = {
        "card_attachment": {
            "jsonData": json.dumps({"id": "w", "image_chunk": {"imageUrl": "p", "progress": 100}})
        }
    }
    assert [type(e) for e in parse_mgw_event(chunk_frame(wrapped))] == [Card, ImageProgress]


def test_mgw_ignores_non_events():
    assert parse_mgw_event({"session_id": "s"}) == []
    assert (
        parse_mgw_event(chunk_frame({"ui_layout": {}, "follow_up_suggestions": {}, "phase_marker": {}})) == []
    )
    assert parse_mgw_event(chunk_frame({"tool_result": {"tool_call_id": "t", "x_post": {}}})) == []
