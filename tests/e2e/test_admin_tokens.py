"""The admin token API over real HTTP, against the simulator: import (paste, JSON, text file), export, list with
filters and the pool summary, delete, enable/disable, tags and notes, test one, refresh many with a pollable job,
authentication, and tokens never shown unmasked anywhere but the export."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import api._admin
from core.pool.tokens import account_id, mask
from simulator.runner import SimulatorServer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment


def token() -> str:
    return f"adm-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] and "Traceback" not in response.text
    return error


def post_body(gw: Deployment, body: str | bytes, content_type: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_PASSWORD}", "Content-Type": content_type}
    return httpx.post(gw.url + "/admin/tokens", content=body, headers=headers)


def paste(gw: Deployment, text: str | bytes, content_type: str = "text/plain") -> dict[str, Any]:
    return ok(post_body(gw, text, content_type))


def never_unmasked(response: httpx.Response, tokens: list[str]) -> None:
    leaked = [t for t in tokens if t in response.text]
    assert not leaked, f"{response.request.method} {response.request.url.path} shows tokens in full"


@pytest.fixture
def gw(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy()


# -- authentication -----------------------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/admin/tokens"), ("POST", "/admin/tokens"), ("GET", "/admin/tokens/export"),
    ("GET", "/admin/tokens/abc"), ("PATCH", "/admin/tokens/abc"), ("DELETE", "/admin/tokens/abc"),
    ("POST", "/admin/tokens/delete"), ("POST", "/admin/tokens/enable"), ("POST", "/admin/tokens/disable"),
    ("POST", "/admin/tokens/abc/test"), ("POST", "/admin/tokens/refresh"), ("GET", "/admin/refresh/abc"),
    ("GET", "/admin/pool"), ("GET", "/admin/usage"),
]


def test_every_admin_route_requires_the_admin_secret(gw: Deployment, deploy) -> None:
    for method, path in ADMIN_ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {API_KEY}"},
                        {"Authorization": ADMIN_PASSWORD}):
            response = httpx.request(method, gw.url + path, headers=headers, json={"ids": ["x"]})
            error = error_of(response, 401)
            assert error["code"] == "invalid_admin_key", (method, path, headers)
    closed = deploy(admin_password=None)  # no ADMIN_PASSWORD: the admin API is off, not open
    response = httpx.get(closed.url + "/admin/tokens", headers={"Authorization": "Bearer anything"})
    assert error_of(response, 403)["code"] == "admin_disabled"


# -- import ---------------------------------------------------------------------------------------------------


def test_import_by_paste_reports_added_and_skipped_with_reasons(gw: Deployment) -> None:
    a, b, c, d = token(), token(), token(), token()
    text = (
        f"sso={a}\n"
        f"   {b}   \n"
        "\n"
        f"sso={a}\n"  # the same token twice in one paste
        "# my accounts, one per line\n"
        "this is definitely not a token!\n"
        "short\n"
        f"sso-rw={c}; cf_clearance=xyz; sso-rw={c}\n"  # a whole cookie header
        f"{d},{b}\n"  # comma separated too
    )
    report = paste(gw, text)
    assert report["added"] == 4 and report["skipped"] == 4
    assert [e["account_id"] for e in report["details"]["added"]] == [account_id(t) for t in (a, b, c, d)]
    assert [e["masked"] for e in report["details"]["added"]] == [mask(t) for t in (a, b, c, d)]
    reasons = [e["reason"] for e in report["details"]["skipped"]]
    assert reasons[0] == reasons[3] == "duplicate within this import"
    assert "characters a session token cannot have" in reasons[1]
    assert "too short" in reasons[2]
    assert report["encrypted"] is False

    again = paste(gw, f"sso={a}\n{token()}\n")
    assert again["added"] == 1 and again["details"]["skipped"][0]["reason"] == "already in the pool"
    assert len(ok(gw.admin("GET", "/admin/tokens"))["data"]) == 5


def test_import_json_list_and_object_forms(gw: Deployment) -> None:
    a, b, c, d = token(), token(), token(), token()
    report = ok(gw.admin("POST", "/admin/tokens", json=[a, {"token": f"sso={b}", "tags": ["eu"], "note": "spare"}]))
    assert report["added"] == 2
    report = ok(gw.admin("POST", "/admin/tokens",
                         json={"tokens": [c, c, 42], "tags": ["batch", "batch"], "note": "from JSON"}))
    assert report["added"] == 1 and report["skipped"] == 2
    assert {e["reason"] for e in report["details"]["skipped"]} == {"duplicate within this import",
                                                                   "not a string (int)"}
    assert ok(gw.admin("POST", "/admin/tokens", json={"tokens": f"sso={d}\n"}))["added"] == 1

    accounts = {x["id"]: x for x in ok(gw.admin("GET", "/admin/tokens"))["data"]}
    assert accounts[account_id(b)]["tags"] == ["eu"] and accounts[account_id(b)]["note"] == "spare"
    assert accounts[account_id(c)]["tags"] == ["batch"] and accounts[account_id(c)]["note"] == "from JSON"
    assert accounts[account_id(a)]["tier"] == "unknown" and accounts[account_id(a)]["quota"]["fast"][
        "remaining"] is None  # quotas and tier are learned from grok.com, never guessed

    for body, content_type in ((b"{not json", "application/json"), (b'{"foo": 1}', "application/json"),
                               (b"   ", "text/plain")):
        assert error_of(post_body(gw, body, content_type), 400)["type"] == "invalid_request_error"


def test_import_a_text_file(gw: Deployment, tmp_path) -> None:
    tokens = [token() for _ in range(3)]
    path = tmp_path / "tokens.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(f"sso={t}" for t in tokens) + "\r\n\r\n").encode())  # BOM, CRLF
    report = paste(gw, path.read_bytes())  # curl --data-binary @tokens.txt -H 'Content-Type: text/plain'
    assert report["added"] == 3 and report["skipped"] == 0
    assert [e["account_id"] for e in report["details"]["added"]] == [account_id(t) for t in tokens]


def test_import_a_file_uploaded_as_a_form(gw: Deployment, tmp_path) -> None:
    """``curl -F file=@tokens.txt`` / a browser form: the file's lines are the tokens, the envelope is not."""
    tokens = [token() for _ in range(2)]
    upload = {"file": ("tokens.txt", "\n".join(f"sso={t}" for t in tokens) + "\n", "text/plain")}
    report = ok(gw.admin("POST", "/admin/tokens", files=upload, data={"tags": "eu,spare", "note": "uploaded"}))
    assert report["added"] == 2 and report["skipped"] == 0, report["details"]
    assert gw.admin("GET", "/admin/tokens/export").text.split() == tokens  # not one boundary line among them
    listed = ok(gw.admin("GET", "/admin/tokens"))["data"]
    assert all(a["tags"] == ["eu", "spare"] and a["note"] == "uploaded" for a in listed)

    response = gw.admin("POST", "/admin/tokens", data={"note": "forgot the file"}, files={"x": ("", b"")})
    assert error_of(response, 400)["param"] == "file"


