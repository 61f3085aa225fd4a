"""Scripted replies: per-account and global queues consumed one per admitted chat turn, REST and mgw alike."""

from __future__ import annotations

import httpx
import pytest
import websockets

from simulator.client import SimControl
from simulator.text import plain_answer, tokenize
from tests.simulator.helpers import OTHER_TOKEN, TOKEN, chat, cookies, final_text, find, parse_lines, payloads
from tests.simulator.test_websockets import ask, mgw_headers, open_session


def _answer(client: httpx.Client, message: str = "hello", mode: str = "fast") -> str:
    lines = chat(client, message, modeId=mode)
    assert find(lines, "modelResponse")["message"] == final_text(lines)
    return final_text(lines)


def _mgw_answer(events: list[dict]) -> str:
    return next(e["text"] for e in events if e["type"] == "response.output_text.done")


def test_replies_consumed_in_order_per_account_then_global(client: httpx.Client, sim) -> None:
    sim.state.add_account(OTHER_TOKEN)
    sim.state.script_replies(TOKEN, ["first", "second"])
    sim.state.script_replies(None, ["for anyone"])
    sim.state.script_replies(OTHER_TOKEN, ["other's"])
    with httpx.Client(base_url=sim.base_url, headers={"cookie": cookies(OTHER_TOKEN)}, timeout=10) as other:
        assert _answer(other) == "other's"
        assert [_answer(client) for _ in range(3)] == ["first", "second", "for anyone"]
        assert _answer(client, "after the queue") == plain_answer("after the queue")
        assert _answer(other, "x") == plain_answer("x")
    assert sim.state.scripted_replies() == {"global": [], "accounts": {}}


def test_reply_is_tokenized_recorded_and_charged_like_any_turn(client: httpx.Client, sim) -> None:
    text = "Line one.\n\nLine two with 日本語 text."
    sim.state.script_replies(TOKEN, [text])
    lines = chat(client, "hello", modeId="fast")
    tokens = [p["token"] for p in payloads(lines) if p.get("messageTag") == "final" and p["token"]]
    assert tokens == tokenize(text)
    conversation_id = lines[0]["result"]["conversation"]["conversationId"]
    assert sim.state.conversations[conversation_id].turns[0].answer == text
    _answer(client)  # an unscripted turn costs the same
    ledger = sim.state.ledger(TOKEN)
    assert ledger["accepted"] == {"fast": 2} and ledger["charged"] == {"fast": 2}
    assert sim.state.quota(TOKEN, "fast").remaining == 140 - 2


def test_refused_requests_consume_nothing(client: httpx.Client, sim) -> None:
    sim.state.script_replies(TOKEN, ["kept"])
    sim.state.set_quota(TOKEN, "fast", remaining=0)
    assert client.post("/rest/app-chat/conversations/new", json={"message": "hi", "modeId": "fast"}).status_code == 429
    sim.state.set_fault(TOKEN, 503, times=1)
    assert client.post("/rest/app-chat/conversations/new", json={"message": "hi", "modeId": "auto"}).status_code == 503
    assert sim.state.scripted_replies()["accounts"] == {TOKEN: [{"text": "kept", "thinking": None}]}
    assert _answer(client, mode="auto") == "kept"
    assert sim.state.ledger(TOKEN)["violation_count"] == 1  # the 429 was the gateway's fault, as usual


def test_concurrency_refusal_keeps_the_reply(client: httpx.Client, sim) -> None:
    sim.state.set_concurrency_limit(TOKEN, 1)
    sim.state.script_replies(TOKEN, ["slow one", "second"])
    with client.stream("POST", "/rest/app-chat/conversations/new", json={"message": "#stall=1 a", "modeId": "fast"}) \
            as slow:
        refused = client.post("/rest/app-chat/conversations/new", json={"message": "b", "modeId": "fast"})
        assert refused.status_code == 429
        slow.read()
    assert _answer(client) == "second"


def test_thinking_form_streams_reasoning_first(client: httpx.Client, sim) -> None:
    sim.state.script_replies(TOKEN, [{"text": "The answer is 4.", "thinking": "2 plus 2 is 4."}])
    lines = chat(client, "what is 2+2", modeId="fast")
    body = payloads(lines)
    thinking = [p for p in body if p.get("isThinking") and "token" in p]
    assert "".join(p["token"] for p in thinking if p.get("messageTag") != "header").strip().endswith("2 plus 2 is 4.")
    first_answer = next(i for i, p in enumerate(body) if p.get("messageTag") == "final" and p.get("token"))
    assert body.index(thinking[-1]) < first_answer
    assert final_text(lines) == "The answer is 4."


def test_markers_still_add_faults(client: httpx.Client, sim) -> None:
    sim.state.script_replies(TOKEN, ["one two three four five six"])
    lines = chat(client, "#error go", modeId="fast")
    assert lines[-1]["result"]["response"]["error"]["severity"] == "STREAM_ERROR_SEVERITY_FATAL"
    assert final_text(lines) == "one two three"  # half the scripted answer, then the error
    assert not any("modelResponse" in p for p in payloads(lines))


def test_media_turns_leave_the_queue_alone(client: httpx.Client, sim) -> None:
    sim.state.script_replies(TOKEN, ["text turn"])
    assert final_text(chat(client, "#image a cat", modeId="fast")).endswith("I generated images with the prompt: 'a cat'")
    assert _answer(client) == "text turn"


def test_expert_mode_keeps_its_thinking(client: httpx.Client, sim) -> None:
    sim.state.script_replies(None, ["scripted"])
    lines = chat(client, "deep question", modeId="expert")
    assert any(p.get("isThinking") for p in payloads(lines)) and final_text(lines) == "scripted"


async def test_mgw_and_rest_share_the_queue(sim, account) -> None:
    sim.state.script_replies(TOKEN, ["over mgw", {"text": "mgw thinks", "thinking": "Pondering."}, "over rest"])
    async with websockets.connect(f"{sim.ws_url}?uid={account.user_id}",
                                  additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "fast")
        assert _mgw_answer(await ask(ws, "hi")) == "over mgw"
        events = await ask(ws, "again")
        channels = [e["chunk"]["text"]["channel"] for e in events if "text" in e.get("chunk", {})]
        assert channels.index("CHANNEL_ANALYSIS") < channels.index("CHANNEL_ASSISTANT_RESPONSE")
        analysis = "".join(e["chunk"]["text"]["text"] for e in events if "text" in e.get("chunk", {})
                           and e["chunk"]["text"]["channel"] == "CHANNEL_ANALYSIS")
        assert "Pondering." in analysis and _mgw_answer(events) == "mgw thinks"
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"cookie": cookies(TOKEN)}) as client:
        response = await client.post("/rest/app-chat/conversations/new", json={"message": "x", "modeId": "fast"})
        assert final_text(parse_lines(response.text)) == "over rest"
    assert sim.state.ledger(TOKEN)["charged"] == {"fast": 3}


def test_control_endpoint_and_client(sim, account) -> None:
    with SimControl(sim.base_url) as control:
        state = control.script_replies(TOKEN, ["a", {"text": "b", "thinking": "t"}])
        assert state["accounts"][TOKEN] == [{"text": "a", "thinking": None}, {"text": "b", "thinking": "t"}]
        control.script_replies(None, ["g"])
        assert control.script_replies(TOKEN, ["c"], replace=True)["accounts"][TOKEN] == [
            {"text": "c", "thinking": None}]
        assert control.scripted_replies()["global"] == [{"text": "g", "thinking": None}]
        assert control.clear_replies(None) == {"global": [], "accounts": {TOKEN: [{"text": "c", "thinking": None}]}}
        control.script_replies(None, ["g2"])
        assert control.clear_replies(TOKEN) == {"global": [{"text": "g2", "thinking": None}], "accounts": {}}
        control.script_replies(TOKEN, ["x"])
        assert control.clear_replies() == {"global": [], "accounts": {}}
        for bad in ({"token": TOKEN}, {"token": 3, "replies": []}, {"replies": [{"txt": "typo"}]},
                    {"replies": [7]}):
            with pytest.raises(httpx.HTTPStatusError) as caught:
                control._call("POST", "/replies", bad)
            assert caught.value.response.status_code == 400
        control.script_replies(TOKEN, ["over http"])
    with httpx.Client(base_url=sim.base_url, headers={"cookie": cookies(TOKEN)}) as client:
        assert _answer(client) == "over http"
    sim.state.script_replies(None, ["left over"])
    sim.state.reset()
    assert sim.state.scripted_replies() == {"global": [], "accounts": {}}
