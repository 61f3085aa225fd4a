"""The Imagine WebSocket client against scripted frames over a real socket: the frame shapes §9 allows beyond
what the simulator sends (no percentage on a final frame, a final given only by URL, unknown and malformed
frames, more jobs than asked for, an error frame before and after admission)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from core.errors import FailureKind, UpstreamError
from core.grok import imagine
from core.grok.client import Credentials, GrokClient
from core.settings import Settings
from simulator import media
from tests.support.asgi import ThreadedServer

FINAL = media.jpeg(64, 64, (10, 200, 10), 20_000)
BY_URL = media.jpeg(64, 64, (200, 10, 10), 20_000)
PREVIEW = media.jpeg(16, 16, (10, 200, 10), 2_000)
SCRIPT: list[object] = []
SENT: list[dict] = []


async def listen(ws: WebSocket) -> None:
    await ws.accept()
    SENT.append(json.loads(await ws.receive_text()))  # reset
    SENT.append(json.loads(await ws.receive_text()))  # request
    for frame in SCRIPT:
        await ws.send_text(frame if isinstance(frame, str) else json.dumps(frame))
    try:
        await ws.receive_text()  # hold the socket open until the client closes it
    except Exception:
        pass


async def session(request: Request) -> Response:
    return JSONResponse({"status": "authenticated", "session": {"userId": "user-1"}})


async def asset(request: Request) -> Response:
    if "sso=tok" not in request.headers.get("cookie", ""):
        return Response("forbidden", 403)
    return Response(BY_URL, media_type="image/jpeg")


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    app = Starlette(routes=[
        WebSocketRoute("/ws/imagine/listen", listen),
        Route("/api/auth/session", session),
        Route("/users/user-1/generated/{id}/image.jpg", asset),
    ])
    with ThreadedServer(app) as running:
        yield running


async def _run(server: ThreadedServer, frames: list[object], count: int) -> tuple[list, imagine.Progress]:
    SCRIPT[:] = frames
    SENT.clear()
    settings = Settings(grok_base_url=server.url, grok_assets_url=server.url, stream_idle_timeout=1.0,
                        grok_imagine_ws_url=server.url.replace("http", "ws") + "/ws/imagine/listen")
    client = GrokClient(settings)
    progress = imagine.Progress()
    try:
        request = imagine.ImagineRequest(prompt="a fox", count=count, aspect_ratio="16:9", pro=True)
        events = [e async for e in imagine.generate(client, Credentials(token="tok"), request, progress)]
    finally:
        await client.aclose()
    return events, progress


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_lenient_frames_and_final_shapes(server: ThreadedServer) -> None:
    frames = [
        {"type": "session", "conversation_id": "c1"},
        "not json at all",
        {"type": "something_new", "job_id": "x"},
        {"type": "json", "current_status": "start_stage", "job_id": "a", "percentage_complete": 0, "width": 64,
         "height": 64, "full_prompt": "a fox, detailed"},
        {"type": "json", "current_status": "start_stage", "job_id": "b", "percentage_complete": 0},
        {"type": "image", "job_id": "a", "blob": _b64(PREVIEW), "percentage_complete": 40},
        {"type": "image", "image_id": "a", "blob": _b64(FINAL)},  # no percentage: the final (GO's rule)
        {"type": "json", "current_status": "completed", "job_id": "b",
         "url": f"{server.url}/users/user-1/generated/b/image.jpg"},  # final only by URL (needs the cookies)
        {"type": "json", "current_status": "completed", "job_id": "a", "moderated": False},
        {"type": "json", "current_status": "start_stage", "job_id": "c"},  # more jobs than asked: ignored
    ]
    events, progress = await _run(server, frames, 2)
    assert progress.accepted
    partial, first, second = events
    assert isinstance(partial, imagine.Partial) and partial.index == 0
    assert isinstance(first, imagine.Final) and first.data == BY_URL and first.index == 1
    assert isinstance(second, imagine.Final) and second.data == FINAL and second.revised_prompt == "a fox, detailed"
    request = SENT[1]["item"]["content"][0]
    assert SENT[0]["item"]["content"][0]["type"] == "reset"
    assert request["properties"]["aspect_ratio"] == "16:9" and request["properties"]["enable_pro"] is True
    assert request["properties"]["num_generations"] == 2 and request["text"] == "a fox"


async def test_moderated_job_and_silence_keep_what_arrived(server: ThreadedServer) -> None:
    frames = [
        {"type": "json", "current_status": "start_stage", "job_id": "a"},
        {"type": "json", "current_status": "completed", "job_id": "a", "moderated": True},
        {"type": "json", "current_status": "start_stage", "job_id": "b"},
        {"type": "image", "job_id": "b", "blob": _b64(PREVIEW), "percentage_complete": 50},
    ]  # then silence: job b never finishes
    events, _ = await _run(server, frames, 2)
    assert [type(e) for e in events] == [imagine.Moderated, imagine.Partial]


async def test_refusal_before_admission_is_not_accepted(server: ThreadedServer) -> None:
    with pytest.raises(UpstreamError) as info:
        await _run(server, [{"type": "error", "err_code": "rate_limit_exceeded", "err_msg": "Too many requests"}], 1)
    assert info.value.kind is FailureKind.RATE_LIMITED
    SCRIPT[:] = []


async def test_error_after_admission_is_accepted(server: ThreadedServer) -> None:
    frames = [{"type": "json", "current_status": "start_stage", "job_id": "a"},
              {"type": "error", "err_code": "internal_error", "err_msg": "boom"}]
    settings = Settings(grok_base_url=server.url, grok_assets_url=server.url, stream_idle_timeout=1.0,
                        grok_imagine_ws_url=server.url.replace("http", "ws") + "/ws/imagine/listen")
    SCRIPT[:] = frames
    client = GrokClient(settings)
    progress = imagine.Progress()
    try:
        with pytest.raises(UpstreamError) as info:
            request = imagine.ImagineRequest(prompt="x", count=1)
            [e async for e in imagine.generate(client, Credentials(token="tok"), request, progress)]
    finally:
        await client.aclose()
    assert info.value.kind is FailureKind.STREAM and progress.accepted