# -- export, list, summary -------------------------------------------------------------------------------------


def test_export_is_the_only_place_tokens_appear_in_full(gw: Deployment) -> None:
    tokens = gw.add_accounts(3)
    ids = [account_id(t) for t in tokens]
    assert gw.admin("GET", "/admin/tokens/export").text == "".join(f"{t}\n" for t in tokens)
    assert ok(gw.admin("GET", "/admin/tokens/export", params={"format": "json"})) == {"tokens": tokens}

    gw.client().chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": "hi"}])
    responses = [
        gw.admin("GET", "/admin/tokens"),
        gw.admin("GET", f"/admin/tokens/{ids[0]}"),
        gw.admin("PATCH", f"/admin/tokens/{ids[0]}", json={"note": "n"}),
        gw.admin("POST", f"/admin/tokens/{ids[1]}/test"),
        gw.admin("POST", "/admin/tokens/refresh", json={"ids": ids}),
        gw.admin("GET", "/admin/pool"),
        gw.admin("GET", "/admin/usage"),
        gw.admin("POST", "/admin/tokens", json={"tokens": tokens}),
        gw.admin("POST", "/admin/tokens/disable", json={"ids": ids}),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        never_unmasked(response, tokens)
    listed = ok(gw.admin("GET", "/admin/tokens"))["data"]
    assert [a["masked"] for a in listed] == [mask(t) for t in tokens]
    assert all("token" not in a for a in listed)


def test_list_filters_and_pool_summary(gw: Deployment, sim: SimulatorServer) -> None:
    basic = gw.add_accounts(2, tier="basic")
    (heavy,) = gw.add_accounts(1, tier="heavy")
    (blocked,) = gw.add_accounts(1, tier="super")
    for t in (*basic, heavy):
        assert ok(gw.admin("POST", f"/admin/tokens/{account_id(t)}/test"))["ok"]
    sim.state.block(blocked)
    assert ok(gw.admin("POST", f"/admin/tokens/{account_id(blocked)}/test"))["ok"] is False
    ok(gw.admin("PATCH", f"/admin/tokens/{account_id(basic[0])}", json={"tags": ["eu"]}))
    ok(gw.admin("POST", "/admin/tokens/disable", json={"ids": [account_id(basic[1])]}))

    def listed(**filters: str) -> list[str]:
        return [a["id"] for a in ok(gw.admin("GET", "/admin/tokens", params=filters))["data"]]

    assert listed(tier="basic") == [account_id(t) for t in basic]
    assert listed(tier="heavy") == [account_id(heavy)]
    assert listed(tier="unknown") == [account_id(blocked)]
    assert listed(status="invalid") == [account_id(blocked)]
    assert listed(status="disabled") == [account_id(basic[1])]
    assert listed(status="active") == [account_id(basic[0]), account_id(heavy)]
    assert listed(tag="eu") == [account_id(basic[0])]
    assert listed(tier="basic", status="active", tag="eu") == [account_id(basic[0])]
    assert listed(tag="nowhere") == []
    # q searches id, masked token, note and tags, case-insensitively, and says no total (it takes a scan)
    ok(gw.admin("PATCH", f"/admin/tokens/{account_id(heavy)}", json={"note": "Shared with the Berlin team"}))
    assert listed(q="berlin") == [account_id(heavy)] and listed(q="EU") == [account_id(basic[0])]
    assert listed(q=account_id(blocked)[-6:].upper()) == [account_id(blocked)]
    masked = next(a["masked"] for a in ok(gw.admin("GET", "/admin/tokens"))["data"] if a["id"] == account_id(heavy))
    assert listed(q=masked) == [account_id(heavy)] and listed(q="berlin", tier="basic") == []
    assert ok(gw.admin("GET", "/admin/tokens", params={"q": "berlin"}))["total"] is None
    assert gw.admin("GET", "/admin/tokens", params={"q": "x" * 201}).status_code == 400
    # quota: chat quota left, summed over the modes (the blocked account was never read: unknown)
    assert listed(quota="some") == [account_id(t) for t in (*basic, heavy)] and listed(quota="none") == []
    assert listed(quota="unknown") == [account_id(blocked)] and listed(quota="some", tier="heavy") == [account_id(heavy)]
    assert gw.admin("GET", "/admin/tokens", params={"quota": "lots"}).status_code == 400

    summary = ok(gw.admin("GET", "/admin/pool"))
    assert summary == ok(gw.admin("GET", "/admin/tokens"))["summary"]
    assert summary["total"] == 4 and summary["in_flight"] == 0
    assert summary["by_tier"] == {"basic": 2, "super": 0, "heavy": 1, "unknown": 1}
    assert summary["by_status"] == {"active": 2, "cooling": 0, "invalid": 1, "disabled": 1}
    assert summary["remaining"]["fast"] == 30 + 400  # usable accounts only: the disabled one is not counted
    assert summary["encryption"] == "none" and summary["plaintext_accounts"] == 4
    for mode in ("auto", "fast", "expert"):  # everything basic[0] has, used up in the browser meanwhile
        sim.state.set_quota(basic[0], mode, remaining=0)
    assert ok(gw.admin("POST", f"/admin/tokens/{account_id(basic[0])}/test"))["ok"]
    assert listed(quota="none") == [account_id(basic[0])]


# -- edits --------------------------------------------------------------------------------------------------


def test_delete_one_and_many(gw: Deployment) -> None:
    a, b, c = gw.add_accounts(3)
    assert ok(gw.admin("DELETE", f"/admin/tokens/{account_id(a)}")) == {"deleted": 1}
    assert error_of(gw.admin("DELETE", f"/admin/tokens/{account_id(a)}"), 404)["code"] == "not_found"
    assert error_of(gw.admin("GET", f"/admin/tokens/{account_id(a)}"), 404)["code"] == "not_found"
    assert ok(gw.admin("POST", "/admin/tokens/delete",
                       json={"ids": [account_id(b), account_id(c), "missing"]})) == {"deleted": 2}
    assert ok(gw.admin("GET", "/admin/tokens"))["data"] == []
    assert error_of(gw.admin("POST", "/admin/tokens/delete", json={"ids": []}), 400)
    assert gw.admin("GET", "/admin/tokens/export").text == ""


def test_disable_and_enable(gw: Deployment) -> None:
    (a,) = gw.add_accounts(1)
    assert ok(gw.admin("POST", "/admin/tokens/disable", json={"ids": [account_id(a), "missing"]})) == {"updated": 1}
    assert ok(gw.admin("GET", f"/admin/tokens/{account_id(a)}"))["status"]["state"] == "disabled"
    response = httpx.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "hi"}]})
    assert "disabled" in error_of(response, 429)["message"]
    assert ok(gw.admin("POST", "/admin/tokens/enable", json={"ids": [account_id(a)]})) == {"updated": 1}
    assert ok(gw.admin("GET", f"/admin/tokens/{account_id(a)}"))["status"]["state"] == "active"
    assert gw.client().chat.completions.create(
        model="grok-4.5-fast", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content


def test_tags_note_and_concurrency_via_patch(gw: Deployment) -> None:
    (a,) = gw.add_accounts(1)
    path = f"/admin/tokens/{account_id(a)}"
    got = ok(gw.admin("PATCH", path, json={"tags": [" eu ", "eu", "spare", ""], "note": "  backup account  "}))
    assert got["tags"] == ["eu", "spare"] and got["note"] == "backup account"
    got = ok(gw.admin("PATCH", path, json={"concurrency": 3}))
    assert got["concurrency"] == 3 and got["tags"] == ["eu", "spare"]  # fields not sent are kept
    assert ok(gw.admin("PATCH", path, json={"concurrency": 0}))["concurrency"] is None  # back to the default
    assert ok(gw.admin("PATCH", path, json={"tags": []}))["tags"] == []
    assert error_of(gw.admin("PATCH", path, json={"note": "x" * 501}), 400)["param"] == "note"
    assert error_of(gw.admin("PATCH", path, json={"concurrency": -1}), 400)["param"] == "concurrency"
    assert error_of(gw.admin("PATCH", "/admin/tokens/nope", json={"note": "x"}), 404)["code"] == "not_found"


# -- test one, refresh many ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["basic", "super", "heavy"])
def test_test_one_detects_the_tier_from_grok_quota_answers(gw: Deployment, sim: SimulatorServer, tier: str) -> None:
    (a,) = gw.add_accounts(1, tier=tier)
    sim.state.set_quota(a, "fast", remaining=7)
    before = ok(gw.admin("GET", f"/admin/tokens/{account_id(a)}"))
    assert before["tier"] == "unknown"
    result = ok(gw.admin("POST", f"/admin/tokens/{account_id(a)}/test"))
    assert result["ok"] is True
    acc = result["account"]
    assert acc["tier"] == tier
    for mode in ("auto", "fast", "expert", "heavy"):
        window = sim.state.quota(a, mode)
        assert acc["quota"][mode]["remaining"] == window.remaining and acc["quota"][mode]["total"] == window.total
        assert acc["quota"][mode]["window_seconds"] == window.window
    assert acc["quota"]["fast"]["remaining"] == 7
    assert acc["media"]["image"]["remaining"] == sim.state.quota(a, "image").remaining
    assert acc["quota_refreshed_at"] is not None
    assert sim.state.ledger(a)["charged_total"] == 0  # asking costs nothing


def test_test_one_reports_a_dead_session(gw: Deployment) -> None:
    dead = token()
    paste(gw, dead)  # grok.com does not know it
    result = ok(gw.admin("POST", f"/admin/tokens/{account_id(dead)}/test"))
    assert result["ok"] is False and result["error"]["kind"] == "unauthorized"
    assert result["account"]["strikes"] == 1 and result["account"]["last_error"].startswith("unauthorized")
    assert error_of(gw.admin("POST", "/admin/tokens/nope/test"), 404)["code"] == "not_found"


@pytest.fixture
def slow_quota(sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """grok.com answers quota queries slowly and each admin call works only half a second, so a refresh of a
    dozen accounts needs several polls (the real slice is 8 s, for real platforms' request limits)."""
    monkeypatch.setattr(api._admin, "SLICE_SECONDS", 0.5)
    sim.config.quota_delay = 0.25
    try:
        yield
    finally:
        sim.config.quota_delay = 0.0


def test_refresh_many_is_a_job_a_client_polls_to_the_end(gw: Deployment, slow_quota) -> None:
    tokens = gw.add_accounts(24, tier="super")
    dead = token()
    paste(gw, dead)
    ids = [account_id(t) for t in tokens] + [account_id(dead)]

    started = ok(gw.admin("POST", "/admin/tokens/refresh", json={"ids": ids}))
    assert started["status"] == "running" and started["total"] == 25 and started["done"] < 25
    job, polls, seen = started["job_id"], 0, [started["done"]]
    while True:
        progress = ok(gw.admin("GET", f"/admin/refresh/{job}"))
        polls += 1
        seen.append(progress["done"])
        if progress["status"] == "done":
            break
        assert polls < 20, seen
    assert polls >= 1 and seen == sorted(seen)  # progress only moves forward
    assert progress["total"] == 25 and progress["done"] == 24 and progress["errors"] == 1
    assert account_id(dead) in progress["last_error"] and "unauthorized" in progress["last_error"]
    assert ok(gw.admin("GET", f"/admin/refresh/{job}")) == progress  # a finished job just reports

    accounts = {a["id"]: a for a in ok(gw.admin("GET", "/admin/tokens"))["data"]}
    assert all(accounts[account_id(t)]["tier"] == "super" for t in tokens)
    assert all(accounts[account_id(t)]["quota"]["fast"]["remaining"] == 140 for t in tokens)
    assert accounts[account_id(dead)]["strikes"] == 1
    assert error_of(gw.admin("GET", "/admin/refresh/nope"), 404)["code"] == "not_found"


def test_refresh_without_ids_takes_every_stale_account(gw: Deployment) -> None:
    tokens = gw.add_accounts(3, tier="basic")
    ok(gw.admin("POST", f"/admin/tokens/{account_id(tokens[0])}/test"))  # fresh already
    progress = ok(gw.admin("POST", "/admin/tokens/refresh"))
    assert progress["status"] == "done" and progress["total"] == 2 and progress["done"] == 2
    assert {a["tier"] for a in ok(gw.admin("GET", "/admin/tokens"))["data"]} == {"basic"}


def test_usage_counts_requests_per_model_and_account(gw: Deployment) -> None:
    (a,) = gw.add_accounts(1)
    for _ in range(2):
        gw.client().chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": "hi"}])
    usage = ok(gw.admin("GET", "/admin/usage"))
    assert usage["usage"]["models"]["grok-4.5-fast"]["req"] == 2
    assert usage["usage"]["accounts"][account_id(a)]["ok"] == 2
    assert usage["store_commands"] > 0
    assert error_of(gw.admin("GET", "/admin/usage", params={"day": "yesterday"}), 400)["param"] == "day"
