"""REST chat stream shape: envelopes, line order, ids, invariants, continue endpoint, dialects, gzip."""

from __future__ import annotations

import re
import time
import zlib

import httpx
import pytest

from simulator.text import plain_answer, tokenize
from tests.simulator.helpers import (
    NEW,
    UUID4_RE,
    chat,
    continue_path,
    final_text,
    find,
    parse_lines,
    payloads,
)

MICRO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MILLI_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MESSAGE_KEYS = [
    "responseId", "message", "sender", "createTime", "manual", "partial", "shared", "query", "queryType",
    "webSearchResults", "xpostIds", "xposts", "generatedImageUrls", "imageAttachments", "fileAttachments",
    "cardAttachmentsJson", "fileUris", "fileAttachmentsMetadata", "isControl", "steps", "imageEditUris",
    "mediaTypes", "webpageUrls", "metadata", "citedWebSearchResults", "toolResponses", "model", "ragResults",
    "citedRagResults", "searchProductResults", "connectorSearchResults", "collectionSearchResults",
    "highlightsStories", "streamErrors",
]


def test_plain_answer_line_order_and_invariants(client: httpx.Client) -> None:
    lines = chat(client, "[user]\nHello there", modeId="fast", sendFinalMetadata=True)
    assert list(lines[0]["result"]) == ["conversation"]
    assert list(lines[-1]["result"]) == ["title"]
    body = payloads(lines)
    kinds = [next(k for k in p if k not in ("isThinking", "isSoftStop", "responseId")) for p in body]
    tokens = [i for i, k in enumerate(kinds) if k == "token"]
    assert kinds[:4] == ["userResponse", "uiLayout", "llmInfo", "uiLayout"]
    assert kinds[-3:] == ["token", "finalMetadata", "modelResponse"]
    assert body[tokens[-1]] == {"token": "", "isThinking": False, "isSoftStop": True,
                                "responseId": body[-1]["responseId"]}
    assert body[1]["uiLayout"]["reasoningUiLayout"] == "SPLIT"
    assert body[3]["uiLayout"]["reasoningUiLayout"] == "FUNCTION_CALL"

    conversation = lines[0]["result"]["conversation"]
    user, model = find(lines, "userResponse"), find(lines, "modelResponse")
    ids = {conversation["conversationId"], user["responseId"], model["responseId"]}
    assert len(ids) == 3 and all(UUID4_RE.match(i) for i in ids)
    assert all(p["responseId"] == model["responseId"] for p in body[1:])
    assert body[0]["responseId"] == user["responseId"]
    assert model["parentResponseId"] == user["responseId"]
    assert MICRO_RE.match(conversation["createTime"]) and MILLI_RE.match(model["createTime"])

    assert model["message"] == final_text(lines) == plain_answer("[user]\nHello there")
    assert model["message"] == "You said: Hello there  \n\nThis is a simulated Grok reply."
    assert list(user) == MESSAGE_KEYS
    assert user["sender"] == "human" and model["sender"] == "assistant"
    assert model["metadata"]["request_metadata"]["mode"] == "fast"
    assert model["requestMetadata"]["mode"] == "MODEL_MODE_FAST"
    assert len(model["metadata"]["llm_info"]["modelHash"]) == 44
    assert lines[-1]["result"]["title"]["newTitle"] == "Hello There"


def test_tokens_are_words_and_whitespace(client: httpx.Client) -> None:
    lines = chat(client, "Hello there")
    tokens = [p["token"] for p in payloads(lines) if p.get("messageTag") == "final"]
    assert tokens == ["You", " said:", " Hello", " there", "  \n\n", "This", " is", " a", " simulated", " Grok",
                      " reply."]
    assert tokenize("测试收到！精简模式") == ["测试", "收", "到！", "精", "简模式"]


