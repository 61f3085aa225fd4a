"""Auth gates in the reference's order, quota windows and their agreement with /rest/rate-limits."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.helpers import NEW, STATSIG, TOKEN, chat, cookies, parse_lines

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0"


def post(sim, path: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(sim.base_url + path, json=body, headers=headers, timeout=10)


def test_missing_or_unknown_session_is_401(sim, account) -> None:
    for headers in ({}, {"cookie": cookies("who-is-this")}, {"cookie": "sso=a; sso-rw=b"}):
        response = post(sim, NEW, {"message": "hi"}, **headers)
        assert response.status_code == 401 and "unauthenticated" in response.text
    assert post(sim, NEW, {"message": "hi"}, cookie=f"sso-rw={TOKEN}").status_code == 200


def test_cloudflare_mode(sim) -> None:
    sim.config.cloudflare = True
    sim.state.add_account(TOKEN, cf_clearance="clear-1", user_agent=UA)
    no_clearance = post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN), **{"user-agent": UA})
    assert no_clearance.status_code == 403
    assert no_clearance.headers["server"] == "cloudflare"
    assert no_clearance.headers["content-type"].startswith("text/html")
    assert "<title>Just a moment...</title>" in no_clearance.text and "challenge-platform" in no_clearance.text
    wrong_ua = post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN, cf_clearance="clear-1"),
                    **{"user-agent": "python-httpx"})
    assert wrong_ua.status_code == 403 and "Just a moment" in wrong_ua.text
    ok = post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN, cf_clearance="clear-1"), **{"user-agent": UA})
    assert ok.status_code == 200
    # Unknown sessions are still 401 first (reference order).
    assert post(sim, NEW, {"message": "hi"}, cookie=cookies("nobody")).status_code == 401
    # The assets host sits behind the same edge.
    assert httpx.get(f"{sim.assets_url}/users/x/y/content", headers={"cookie": cookies(TOKEN)}).status_code == 403


def test_blocked_account(sim) -> None:
    sim.state.add_account(TOKEN, blocked=True)
    response = post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN))
    assert response.status_code == 403
    assert response.json() == {"code": 7, "message": "User is blocked [WKE=unauthorized:blocked-user]",
                               "details": []}
    assert sim.state.ledger(TOKEN)["rejected"] == {"blocked": 1}


def test_strict_statsig(sim, account) -> None:
    sim.config.strict_statsig = True
    anti_bot = {"error": {"code": 7, "message": "Request rejected by anti-bot rules.", "details": []}}
    for value in (None, "not base64!", "YWJj"):
        headers = {"cookie": cookies(TOKEN)} | ({"x-statsig-id": value} if value else {})
        response = post(sim, NEW, {"message": "hi"}, **headers)
        assert response.status_code == 403 and response.json() == anti_bot
    assert post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN), **{"x-statsig-id": STATSIG}).status_code == 200
    # Not required where the real service does not check it.
    assert post(sim, "/rest/media/imagine/quota_info", {}, cookie=cookies(TOKEN)).status_code == 200

    sim.config.anti_bot_in_stream = True
    response = post(sim, NEW, {"message": "hi"}, cookie=cookies(TOKEN))
    assert response.status_code == 200 and parse_lines(response.text) == [anti_bot]


def test_mode_not_on_tier(client: httpx.Client, sim) -> None:
    response = client.post(NEW, json={"message": "hi", "modeId": "heavy"})
    assert response.status_code == 403
    assert response.json() == {"error": {"code": 7, "message": "Mode heavy is not available on your subscription",
                                         "details": []}}
    assert sim.state.ledger(TOKEN)["violations"][0]["kind"] == "mode_unavailable"


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("basic", {"fast": (30, 86400), "auto": (20, 86400), "expert": (8, 86400), "heavy": (0, 86400)}),
        ("super", {"fast": (140, 7200), "auto": (50, 7200), "expert": (50, 7200), "heavy": (0, 7200)}),
        ("heavy", {"fast": (400, 7200), "auto": (150, 7200), "expert": (150, 7200), "heavy": (20, 7200)}),
    ],
)
def test_tier_defaults_in_rate_limits(sim, tier: str, expected: dict[str, tuple[int, int]]) -> None:
    sim.state.add_account(TOKEN, tier=tier)
    for mode, (total, window) in expected.items():
        body = post(sim, "/rest/rate-limits", {"modelName": mode}, cookie=cookies(TOKEN)).json()
        assert body == {"windowSizeSeconds": window, "remainingQueries": total, "totalQueries": total,
                        "lowEffortRateLimits": None, "highEffortRateLimits": None}


def test_quota_decrements_then_429_then_resets(client: httpx.Client, sim) -> None:
    sim.state.set_quota(TOKEN, "fast", total=3)

    def remaining(body: dict) -> int:
        return client.post("/rest/rate-limits", json=body).json()["remainingQueries"]

    for left in (2, 1, 0):
        chat(client, "hi", modeId="fast")
        assert remaining({"modelName": "fast"}) == left
    limited = client.post(NEW, json={"message": "hi", "modeId": "fast"})
    assert limited.status_code == 429
    assert limited.json() == {"error": {"code": 8, "message": "Too many requests", "details": []}}
    # The legacy body style reads the same counters (grok-3 → auto, grok-3-mini… → fast).
    assert remaining({"requestKind": "DEFAULT", "modelName": "grok-4-mini-thinking-tahoe"}) == 0
    assert remaining({"requestKind": "DEFAULT", "modelName": "grok-3"}) == 50
    assert client.post(NEW, json={"message": "hi", "modeId": "auto"}).status_code == 200

    sim.state.advance_time(7200)
    assert remaining({"modelName": "fast"}) == 3
    assert client.post(NEW, json={"message": "hi", "modeId": "fast"}).status_code == 200


def test_quota_in_stream_variant(client: httpx.Client, sim) -> None:
    sim.config.quota_in_stream = True
    sim.state.set_quota(TOKEN, "fast", remaining=0)
    response = client.post(NEW, json={"message": "hi", "modeId": "fast"})
    assert response.status_code == 200
    lines = parse_lines(response.text)
    assert "conversation" in lines[0]["result"]
    assert lines[-1]["result"]["response"]["error"]["message"].startswith("You've reached your usage limit")
    assert sim.state.ledger(TOKEN)["violation_count"] == 1


def test_short_window_resets_in_real_time(client: httpx.Client, sim) -> None:
    sim.state.set_quota(TOKEN, "fast", total=1, window=1)
    chat(client, "hi", modeId="fast")
    assert client.post(NEW, json={"message": "hi", "modeId": "fast"}).status_code == 429
    sim.state.advance_time(1.01)
    assert client.post(NEW, json={"message": "hi", "modeId": "fast"}).status_code == 200


def test_quota_info_shape(client: httpx.Client, sim) -> None:
    sim.state.add_account("basic-tok", tier="basic")
    body = client.post("/rest/media/imagine/quota_info", json={}, headers={"cookie": cookies("basic-tok")}).json()
    assert list(body) == ["image", "imagePro", "imageEdit", "video", "video720p"]
    assert body["video720p"] is None
    assert body["imagePro"] == {"available": True, "remainingQueries": 2, "windowSizeSeconds": 86400}
    sim.state.set_quota("basic-tok", "imagePro", remaining=0)
    exhausted = client.post("/rest/media/imagine/quota_info", json={},
                            headers={"cookie": cookies("basic-tok")}).json()["imagePro"]
    assert exhausted["remainingQueries"] == 0 and exhausted["nextAvailableAt"].endswith("Z")


def test_modes_session_and_credits(client: httpx.Client, sim, account) -> None:
    modes = client.post("/rest/modes", json={"locale": "en"}).json()
    assert [m["id"] for m in modes["modes"]] == ["auto", "fast", "expert", "heavy", "build"]
    assert modes["defaultModeId"] == "auto"
    session = client.get("/api/auth/session").json()
    assert session == {"status": "authenticated", "session": {"userId": account.user_id, "email": account.email,
                                                              "organizationId": ""}}
    assert httpx.get(sim.base_url + "/api/auth/session").json() == {"status": "unauthenticated"}
    credits = client.post("/grok_api_v2.GrokBuildBilling/GetGrokCreditsConfig", content=b"\0" * 5)
    assert credits.headers["content-type"] == "application/grpc-web+proto" and credits.content[0] == 0
