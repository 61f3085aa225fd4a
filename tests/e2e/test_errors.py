"""Every error a client can get, as the official SDK sees it: right status, OpenAI error object, useful message."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import data_uri, png

HELLO = [{"role": "user", "content": "hi"}]


def test_400_names_the_offending_field(gateway: Deployment) -> None:
    client = gateway.client()
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": HELLO, "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "messages[0].content[0].type"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="grok-4.5-fast", **body)
        error = info.value.body
        assert error["type"] == "invalid_request_error", error
        assert error["param"] == param, (body, error)
        assert error["message"]


def test_400_malformed_json_and_missing_model(gateway: Deployment) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    response = httpx.post(gateway.base_url + "/chat/completions", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(gateway.base_url + "/chat/completions", json={"messages": HELLO}, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert "Traceback" not in response.text


def test_400_bad_image_data(gateway: Deployment) -> None:
    for url in ("data:image/png;base64,@@@", data_uri(b"not an image at all")):
        with pytest.raises(openai.BadRequestError) as info:
            gateway.client().chat.completions.create(
                model="grok-4.5-fast",
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )
        assert "image_url" in info.value.body["param"]


def test_401_wrong_or_missing_key(gateway: Deployment) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="grok-4.5-fast", messages=HELLO)
    assert info.value.body["code"] == "invalid_api_key"
    response = httpx.get(gateway.base_url + "/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    # x-api-key works as well as Bearer (the Anthropic SDK's header)
    assert httpx.get(gateway.base_url + "/models", headers={"x-api-key": API_KEY}).status_code == 200


def test_404_unknown_model(gateway: Deployment) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(model="grok-99-ultra", messages=HELLO)
    assert info.value.body["code"] == "model_not_found" and "grok-99-ultra" in info.value.body["message"]


def test_413_body_too_large(gateway: Deployment) -> None:
    huge = "x" * (gateway.settings.max_request_bytes + 10)
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": huge}])
    assert info.value.status_code == 413
    assert info.value.body["code"] == "payload_too_large"


def test_413_image_over_cap(deploy) -> None:
    gateway = deploy(max_image_bytes=1000)
    gateway.add_accounts(1)
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(
            model="grok-4.5-fast",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(png(64, 64) + b"\0" * 2000)}}]}],
        )
    assert info.value.status_code == 413


def test_429_when_no_account_can_serve(deploy) -> None:
    empty = deploy()
    with pytest.raises(openai.RateLimitError) as info:
        empty.client().chat.completions.create(model="grok-4.5-fast", messages=HELLO)
    assert info.value.body["code"] == "no_account_available"
    assert "empty" in info.value.body["message"]


def test_429_when_every_account_is_exhausted(deploy, sim) -> None:
    gateway = deploy()
    (token,) = gateway.add_accounts(1, quotas={"fast": {"total": 30, "remaining": 0}})
    with pytest.raises(openai.RateLimitError) as info:
        gateway.client().chat.completions.create(model="grok-4.5-fast", messages=HELLO)
    assert info.value.status_code == 429
    assert "quota" in info.value.body["message"]
    # The gateway learned the empty quota from /rest/rate-limits and never sent the chat itself.
    ledger = sim.state.ledger(token)
    assert ledger["violation_count"] == 0 and ledger["accepted_total"] == 0


def test_502_upstream_error_before_first_byte(gateway: Deployment) -> None:
    gateway.add_accounts(3)  # failures cool accounts down (that is the point): start with healthy ones
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": "#error"}])
    assert info.value.status_code == 502
    assert info.value.body["type"] == "upstream_error" and "grok.com" in info.value.body["message"]


def test_502_mid_stream_ends_with_error_event(gateway: Deployment) -> None:
    gateway.add_accounts(3)  # failures cool accounts down (that is the point): start with healthy ones
    stream = gateway.client().chat.completions.create(
        model="grok-4.5-fast", stream=True, messages=[{"role": "user", "content": "a long answer please #long=40 #disconnect"}]
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)  # part of the answer arrived before the failure
    assert "closed" in str(info.value.message) or "broke" in str(info.value.message)


def test_mid_stream_failure_raw_sse_ends_with_error_then_done(gateway: Deployment) -> None:
    gateway.add_accounts(3)  # failures cool accounts down (that is the point): start with healthy ones
    body = {"model": "grok-4.5-fast", "stream": True, "messages": [{"role": "user", "content": "x #long=20 #disconnect"}]}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])
    assert error["error"]["type"] == "upstream_error" and error["error"]["message"]


def test_502_non_stream_mid_stream_failure(gateway: Deployment) -> None:
    gateway.add_accounts(3)  # failures cool accounts down (that is the point): start with healthy ones
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": "x #long=20 #disconnect"}]
        )
    assert info.value.status_code == 502


@pytest.fixture(scope="module")
def impatient(deploy) -> Deployment:
    return deploy(stream_idle_timeout=0.5, heartbeat_interval=0.1)


def test_504_when_upstream_stalls(impatient: Deployment) -> None:
    impatient.add_accounts(3)
    with pytest.raises(openai.APIStatusError) as info:
        impatient.client().chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": "x #long=10 #stall=3"}]
        )
    assert info.value.status_code == 504
    assert info.value.body["type"] == "timeout_error"


def test_stream_stall_sends_heartbeats_then_timeout_error(impatient: Deployment) -> None:
    impatient.add_accounts(3)
    body = {"model": "grok-4.5-fast", "stream": True, "messages": [{"role": "user", "content": "x #long=10 #stall=3"}]}
    with httpx.stream("POST", impatient.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": keep-alive" in lines
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["error"]["type"] == "timeout_error"


def test_heartbeats_keep_a_slow_stream_alive(deploy) -> None:
    gateway = deploy(stream_idle_timeout=5.0, heartbeat_interval=0.1)
    gateway.add_accounts(1)
    body = {"model": "grok-4.5-fast", "stream": True, "messages": [{"role": "user", "content": "slow #long=6 #stall=0.5"}]}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": keep-alive" in lines
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_a_held_answer_still_sends_heartbeats(deploy) -> None:
    """A JSON answer is held until it can be judged: while upstream streams it (no silence anywhere), the client
    still gets keep-alives every HEARTBEAT_INTERVAL, then the JSON and [DONE]."""
    gateway = deploy(stream_idle_timeout=5.0, heartbeat_interval=0.1)
    gateway.add_accounts(1)
    before = gateway.sim.config.token_delay
    gateway.sim.config.token_delay = (0.02, 0.02)  # a steady stream: lines every 20 ms, never a 0.1 s silence
    body = {"model": "grok-4.5-fast", "stream": True, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "a long one #long=60"}]}
    try:
        with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as response:
            lines = [line for line in response.iter_lines() if line]
    finally:
        gateway.sim.config.token_delay = before
    def has_text(line: str) -> bool:
        return line.startswith("data: {") and any(c["delta"].get("content") for c in json.loads(line[6:])["choices"])

    first_text = next(i for i, line in enumerate(lines) if has_text(line))
    assert lines[:first_text].count(": keep-alive") >= 3, lines[:first_text]
    assert lines[-1] == "data: [DONE]"


def test_ssrf_private_image_url_refused(deploy) -> None:
    gateway = deploy(allow_private_urls=False)
    gateway.add_accounts(1)
    for url in ("http://127.0.0.1:9/x.png", "http://169.254.169.254/latest/meta-data", "http://[::1]/a.png",
                "file:///etc/passwd"):
        with pytest.raises(openai.BadRequestError) as info:
            gateway.client().chat.completions.create(
                model="grok-4.5-fast",
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )
        assert "image_url" in info.value.body["param"], url
