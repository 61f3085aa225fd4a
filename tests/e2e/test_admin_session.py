"""Admin console sessions over real HTTP: login, cookie flags, CSRF on state-changing calls, logout, expiry,
a password change ending sessions, and login throttling per client address (counted in the store)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from api import _session
from core.settings import Settings
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single OpenAI-shaped error object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def login(gw: Deployment, password: str = ADMIN_PASSWORD, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/admin/login", json={"password": password}, headers=headers, timeout=10)


def cookie_of(response: httpx.Response) -> str:
    return response.cookies[_session.COOKIE]


def with_cookie(gw: Deployment, method: str, path: str, cookie: str, csrf: str | None = None,
                **kwargs: Any) -> httpx.Response:
    headers = {"Cookie": f"{_session.COOKIE}={cookie}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return httpx.request(method, gw.url + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def gw(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy()


def test_wrong_password_is_401_and_sets_no_cookie(gw: Deployment) -> None:
    response = login(gw, "not-the-password", **{"X-Forwarded-For": "ignored"})
    assert error_of(response, 401)["code"] == "invalid_admin_password"
    assert "set-cookie" not in response.headers


def test_login_gives_a_strict_httponly_cookie_and_a_csrf_token(gw: Deployment) -> None:
    response = login(gw)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authenticated"] is True and len(body["csrf"]) >= 20
    assert time.time() + 12 * 3600 - 60 < body["expires_at"] <= time.time() + 12 * 3600 + 1  # ADMIN_SESSION_TTL
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert flags[0].startswith(f"{_session.COOKIE}=")
    assert {"httponly", "samesite=strict", "path=/"} <= set(flags)
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    assert "max-age=43200" in flags
    https = login(gw, **{"X-Forwarded-Proto": "https"})
    assert "secure" in [part.strip().lower() for part in https.headers["set-cookie"].split(";")]


def test_session_reads_need_no_csrf_and_writes_do(gw: Deployment) -> None:
    response = login(gw)
    cookie, csrf = cookie_of(response), response.json()["csrf"]
    assert with_cookie(gw, "GET", "/admin/tokens", cookie).status_code == 200
    state = with_cookie(gw, "GET", "/admin/session", cookie).json()
    assert state == {"authenticated": True, "csrf": csrf, "expires_at": response.json()["expires_at"]}

    body = {"values": {"LOG_CONTENT_CHARS": 40}}
    for sent in (None, "", "wrong-token", csrf[:-1]):
        error = error_of(with_cookie(gw, "PUT", "/admin/settings", cookie, sent, json=body), 403)
        assert error["code"] == "csrf_failed" and error["type"] == "permission_error"
    assert with_cookie(gw, "GET", "/admin/settings", cookie).json()["data"]  # and nothing was written:
    assert {i["name"]: i for i in gw.admin("GET", "/admin/settings").json()["data"]}["LOG_CONTENT_CHARS"]["value"] == 0
    done = with_cookie(gw, "PUT", "/admin/settings", cookie, csrf, json=body)
    assert done.status_code == 200, done.text
    reset = with_cookie(gw, "PUT", "/admin/settings", cookie, csrf, json={"values": {"LOG_CONTENT_CHARS": None}})
    assert reset.status_code == 200
    # Bearer scripts need no CSRF token; a client API key is no admin credential, with or without a cookie.
    assert gw.admin("PUT", "/admin/settings", json={"values": {}}).status_code == 200
    as_client = httpx.get(gw.url + "/admin/tokens", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert error_of(as_client, 401)["code"] == "invalid_admin_key"


def test_no_or_forged_cookie_is_401(gw: Deployment) -> None:
    assert httpx.get(gw.url + "/admin/session", timeout=10).json() == {"authenticated": False}
    assert error_of(httpx.get(gw.url + "/admin/tokens", timeout=10), 401)["code"] == "invalid_admin_key"
    real = cookie_of(login(gw))
    version, expires, nonce, signature = real.split(".")
    forged = [
        f"{version}.{int(expires) + 3600}.{nonce}.{signature}",  # longer life, same signature
        f"{version}.{expires}.{nonce}x.{signature}",
        f"{version}.{expires}.{nonce}.{signature[:-2]}AA",
        "v1.9999999999.abc.def",
        "garbage",
    ]
    for cookie in forged:
        assert error_of(with_cookie(gw, "GET", "/admin/tokens", cookie), 401)["code"] == "invalid_admin_key"
        assert with_cookie(gw, "GET", "/admin/session", cookie).json() == {"authenticated": False}


def test_logout_ends_the_session(gw: Deployment) -> None:
    response = login(gw)
    cookie, csrf = cookie_of(response), response.json()["csrf"]
    assert error_of(with_cookie(gw, "POST", "/admin/logout", cookie), 403)["code"] == "csrf_failed"
    assert with_cookie(gw, "GET", "/admin/tokens", cookie).status_code == 200  # still in
    out = with_cookie(gw, "POST", "/admin/logout", cookie, csrf)
    assert out.status_code == 200 and out.json() == {"authenticated": False}
    cleared = [part.strip().lower() for part in out.headers["set-cookie"].split(";")]
    assert cleared[0] in (f'{_session.COOKIE}=""', f"{_session.COOKIE}=") and "max-age=0" in cleared
    assert error_of(with_cookie(gw, "GET", "/admin/tokens", cookie), 401)["code"] == "invalid_admin_key"
    assert with_cookie(gw, "GET", "/admin/session", cookie).json() == {"authenticated": False}


def test_session_expires(deploy: Callable[..., Deployment]) -> None:
    gw = deploy(admin_session_ttl=2.0)
    started = time.time()
    response = login(gw)
    cookie = cookie_of(response)
    expires_at = response.json()["expires_at"]
    assert started + 2.0 <= expires_at <= time.time() + 3.0  # at least the TTL, rounded up to a whole second
    assert with_cookie(gw, "GET", "/admin/tokens", cookie).status_code == 200
    time.sleep(max(0.0, expires_at - time.time()) + 0.2)
    assert error_of(with_cookie(gw, "GET", "/admin/tokens", cookie), 401)["code"] == "invalid_admin_key"
    assert with_cookie(gw, "GET", "/admin/session", cookie).json() == {"authenticated": False}


def test_changing_the_admin_password_ends_every_session(deploy: Callable[..., Deployment]) -> None:
    prefix = f"e2e-pw-{uuid.uuid4().hex[:8]}:"
    before = deploy(store_prefix=prefix)
    cookie = cookie_of(login(before))
    after = deploy(store_prefix=prefix, admin_password="a-new-admin-password")  # the redeploy, same store
    assert with_cookie(before, "GET", "/admin/tokens", cookie).status_code == 200
    assert error_of(with_cookie(after, "GET", "/admin/tokens", cookie), 401)["code"] == "invalid_admin_key"
    # ... and so does a new ENCRYPTION_KEY (the signing key is derived from both)
    base = Settings(admin_password="pw")
    value, _ = _session.issue(base)
    assert _session.parse(base, value) is not None
    assert _session.parse(Settings(admin_password="pw", encryption_key="k2"), value) is None
    assert _session.parse(Settings(admin_password="pw2"), value) is None


def test_login_is_throttled_per_client_address(deploy: Callable[..., Deployment]) -> None:
    gw = deploy(login_max_failures=3, login_failure_window=60.0)
    for _ in range(3):
        assert error_of(login(gw, "guess"), 401)["code"] == "invalid_admin_password"
    for password in ("guess", ADMIN_PASSWORD):  # locked out: even the right password waits
        response = login(gw, password)
        error = error_of(response, 429)
        assert error["type"] == "rate_limit_error" and error["code"] == "login_throttled"
        assert 50 <= int(response.headers["retry-after"]) <= 60
        assert "set-cookie" not in response.headers
    # Bearer scripts are not affected by the console's lockout.
    assert gw.admin("GET", "/admin/settings").status_code == 200


def test_behind_a_trusted_proxy_the_last_forwarded_hop_is_the_client(deploy: Callable[..., Deployment]) -> None:
    """The trusted proxy appends the address it saw; the hops before it are the client's own words, so changing
    them on every attempt must not escape the throttle."""
    gw = deploy(login_max_failures=2, trust_proxy_headers=True)
    for forged in ("10.9.9.1", "10.9.9.2"):
        assert login(gw, "guess", **{"X-Forwarded-For": f"{forged}, 198.51.100.7"}).status_code == 401
    assert login(gw, **{"X-Forwarded-For": "10.9.9.3, 198.51.100.7"}).status_code == 429
    other = login(gw, **{"X-Forwarded-For": "198.51.100.7, 198.51.100.8"})
    assert other.status_code == 200 and other.json()["authenticated"] is True
    # a success clears that address's count
    assert login(gw, "guess", **{"X-Forwarded-For": "198.51.100.8"}).status_code == 401
    assert login(gw, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 200


@pytest.mark.parametrize(("trust", "expected"), [(False, "192.0.2.1"), (True, "198.51.100.7")])
def test_client_address_takes_forwarded_for_only_when_trusted(trust: bool, expected: str) -> None:
    """Off by default: a client could otherwise claim any address and get a fresh login budget per request.
    (uvicorn itself already rewrites the peer from X-Forwarded-For for loopback proxies: FORWARDED_ALLOW_IPS.)"""
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(trust_proxy_headers=trust)))
    scope = {"type": "http", "method": "POST", "path": "/admin/login", "headers": [
        (b"x-forwarded-for", b"10.0.0.1, 198.51.100.7")], "client": ("192.0.2.1", 4321), "app": app}
    assert _session.client_address(Request(scope)) == expected


def test_concurrent_guesses_cannot_exceed_the_throttle(deploy: Callable[..., Deployment]) -> None:
    """Each attempt is counted before its password is checked, atomically: 30 guesses at once from one address get
    at most LOGIN_MAX_FAILURES passwords checked (401), the rest are refused (429)."""
    import concurrent.futures

    gw = deploy(login_max_failures=5, login_failure_window=60.0)
    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(lambda _: login(gw, "guess").status_code, range(30)))
    assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses
