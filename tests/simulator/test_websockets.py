"""The mgw chat WebSocket and the Imagine WebSocket, driven with the ``websockets`` client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
import websockets

from simulator.media import image_size
from simulator.text import plain_answer
from tests.simulator.helpers import TOKEN, cookies

MGW_SEQUENCE_HEAD = [
    "conversation.queue.updated", "conversation.item.added", "response.created", "response.output_item.added",
    "response.content_part.added",
]
MGW_SEQUENCE_TAIL = [
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.done",
    "response.persisted", "conversation.title.updated", "response.chunk",
]


def mgw_headers(account) -> dict[str, str]:
    return {"Cookie": cookies(TOKEN, **{"x-userid": account.user_id}), "Origin": "https://grok.com"}


async def send(ws, kind: str, **fields: Any) -> None:
    frame: dict[str, Any] = {"event": {"type": kind, "event_id": f"evt_{kind}", **fields}}
    await ws.send(json.dumps(frame))


async def recv(ws) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def open_session(ws, model: str = "fast", **x_grok: Any) -> str:
    await send(ws, "session.create", session={"model": model, "x_grok": {"use_chunk": True, **x_grok}})
    created, attached = await recv(ws), await recv(ws)
    assert created["event"]["type"] == "session.created" and created["event"]["client_event_id"] == "evt_session.create"
    assert attached["event"]["type"] == "conversation.attached"
    assert attached["event"]["conversation"] == {"id": created["session_id"], "object": "realtime.conversation"}
    return created["session_id"]


async def ask(ws, text: str, parent: str | None = None) -> list[dict[str, Any]]:
    item = {"type": "message", "role": "user",
            "x_grok": {"client_message_id": "m1", "input_chunks": [{"text": {"text": text}}]}}
    await send(ws, "conversation.item.create", item=item, **({"parent_response_id": parent} if parent else {}))
    await send(ws, "response.create")
    events = []
    while True:
        event = (await recv(ws))["event"]
        events.append(event)
        if event["type"] == "error" or (event["type"] == "response.chunk" and "follow_up_suggestions" in event["chunk"]):
            return events


async def test_mgw_full_sequence_and_continue(sim, account) -> None:
    url = f"{sim.ws_url}?uid={account.user_id}"
    async with websockets.connect(url, additional_headers=mgw_headers(account)) as ws:
        conv_id = await open_session(ws, "fast")
        events = await ask(ws, "Hello mgw")
        kinds = [e["type"] for e in events]
        assert kinds[:5] == MGW_SEQUENCE_HEAD and kinds[-7:] == MGW_SEQUENCE_TAIL
        answer = [e["chunk"]["text"]["text"] for e in events
                  if e["type"] == "response.chunk" and e["chunk"].get("text", {}).get("channel")
                  == "CHANNEL_ASSISTANT_RESPONSE"]
        done = {e["type"]: e for e in events}
        assert "".join(answer) == done["response.output_text.done"]["text"] == plain_answer("Hello mgw")
        response_id = done["response.done"]["response"]["id"]
        assert done["response.done"]["response"] == {"id": response_id, "status": "completed", "usage": {}}
        assert done["response.created"]["response"]["status"] == "in_progress"

        await send(ws, "ping")
        assert (await recv(ws))["event"]["type"] == "pong"

        second = await ask(ws, "And again", parent=response_id)
        assert "conversation.title.updated" not in [e["type"] for e in second]
        added = next(e for e in second if e["type"] == "conversation.item.added")
        assert added["previous_item_id"] == response_id

    turns = sim.state.conversations[conv_id].turns
    assert [t.transport for t in turns] == ["mgw", "mgw"] and turns[1].parent_response_id == response_id
    assert sim.state.ledger(TOKEN)["charged"] == {"fast": 2}

    # A new socket can load the existing conversation.
    async with websockets.connect(url, additional_headers=mgw_headers(account)) as ws:
        await send(ws, "session.create", session={"model": "fast", "x_grok": {
            "conversation_id": conv_id, "load_existing": True}})
        assert (await recv(ws))["session_id"] == conv_id
        assert (await recv(ws))["event"]["mode"] == "existing"
        third = await ask(ws, "third", parent=response_id)
        assert third[-1]["type"] == "response.chunk"


async def test_mgw_reasoning_and_search_chunks(sim, account) -> None:
    async with websockets.connect(f"{sim.ws_url}?uid={account.user_id}",
                                  additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "expert")
        events = await ask(ws, "#search grok news")
        chunks = [e["chunk"] for e in events if e["type"] == "response.chunk"]
        channels = {c["text"]["channel"] for c in chunks if "text" in c}
        assert {"CHANNEL_ASSISTANT_NOTETAKER_HEADER", "CHANNEL_ASSISTANT_RESPONSE"} <= channels
        card = next(c["tool_usage_card"] for c in chunks if "tool_usage_card" in c)
        assert card["web_search"]["args"]["query"] == "grok news"
        result = next(c["tool_result"] for c in chunks if "tool_result" in c)
        assert result["tool_call_id"] == card["tool_usage_card_id"]
        assert {"url", "title", "snippet"} <= set(result["web_search"]["webpages"][0])
        citation = next(c["render_citation"] for c in chunks if "render_citation" in c)
        assert citation["kind"] == "CITATION_KIND_WEB_PAGE" and citation["url"] == result["web_search"]["webpages"][0]["url"]

        events = await ask(ws, "#reasoning think first")
        channels = [e["chunk"]["text"]["channel"] for e in events if "text" in e.get("chunk", {})]
        assert channels.index("CHANNEL_ANALYSIS") < channels.index("CHANNEL_ASSISTANT_RESPONSE")
        assert "CHANNEL_ASSISTANT_NOTETAKER_SUMMARY" in channels


async def test_mgw_errors_are_events(sim, account) -> None:
    sim.state.set_quota(TOKEN, "fast", remaining=0)
    async with websockets.connect(f"{sim.ws_url}?uid={account.user_id}",
                                  additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "fast")
        events = await ask(ws, "hi")
        assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "rate_limit_exceeded"
        sim.config.mgw_anti_bot = True
        await send(ws, "session.create", session={"model": "auto"})
        await recv(ws), await recv(ws)
        events = await ask(ws, "hi")
        assert events[-1]["error"] == {"code": "anti_bot", "message": "anti-bot rejected"}
        sim.config.mgw_anti_bot = False
        events = await ask(ws, "#error boom")
        assert events[-1]["type"] == "error" and "response.done" not in [e["type"] for e in events]
    assert sim.state.ledger(TOKEN)["violations"][0]["kind"] == "quota_exhausted"


async def test_mgw_stall_disconnect_and_client_leaving(sim, account) -> None:
    url = f"{sim.ws_url}?uid={account.user_id}"
    async with websockets.connect(url, additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "fast")
        start = asyncio.get_running_loop().time()
        events = await ask(ws, "#stall=0.3 slow answer")
        assert asyncio.get_running_loop().time() - start >= 0.28
        assert events[-1]["type"] == "response.chunk"
        await send(ws, "conversation.item.create", item={"type": "message", "role": "user", "x_grok": {
            "input_chunks": [{"text": {"text": "#disconnect bye"}}]}})
        await send(ws, "response.create")
        with pytest.raises(websockets.ConnectionClosedError) as info:
            while True:
                await recv(ws)
        assert info.value.rcvd.code == 1011
    async with websockets.connect(url, additional_headers=mgw_headers(account)) as ws:
        await open_session(ws, "fast")
        await send(ws, "conversation.item.create", item={"type": "message", "role": "user", "x_grok": {
            "input_chunks": [{"text": {"text": "#stall=5 hold on"}}]}})
        await send(ws, "response.create")
        while (await recv(ws))["event"]["type"] != "response.chunk":
            pass
        assert sim.state.ledger(TOKEN)["in_flight"] == 1
    for _ in range(100):
        if sim.state.ledger(TOKEN)["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.state.ledger(TOKEN)["in_flight"] == 0


@pytest.mark.parametrize("case", ["no_cookie", "no_userid", "wrong_uid", "blocked"])
async def test_mgw_handshake_refused(sim, account, case: str) -> None:
    headers = mgw_headers(account)
    uid = account.user_id
    if case == "no_cookie":
        headers = {}
    elif case == "no_userid":
        headers = {"Cookie": cookies(TOKEN)}
    elif case == "wrong_uid":
        uid = "00000000-0000-4000-8000-000000000000"
    else:
        sim.state.block(TOKEN)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{sim.ws_url}?uid={uid}", additional_headers=headers):
            pass
    assert info.value.response.status_code == (403 if case == "blocked" else 401)


async def imagine_request(ws, prompt: str, **properties: Any) -> None:
    await ws.send(json.dumps({"type": "conversation.item.create", "timestamp": 1,
                              "item": {"type": "message", "content": [{"type": "reset"}]}}))
    await ws.send(json.dumps({"type": "conversation.item.create", "timestamp": 2, "item": {
        "type": "message", "content": [{"requestId": "r1", "text": prompt, "type": "input_text",
                                        "properties": {"aspect_ratio": "2:3", **properties}}]}}))


async def test_imagine_frames(sim, account) -> None:
    async with websockets.connect(sim.imagine_ws_url, additional_headers=mgw_headers(account), max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        await imagine_request(ws, "a fox", num_generations=2)
        frames = []
        while sum(f.get("current_status") == "completed" for f in frames) < 2:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    jobs = {f["job_id"] for f in frames}
    assert len(jobs) == 2
    for job in jobs:
        mine = [f for f in frames if f["job_id"] == job]
        assert mine[0]["current_status"] == "start_stage" and mine[-1]["current_status"] == "completed"
        blobs = [base64.b64decode(f["blob"]) for f in mine if f["type"] == "image"]
        sizes = [len(b) for b in blobs]
        assert sizes == sorted(sizes) and sizes[0] < 30_000 <= sizes[1] < 100_000 <= sizes[2]
        assert image_size(blobs[-1]) == (832, 1248)
        async with httpx.AsyncClient() as plain:  # imagine-public needs no cookies
            public = await plain.get(mine[-1]["url"])
        assert public.status_code == 200 and public.headers["content-type"] == "image/jpeg"
    order = [f["job_id"] for f in frames if f["type"] == "image"]
    assert order[0] != order[1], "jobs interleave"
    assert sim.state.ledger(TOKEN)["charged"] == {"image": 1}


async def test_imagine_moderated_error_blocked_and_quota(sim, account) -> None:
    async with websockets.connect(sim.imagine_ws_url, additional_headers=mgw_headers(account), max_size=None) as ws:
        await ws.recv()
        await imagine_request(ws, "#moderated x", num_generations=1, enable_pro=True)
        frames = [json.loads(await ws.recv()) for _ in range(3)]
        assert frames[-1]["current_status"] == "completed" and frames[-1]["moderated"] is True
        assert "url" not in frames[-1]

        await imagine_request(ws, "#error x", num_generations=1)
        assert json.loads(await ws.recv())["type"] == "error"

        await imagine_request(ws, "#blocked x", num_generations=1)
        frames = [json.loads(await ws.recv()) for _ in range(3)]
        assert [f.get("percentage_complete") for f in frames] == [0.0, 33.0, 66.0]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)

        sim.state.set_quota(TOKEN, "image", remaining=0)
        await imagine_request(ws, "x", num_generations=1)
        assert json.loads(await ws.recv()) == {"type": "error", "err_code": "rate_limit_exceeded",
                                               "err_msg": "Too many requests"}
    assert sim.state.ledger(TOKEN)["charged"] == {"imagePro": 1, "image": 2}


async def test_imagine_handshake_refused_without_cookie(sim, account) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(sim.imagine_ws_url):
            pass
    assert info.value.response.status_code == 401