def test_headers_and_trace_id(client: httpx.Client) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = client.post(NEW, json={"message": "hi"}, headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
    assert response.headers["server"] == "cloudflare"
    assert response.headers["x-trace-id"] == trace
    assert response.headers["content-type"] == "application/json"
    assert find(parse_lines(response.text), "modelResponse")["metadata"]["request_trace_id"] == trace
    other = find(chat(client, "hi"), "modelResponse")["metadata"]["request_trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", other) and other != trace


def test_final_metadata_only_when_requested(client: httpx.Client) -> None:
    def has_final_metadata(**body: object) -> bool:
        return any("finalMetadata" in p for p in payloads(chat(client, "hi", **body)))

    assert has_final_metadata(sendFinalMetadata=True, disableTextFollowUps=False)
    assert not has_final_metadata(sendFinalMetadata=True, disableTextFollowUps=True)
    assert not has_final_metadata(sendFinalMetadata=False)


@pytest.mark.parametrize(
    ("body", "mode"),
    [
        ({"modeId": "expert"}, "expert"),
        ({"modelMode": "MODEL_MODE_AUTO"}, "auto"),
        ({"modelName": "grok-4", "modelMode": "MODEL_MODE_GROK_4_1_THINKING"}, "expert"),
        ({"modelName": "grok-3", "modelMode": "MODEL_MODE_FAST"}, "fast"),
        ({"modelName": "grok-4-mini-thinking-tahoe"}, "fast"),
        ({"modelName": "grok-3"}, "auto"),
        ({"modelName": "grok-3", "isReasoning": True}, "expert"),
        ({}, "auto"),
        ({"modeId": "fast", "modelName": "grok-4", "modelMode": "MODEL_MODE_EXPERT"}, "fast"),
    ],
)
def test_mode_dialects(client: httpx.Client, body: dict[str, str], mode: str) -> None:
    model = find(chat(client, "hi", **body), "modelResponse")
    assert model["metadata"]["request_metadata"]["mode"] == mode


def test_model_hash_is_stable_per_mode(client: httpx.Client) -> None:
    def model_hash(mode: str) -> str:
        return find(chat(client, "hi", modeId=mode), "llmInfo")["modelHash"]

    assert model_hash("auto") == model_hash("auto") == "f54V4nLGp4IcuJf0V+H7yBgHbw0FdgMUlmc0eOqrGR0="
    assert model_hash("fast") != model_hash("auto")


def test_continue_conversation_flat_lines(client: httpx.Client, sim) -> None:
    first = chat(client, "first question", modeId="fast")
    conv_id = first[0]["result"]["conversation"]["conversationId"]
    parent = find(first, "modelResponse")["responseId"]
    lines = chat(client, "second question", continue_path(conv_id), parentResponseId=parent, modeId="fast")
    assert all("response" not in line["result"] for line in lines)
    assert not any("conversation" in line["result"] or "title" in line["result"] for line in lines)
    user = lines[0]["result"]["userResponse"]
    model = lines[-1]["result"]["modelResponse"]
    assert user["parentResponseId"] == parent
    assert model["parentResponseId"] == user["responseId"]
    assert model["message"] == final_text(lines) == plain_answer("second question")
    assert len(sim.state.conversations[conv_id].turns) == 2

    # Legacy GO-2026-07 style: key `responseId` holding the *user* turn id.
    legacy = chat(client, "third", continue_path(conv_id), responseId=user["responseId"])
    assert legacy[0]["result"]["userResponse"]["parentResponseId"] == user["responseId"]


def test_continue_errors(client: httpx.Client, sim) -> None:
    missing = client.post(continue_path("2b0b1c4e-0000-4000-8000-000000000000"), json={"message": "x"})
    assert missing.status_code == 404 and missing.json() == {"code": 5, "message": "Not Found"}
    first = chat(client, "hello")
    conv_id = first[0]["result"]["conversation"]["conversationId"]
    bad_parent = client.post(continue_path(conv_id), json={"message": "x", "parentResponseId": "nope"})
    assert bad_parent.status_code == 400
    # Another account cannot see the conversation.
    sim.state.add_account("intruder")
    foreign = client.post(continue_path(conv_id), json={"message": "x"}, headers={"cookie": "sso=intruder"})
    assert foreign.status_code == 404


def test_gzip_streams_line_by_line(client: httpx.Client, sim) -> None:
    sim.config.update({"token_delay": 0.03, "first_token_delay": 0.0})
    decoder = zlib.decompressobj(31)
    arrivals: list[tuple[float, str]] = []
    start = time.monotonic()
    with client.stream("POST", NEW, json={"message": "one two three four five six"},
                       headers={"accept-encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        for raw in response.iter_raw():
            text = decoder.decompress(raw).decode()
            assert text == "" or text.endswith("\n"), "each flush carries whole lines"
            arrivals.append((time.monotonic() - start, text))
    body = "".join(text for _, text in arrivals)
    assert final_text(parse_lines(body)) == plain_answer("one two three four five six")
    first_token_at = next(t for t, text in arrivals if '"messageTag":"final"' in text)
    assert first_token_at < arrivals[-1][0] - 0.15, "tokens must arrive while the stream is still running"


def test_identity_encoding_when_not_accepted(client: httpx.Client) -> None:
    response = client.post(NEW, json={"message": "hi"}, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in response.headers
    assert final_text(parse_lines(response.text)) == plain_answer("hi")


def test_gzip_can_be_disabled(client: httpx.Client, sim) -> None:
    sim.config.gzip = False
    response = client.post(NEW, json={"message": "hi"}, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_invalid_json_and_unknown_rest_path(client: httpx.Client) -> None:
    assert client.post(NEW, content=b"{not json").status_code == 400
    response = client.post("/rest/app-chat/does-not-exist", json={})
    assert response.status_code == 404 and response.json() == {"code": 5, "message": "Not Found"}


def test_first_token_timing(client: httpx.Client, sim) -> None:
    sim.config.update({"preset": "realistic", "first_token_delay": 0.2, "token_delay": 0.0})
    start = time.monotonic()
    seen: dict[str, float] = {}
    with client.stream("POST", NEW, json={"message": "hi"}) as response:
        for line in response.iter_lines():
            if '"conversation"' in line:
                seen.setdefault("conversation", time.monotonic() - start)
            if '"messageTag":"final"' in line:
                seen.setdefault("token", time.monotonic() - start)
    assert seen["token"] - seen["conversation"] >= 0.19
