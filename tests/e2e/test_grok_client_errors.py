"""What clients read when the connection to grok.com fails: plain sentences, never libcurl's internals."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from curl_cffi.curl import CurlError
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import Timeout as CurlTimeout

from core.chat import stream_error
from core.errors import FailureKind, UpstreamError
from core.grok.client import ChatCall, Credentials, GrokClient, _network_error, _plain
from core.grok.events import StreamError
from core.settings import Settings
from simulator.runner import SimulatorServer
from tests.e2e.conftest import API_KEY, Deployment
from tests.support.net import free_port

CURL_INTERNALS = ("curl:", "libcurl", "(18)", "(7)", "(28)", "outstanding read data", "127.0.0.1")


def assert_plain(message: str) -> None:
    for internal in CURL_INTERNALS:
        assert internal not in message, f"{internal!r} in {message!r}"


async def run_turn(settings: Settings, creds: Credentials, message: str) -> None:
    grok = GrokClient(settings)
    try:
        async for event in grok.chat(creds, ChatCall(message=message, mode="fast")):
            if isinstance(event, StreamError):
                raise stream_error(event)
    finally:
        await grok.aclose()


def sim_settings(sim: SimulatorServer, **overrides: object) -> Settings:
    return Settings(grok_base_url=sim.base_url, grok_assets_url=sim.assets_url, grok_ws_url=sim.ws_url, **overrides)


@pytest.mark.parametrize("transport", ["rest", "mgw"])
async def test_stream_cut_mid_answer_is_a_plain_sentence(sim: SimulatorServer, transport: str, caplog) -> None:
    token = f"cut-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    settings = sim_settings(sim, chat_transport=transport)
    with caplog.at_level(logging.WARNING, logger="grok2api"), pytest.raises(UpstreamError) as caught:
        await run_turn(settings, Credentials(token=token, account_id=token[-12:]), "x #long=40 #disconnect")
    assert caught.value.kind is FailureKind.STREAM
    assert "grok.com" in caught.value.message and ("closed" in caught.value.message or "broke" in caught.value.message)
    assert_plain(caught.value.message)


async def test_refused_connection_is_a_plain_sentence(caplog) -> None:
    port = free_port()
    settings = Settings(grok_base_url=f"http://127.0.0.1:{port}", grok_ws_url=f"ws://127.0.0.1:{port}/ws")
    with caplog.at_level(logging.WARNING, logger="grok2api"), pytest.raises(UpstreamError) as caught:
        await run_turn(settings, Credentials(token="t" * 20, account_id="a"), "hi")
    assert caught.value.kind is FailureKind.NETWORK
    assert caught.value.message == "could not reach grok.com: the connection failed or was refused (during chat)"
    assert "curl: (7)" in caplog.text  # the raw text is kept for the operator


@pytest.mark.parametrize(("exc", "expected"), [
    (CurlTimeout("Failed to perform, curl: (28) Connection timed out after 1001 milliseconds.", 28),
     "timed out connecting to grok.com (during chat)"),
    (CurlTimeout("Failed to perform, curl: (28) Operation timed out after 30000 milliseconds with 0 bytes", 28),
     "timed out waiting for grok.com (during chat)"),
    (CurlConnectionError("Failed to perform, curl: (6) Could not resolve host: grok.com.", 6),
     "could not reach grok.com: its address did not resolve (during chat)"),
    (CurlConnectionError("Failed to perform, curl: (35) BoringSSL: error:10000410", 35),
     "could not reach grok.com: the TLS handshake failed (during chat)"),
    (CurlConnectionError("Failed to perform, curl: (97) Can't complete SOCKS5 connection to 10.0.0.1", 97),
     "could not reach grok.com: the proxy refused the connection (during chat)"),
    (CurlConnectionError("Failed to perform, curl: (99) something new", 99),
     "could not reach grok.com: network error (during chat)"),
])
def test_request_errors_map_to_sentences(exc: Exception, expected: str) -> None:
    assert _network_error(exc, "chat").message == expected


@pytest.mark.parametrize(("code", "expected"), [
    (18, "grok.com closed the connection mid-answer"),
    (56, "grok.com closed the connection mid-answer"),
    (92, "grok.com reset the HTTP/2 stream mid-answer"),
    (0, "the connection to grok.com broke mid-answer"),
])
def test_stream_errors_map_to_sentences(code: int, expected: str) -> None:
    text = f"Failed to perform, curl: ({code}) transfer closed with outstanding read data remaining" if code else "?"
    assert _plain(CurlError(text, code), "chat stream", mid_answer=True) == expected


def test_client_sees_the_sentence_through_the_gateway(gateway: Deployment) -> None:
    gateway.add_accounts(2)
    body = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "x #long=20 #disconnect"}]}
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 502, response.text
    assert_plain(response.text)
    assert "grok.com" in response.json()["error"]["message"]
