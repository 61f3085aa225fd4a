"""The Grok Web client against the simulator: headers and cookies per the protocol reference, uploads, quota
calls, asset downloads, and classification of every refusal."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest

from core.chat import stream_error
from core.errors import FailureKind, UpstreamError
from core.grok.client import ChatCall, Credentials, GrokClient
from core.grok.events import AnswerText, ConversationStarted, FinalMessage, StreamError
from core.settings import Settings
from simulator.runner import SimulatorServer
from tests.e2e.media import png

STATSIG = base64.b64encode(bytes(range(70))).decode()


def _settings(sim: SimulatorServer, **overrides: object) -> Settings:
    return Settings(grok_base_url=sim.base_url, grok_assets_url=sim.assets_url, grok_ws_url=sim.ws_url, **overrides)


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[GrokClient]:
    grok = GrokClient(_settings(sim))
    yield grok
    await grok.aclose()


@pytest.fixture
def account(sim: SimulatorServer) -> Credentials:
    token = f"client-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    return Credentials(token=token, account_id=token[-12:])


async def _drain(grok: GrokClient, creds: Credentials) -> None:
    """Run a chat turn; a refusal is either raised (HTTP status) or an in-stream error event (mgw)."""
    async for event in grok.chat(creds, ChatCall(message="hi", mode="fast")):
        if isinstance(event, StreamError):
            raise stream_error(event)


def _requests(sim: SimulatorServer, token: str, path: str) -> list[dict]:
    return [r for r in sim.state.requests(path=path) if token in r["headers"].get("cookie", "")]


async def test_chat_sends_browser_headers_and_cookies(sim, client, account) -> None:
    events = [e async for e in client.chat(account, ChatCall(message="hi", mode="fast"))]
    assert isinstance(events[0], ConversationStarted)
    assert "".join(e.text for e in events if isinstance(e, AnswerText)) == next(
        e.message for e in events if isinstance(e, FinalMessage)
    )
    (request,) = _requests(sim, account.token, "/rest/app-chat/conversations/new")
    headers = request["headers"]
    assert headers["cookie"].startswith(f"sso={account.token}; sso-rw={account.token}")
    assert headers["origin"] == sim.base_url and headers["referer"] == sim.base_url + "/"
    assert headers["content-type"] == "application/json"
    uuid.UUID(headers["x-xai-request-id"])
    assert "x-statsig-id" not in headers  # never generated: only sent when the operator configured one


async def test_request_ids_are_fresh_and_configured_values_are_sent(sim, account) -> None:
    grok = GrokClient(_settings(sim, statsig_id=STATSIG, cf_clearance="clear-1", user_agent="MyBrowser/1.0"))
    try:
        for _ in range(2):
            await grok.rate_limits(account, "fast")
    finally:
        await grok.aclose()
    first, second = _requests(sim, account.token, "/rest/rate-limits")[-2:]
    assert first["headers"]["x-xai-request-id"] != second["headers"]["x-xai-request-id"]
    assert first["headers"]["x-statsig-id"] == STATSIG
    assert "cf_clearance=clear-1" in first["headers"]["cookie"]
    assert first["headers"]["user-agent"] == "MyBrowser/1.0"


async def test_upload_then_download_needs_the_account_cookie(sim, client, account) -> None:
    image = png(12, 12)
    uploaded = await client.upload(account, name="a.png", mime="image/png", data=image)
    assert uploaded.uri.endswith("/content")
    data, content_type = await client.download(account, uploaded.uri)
    assert data == image and content_type.startswith("image/png")
    stranger = Credentials(token=f"other-{uuid.uuid4().hex}")
    sim.state.add_account(stranger.token)
    with pytest.raises(UpstreamError):
        await client.download(stranger, uploaded.uri)


async def test_rate_limits_and_quota_info_shapes(client, account) -> None:
    body = await client.rate_limits(account, "fast")
    assert {"windowSizeSeconds", "remainingQueries", "totalQueries"} <= body.keys()
    media = await client.quota_info(account)
    assert {"image", "imagePro", "imageEdit", "video", "video720p"} <= media.keys()


@pytest.mark.parametrize("transport", ["rest", "mgw"])
async def test_refusals_are_classified(sim, transport) -> None:
    grok = GrokClient(_settings(sim, chat_transport=transport))
    blocked = f"blocked-{uuid.uuid4().hex}"
    sim.state.add_account(blocked)
    sim.state.block(blocked)
    exhausted = f"empty-{uuid.uuid4().hex}"
    sim.state.add_account(exhausted, quotas={"fast": {"total": 30, "remaining": 0}})
    cases = [
        (Credentials(token=f"unknown-{uuid.uuid4().hex}"), {FailureKind.UNAUTHORIZED}),
        (Credentials(token=blocked), {FailureKind.BLOCKED}),
        (Credentials(token=exhausted), {FailureKind.RATE_LIMITED}),
    ]
    try:
        for creds, kinds in cases:
            with pytest.raises(UpstreamError) as info:
                await _drain(grok, creds)
            assert info.value.kind in kinds, (creds.token, info.value.kind, info.value.message)
    finally:
        await grok.aclose()


async def test_cloudflare_and_anti_bot_are_egress_problems(sim, account) -> None:
    sim.state.config.update({"cloudflare": True})
    grok = GrokClient(_settings(sim))
    try:
        with pytest.raises(UpstreamError) as info:
            await grok.rate_limits(account, "fast")
        assert info.value.kind is FailureKind.CLOUDFLARE and not info.value.account_at_fault
    finally:
        sim.state.config.update({"cloudflare": False})
    sim.state.config.update({"strict_statsig": True})
    try:
        with pytest.raises(UpstreamError) as info:
            await _drain(grok, account)
        assert info.value.kind is FailureKind.ANTI_BOT and not info.value.account_at_fault
    finally:
        sim.state.config.update({"strict_statsig": False})
        await grok.aclose()
