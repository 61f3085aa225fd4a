"""Each scripted scenario: line order and invariants as a gateway would see them over HTTP."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from simulator.media import image_size
from simulator.text import lorem_answer, plain_answer
from tests.simulator.helpers import NEW, chat, final_text, find, parse_lines, payloads

TOOL_CARD_RE = re.compile(
    r"^<xai:tool_usage_card>\n  <xai:tool_usage_card_id>(?P<id>[0-9a-f-]{36})</xai:tool_usage_card_id>\n"
    r"  <xai:tool_name>web_search</xai:tool_name>\n"
    r"  <xai:tool_args><!\[CDATA\[(?P<args>\{.*\})\]\]></xai:tool_args>\n</xai:tool_usage_card>$"
)


def test_reasoning_marker_and_expert_default(client: httpx.Client) -> None:
    for lines in (chat(client, "#reasoning what is 2+2", modeId="fast"), chat(client, "what is 2+2", modeId="expert")):
        body = payloads(lines)
        thinking = [p for p in body if p.get("isThinking")]
        assert thinking[0]["messageTag"] == "header" and thinking[0]["messageStepId"] == 0
        assert {p["messageTag"] for p in thinking} == {"header", "summary"}
        first_final = next(i for i, p in enumerate(body) if p.get("messageTag") == "final")
        assert max(i for i, p in enumerate(body) if p.get("isThinking")) < first_final
        assert find(lines, "modelResponse")["message"] == final_text(lines) == plain_answer("what is 2+2")
        assert find(lines, "uiLayout")["willThinkLong"] is True


def test_search_scenario(client: httpx.Client) -> None:
    response = client.post(NEW, json={"message": "#search latest rust release"})
    assert "\\u003cxai:tool_usage_card\\u003e" in response.text  # Go-style escaping on the wire
    lines = parse_lines(response.text)
    body = payloads(lines)
    card_line = next(p for p in body if p.get("messageTag") == "tool_usage_card")
    match = TOOL_CARD_RE.match(card_line["token"])
    assert match and card_line["isThinking"] is True
    assert json.loads(match["args"]) == {"query": "latest rust release", "num_results": "5"}
    assert card_line["toolUsageCard"] == {"toolUsageCardId": match["id"],
                                          "webSearch": {"args": {"query": "latest rust release", "num_results": "5"}}}
    raw = next(p for p in body if p.get("messageTag") == "raw_function_result")
    assert raw["toolUsageCardId"] == match["id"] and len(raw["webSearchResults"]["results"]) == 3
    card = json.loads(find(lines, "cardAttachment")["jsonData"])
    assert card["type"] == "render_inline_citation" and card["url"] == raw["webSearchResults"]["results"][0]["url"]
    text = final_text(lines)
    assert f'<grok:render card_id="{card["id"]}" card_type="citation" type="render_inline_citation">' in text
    model = find(lines, "modelResponse")
    assert model["message"] == text
    assert model["webSearchResults"] == raw["webSearchResults"]["results"]
    assert [json.loads(c) for c in model["cardAttachmentsJson"]] == [card]


def test_image_scenario_both_forms_and_assets(client: httpx.Client, sim, account) -> None:
    lines = chat(client, "#image a red fox in snow")
    body = payloads(lines)
    assert find(lines, "imageDimensions") == {"width": 832, "height": 1248}
    progress = [p["streamingImageGenerationResponse"] for p in body if "streamingImageGenerationResponse" in p]
    assert [p["progress"] for p in progress] == [50, 50, 100, 100]
    assert all("-part-0/" in p["imageUrl"] for p in progress[:2])
    assert all("-part-" not in p["imageUrl"] and p["moderated"] is False for p in progress[2:])
    cards = [json.loads(p["cardAttachment"]["jsonData"]) for p in body if "cardAttachment" in p]
    assert [c["image_chunk"] is None for c in cards] == [True, True, False, False]
    model = find(lines, "modelResponse")
    urls = model["generatedImageUrls"]
    assert urls == [p["imageUrl"] for p in progress[2:]]
    assert all(u.startswith(f"users/{account.user_id}/generated/") for u in urls)
    assert [json.loads(c)["image_chunk"]["imageUrl"] for c in model["cardAttachmentsJson"]] == urls
    assert model["message"] == final_text(lines)
    assert model["message"].count('type="render_file"') == 2
    assert model["message"].endswith("I generated images with the prompt: 'a red fox in snow'")

    for url in [*urls, progress[0]["imageUrl"]]:
        image = client.get(f"{sim.assets_url}/{url}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:2] == b"\xff\xd8" and image.content[-2:] == b"\xff\xd9"
    assert image_size(client.get(f"{sim.assets_url}/{urls[0]}").content) == (832, 1248)
    assert httpx.get(f"{sim.assets_url}/{urls[0]}").status_code == 403


def test_moderated_image(client: httpx.Client) -> None:
    lines = chat(client, "#image #moderated something")
    finals = [p["streamingImageGenerationResponse"] for p in payloads(lines)
              if p.get("streamingImageGenerationResponse", {}).get("progress") == 100]
    assert finals and all(p["moderated"] is True for p in finals)


def test_video_scenario(client: httpx.Client, sim) -> None:
    body = {"modelName": "imagine-video-gen", "mediaGenInput": {"textToVideo": {
        "prompt": "a cat", "aspectRatio": "9:16", "duration": 6, "resolutionName": "720p"}}}
    lines = chat(client, "a cat --mode=custom", **body)
    items = payloads(lines)[4:]  # after userResponse, uiLayout, llmInfo, uiLayout
    empty = {"token": "", "messageTag": "final"}
    assert all(items[i].items() >= empty.items() for i in range(3))
    videos = [i for i, p in enumerate(items) if "streamingVideoGenerationResponse" in p]
    progress = [items[i]["streamingVideoGenerationResponse"]["progress"] for i in videos]
    assert progress == [1, 5, 13, 22, 29, 38, 46, 57, 95, 100]
    assert all(items[i + 1].items() >= empty.items() for i in videos)
    last = items[videos[-1]]["streamingVideoGenerationResponse"]
    assert last["videoUrl"].endswith("/generated_video.mp4") and last["resolutionName"] == "720p"
    assert (last["width"], last["height"]) == (720, 1280) and last["mode"] == "custom"
    soft = next(i for i, p in enumerate(items) if p.get("isSoftStop"))
    assert items[soft + 1].items() >= empty.items() and "modelResponse" in items[soft + 2]
    model = find(lines, "modelResponse")
    assert model["message"] == "I generated a video" and model["fileAttachments"] == [last["videoId"]]
    assert sim.state.ledger(sim.state.accounts["sso-token-1"].token)["charged"] == {"video720p": 1}

    video = client.get(f"{sim.assets_url}/{last['videoUrl']}", headers={"range": "bytes=0-99"})
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4"
    assert len(video.content) == 100 and video.content[4:8] == b"ftyp"
    assert video.headers["content-range"].startswith("bytes 0-99/")
    assert client.get(f"{sim.assets_url}/{last['thumbnailImageUrl']}").status_code == 200


def test_video_via_tool_override_charges_chat_mode(client: httpx.Client, sim) -> None:
    lines = chat(client, "https://imagine-public.x.ai/imagine-public/images/x.png  --mode=normal",
                 modelName="grok-3", toolOverrides={"videoGen": True})
    video = [p["streamingVideoGenerationResponse"] for p in payloads(lines) if "streamingVideoGenerationResponse" in p]
    assert video[-1]["mode"] == "normal" and video[-1]["imageReference"].startswith("https://imagine-public")
    assert find(lines, "modelResponse")["metadata"]["request_metadata"]["mode"] == "fast"
    assert sim.state.ledger("sso-token-1")["charged"] == {"fast": 1}


def test_image_edit_request_shape(client: httpx.Client, sim) -> None:
    lines = chat(client, "make it blue", modelName="imagine-image-edit",
                 mediaGenInput={"imageToImage": {"prompt": "make it blue", "inputAssets": ["f1"]}})
    assert find(lines, "progressReport")["state"] == "PROGRESS_REPORT_STATUS_PENDING"
    assert find(lines, "modelResponse")["message"] == "I edited the image"
    assert len(find(lines, "modelResponse")["generatedImageUrls"]) == 1
    assert sim.state.ledger("sso-token-1")["charged"] == {"imageEdit": 1}


def test_error_scenario(client: httpx.Client) -> None:
    lines = chat(client, "#error please")
    error = lines[-1]["result"]["response"]["error"]
    assert error["severity"] == "STREAM_ERROR_SEVERITY_FATAL"
    assert not any("modelResponse" in p or p.get("isSoftStop") for p in payloads(lines))


def test_usage_limit_scenario(client: httpx.Client) -> None:
    lines = chat(client, "#usage_limit")
    assert lines[-1]["result"]["response"]["error"] == {
        "message": "You've reached your usage limit. Please try again later."}
    assert len(lines) == 3  # conversation, userResponse, error


def test_disconnect_scenario(client: httpx.Client, sim) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(NEW, json={"message": "#disconnect hello"})
    assert sim.state.ledger()["in_flight_total"] == 0


def test_truncate_ends_cleanly_without_soft_stop(client: httpx.Client) -> None:
    lines = chat(client, "#truncate hello world")
    assert final_text(lines) and not any(p.get("isSoftStop") for p in payloads(lines))


def test_empty_final(client: httpx.Client) -> None:
    lines = chat(client, "#empty_final hello")
    assert find(lines, "modelResponse")["message"] == ""
    assert final_text(lines) == plain_answer("hello")


def test_long_answer(client: httpx.Client) -> None:
    lines = chat(client, "#long=300")
    tokens = [p for p in payloads(lines) if p.get("messageTag") == "final"]
    assert len(tokens) == 300 and final_text(lines) == lorem_answer(300)


def test_heavy_agents(client: httpx.Client, sim) -> None:
    sim.state.add_account("heavy-tok", tier="heavy")
    response = client.post(NEW, json={"message": "#heavy_agents plan a trip", "modeId": "heavy"},
                           headers={"cookie": "sso=heavy-tok; sso-rw=heavy-tok"})
    lines = parse_lines(response.text)
    body = payloads(lines)
    assert find(lines, "uiLayout")["rolloutIds"] == ["Grok", "Harper", "Benjamin", "Lucas"]
    cards = [p for p in body if p.get("messageTag") == "tool_usage_card"]
    assert len(cards) == 4 and all("chatroomSend" in p["toolUsageCard"] and p["rolloutId"] for p in cards)
    assert find(lines, "modelResponse")["message"] == final_text(lines)


def test_stall_pauses_mid_stream(client: httpx.Client) -> None:
    gaps = []
    last = time.monotonic()
    with client.stream("POST", NEW, json={"message": "#stall=0.4 one two three"}) as response:
        for _ in response.iter_lines():
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    assert max(gaps) >= 0.37  # timers may fire a millisecond early
    assert sum(1 for g in gaps if g >= 0.3) == 1


def test_custom_rules_via_control_api(client: httpx.Client, sim) -> None:
    control = httpx.Client(base_url=sim.base_url)
    rules = control.post("/__sim/rules", json={"pattern": "weather", "scenario": "search",
                                               "params": {"text": "It is sunny."}}).json()
    assert rules == [{"pattern": "weather", "scenario": "search", "params": {"text": "It is sunny."}}]
    lines = chat(client, "what's the weather")
    assert final_text(lines) == "It is sunny." and any("toolUsageCard" in p for p in payloads(lines))
    assert control.post("/__sim/rules", json={"pattern": "x", "scenario": "nope"}).status_code == 400
    control.delete("/__sim/rules")
    assert final_text(chat(client, "what's the weather")) == plain_answer("what's the weather")
