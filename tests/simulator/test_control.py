"""The /__sim control API, request recording, the CLI, and the pure helpers (text rule, JPEG encoder)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulator.media import color_for, image_size, jpeg
from simulator.text import make_title, plain_answer, tokenize
from tests.simulator.helpers import NEW, STATSIG, TOKEN, chat, cookies, find, parse_lines

ROOT = Path(__file__).resolve().parents[2]


def test_accounts_quota_and_config_over_http(sim) -> None:
    control = httpx.Client(base_url=sim.base_url + "/__sim")
    created = control.post("/accounts", json={"token": "t1", "tier": "basic", "quotas": {"fast": 2},
                                              "concurrency_limit": 4})
    assert created.status_code == 201 and created.json()["quotas"]["fast"]["total"] == 2
    assert control.post("/accounts/t1/quota", json={"mode": "expert", "remaining": 1}).json()["remaining"] == 1
    assert control.post("/accounts/t1/quota", json={"mode": "bogus", "total": 1}).status_code == 400
    assert control.post("/accounts/nope/quota", json={"mode": "fast", "total": 1}).status_code == 404
    assert control.get("/accounts/t1").json()["concurrency_limit"] == 4
    control.post("/accounts/t1/block", json={"blocked": True})
    assert httpx.post(sim.base_url + NEW, json={"message": "x"}, headers={"cookie": cookies("t1")}).status_code == 403
    assert control.delete("/accounts/t1").status_code == 200
    assert control.get("/accounts").json() == []

    config = control.patch("/config", json={"token_delay": [0.01, 0.02], "cloudflare": True}).json()
    assert config["token_delay"] == [0.01, 0.02] and config["cloudflare"] is True
    assert control.patch("/config", json={"preset": "fast"}).json()["token_delay"] == [0.0, 0.0]
    assert control.patch("/config", json={"no_such_knob": 1}).status_code == 400
    assert control.post("/clock", json={"advance": 5}).json()["offset"] == 5
    assert control.post("/reset").json() == {"ok": True}
    assert sim.state.clock.offset == 0


def test_request_headers_are_recorded(client: httpx.Client, sim) -> None:
    headers = {"x-statsig-id": STATSIG, "x-xai-request-id": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
               "user-agent": "UA/1", "origin": "https://grok.com", "referer": "https://grok.com/"}
    client.post(NEW, json={"message": "hi"}, headers=headers)
    client.post("/rest/rate-limits", json={"modelName": "fast"})
    recorded = httpx.get(sim.base_url + "/__sim/requests", params={"path": "/rest/app-chat"}).json()
    assert len(recorded) == 1
    entry = recorded[0]
    assert entry["method"] == "POST" and entry["status"] == 200 and entry["transport"] == "http"
    for key, value in headers.items():
        assert entry["headers"][key] == value
    assert entry["headers"]["cookie"] == cookies(TOKEN)
    assert entry["headers"]["content-type"] == "application/json"
    assert [r["path"] for r in sim.state.requests(limit=1)] == ["/rest/rate-limits"]
    httpx.delete(sim.base_url + "/__sim/requests")
    assert sim.state.requests() == []


def test_conversation_inspection(client: httpx.Client, sim) -> None:
    conv_id = chat(client, "inspect me")[0]["result"]["conversation"]["conversationId"]
    conv = httpx.get(f"{sim.base_url}/__sim/conversations/{conv_id}").json()
    assert conv["turns"][0]["message"] == "inspect me"
    assert conv["turns"][0]["answer"] == plain_answer("inspect me")


def test_plain_answer_rule() -> None:
    assert plain_answer("hi") == "You said: hi  \n\nThis is a simulated Grok reply."
    assert plain_answer("[system]\nbe nice\n\n[user]\n  What   is  #reasoning up?  \n") == (
        "You said: What is up?  \n\nThis is a simulated Grok reply.")
    assert plain_answer("#1 song #stall=3") == "You said: #1 song  \n\nThis is a simulated Grok reply."
    assert plain_answer("") == "You said: nothing  \n\nThis is a simulated Grok reply."
    assert plain_answer("x" * 500).count("x") == 200
    assert make_title("https://example.com/a.png  a dancing cat --mode=custom") == "A Dancing Cat"
    assert make_title("你好世界，今天天气") == "你好世界，今"


@pytest.mark.parametrize("text", ["Hello, world!  \n\nNext line", "混合 text 和中文。😄", "  lead", "a\tb\r\nc", ""])
def test_tokenize_round_trips(text: str) -> None:
    assert "".join(tokenize(text)) == text


def test_jpeg_encoder() -> None:
    for width, height in ((1, 1), (13, 7), (832, 1248)):
        data = jpeg(width, height, color_for(f"{width}"))
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        assert image_size(data) == (width, height)
    assert len(jpeg(64, 64, min_size=40_000)) == 40_000


def test_cli_runs_standalone() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--demo-token", "demo", "--fast"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/__sim/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.02)
        response = httpx.post(base + NEW, json={"message": "cli"}, headers={"cookie": cookies("demo")})
        assert response.status_code == 200 and response.headers["server"] == "cloudflare"
        assert "uvicorn" not in response.headers.get("server", "")
        assert find(parse_lines(response.text), "modelResponse")["message"] == plain_answer("cli")
    finally:
        process.terminate()
        process.wait(5)


def test_sim_control_client(sim) -> None:
    from simulator.client import SimControl

    with SimControl(sim.base_url) as control:
        assert control.health()
        control.add_account("c1", tier="basic", concurrency_limit=1)
        control.set_quota("c1", "fast", total=1)
        control.configure(preset="fast")
        control.add_rule("ping", "plain", text="pong")
        ok = httpx.post(sim.base_url + NEW, json={"message": "ping", "modeId": "fast"}, headers={"cookie": cookies("c1")})
        assert find(parse_lines(ok.text), "modelResponse")["message"] == "pong"
        assert httpx.post(sim.base_url + NEW, json={"message": "x", "modeId": "fast"},
                          headers={"cookie": cookies("c1")}).status_code == 429
        assert control.ledger("c1")["violation_count"] == 1
        assert control.requests(path="/rest", limit=1)[0]["status"] == 429
        control.advance_time(86400)
        assert control.account("c1")["quotas"]["fast"]["remaining"] == 1
        control.reset()
        assert control.ledger()["accounts"] == {}
