"""Admin console sessions: login, logout, session cookie, CSRF, login throttling.

The cookie ``g2a_session`` is ``v1.<expires>.<nonce>.<signature>``: stateless, signed with HMAC-SHA256 under a key
derived from ADMIN_PASSWORD and ENCRYPTION_KEY, so changing either ends every session. Logout revokes the nonce
in the store (``session:revoked:<nonce>``, expiring with the session). The CSRF token is an HMAC of the nonce:
the console gets it from login or ``GET /admin/session`` and sends it as ``X-CSRF-Token`` on every
POST/PUT/PATCH/DELETE made with the cookie. Every secret comparison is constant-time.

Store cost: login 1 command (the attempt counted, atomically) plus 1 on success (the count cleared); a cookie-authenticated request
1 (the revocation check) unless this instance checked that session within ``REVOKED_CACHE`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api._errors import error_response
from core.errors import AuthenticationFailed, PermissionDenied, RateLimited
from core.settings import Settings
from core.store import Store
from core.store.base import Script

COOKIE = "g2a_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REVOKED_CACHE = 5.0  # seconds a checked session is trusted without asking the store again (logout elsewhere)
_CACHE_SIZE = 1024

router = APIRouter(prefix="/admin")

# Every attempt is counted first, atomically (ARGV[1] = window ms; the window starts at the first attempt), so
# concurrent guesses on any number of instances cannot get more than LOGIN_MAX_FAILURES passwords checked per
# window; a right password then clears the count. → {attempts in the window, ms left}.
_THROTTLE = Script("login_throttle", """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
""")


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires_at: float
    csrf: str


class LoginThrottled(RateLimited):
    """429 with Retry-After."""

    code = "login_throttled"


class LoginBody(BaseModel):
    password: str = Field(max_length=4096)


# -- signing ----------------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signing_key(settings: Settings) -> bytes | None:
    """HMAC(ENCRYPTION_KEY, ADMIN_PASSWORD): changing either invalidates every cookie. None = admin disabled."""
    if not settings.admin_password:
        return None
    salt = (settings.encryption_key or "").encode()
    return hmac.new(salt, b"g2a-admin-session\x00" + settings.admin_password.encode(), hashlib.sha256).digest()


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def _csrf(key: bytes, nonce: str) -> str:
    return _sign(key, "csrf\x00" + nonce)[:32]


def issue(settings: Settings, now: float | None = None) -> tuple[str, Session]:
    """A new session: the cookie value and what it stands for."""
    key = signing_key(settings)
    assert key is not None, "no sessions without ADMIN_PASSWORD"
    # Rounded up: a session never lasts less than ADMIN_SESSION_TTL (the stamp has whole seconds).
    expires = math.ceil((time.time() if now is None else now) + settings.admin_session_ttl)
    nonce = secrets.token_urlsafe(18)
    payload = f"v1.{expires}.{nonce}"
    return f"{payload}.{_sign(key, payload)}", Session(nonce, float(expires), _csrf(key, nonce))


def parse(settings: Settings, cookie: str, now: float | None = None) -> Session | None:
    """The session a cookie value stands for, if its signature is good and it has not expired (no I/O)."""
    key = signing_key(settings)
    parts = cookie.split(".")
    if key is None or len(parts) != 4 or parts[0] != "v1" or not parts[1].isdecimal():
        return None
    expected = _sign(key, ".".join(parts[:3]))
    if not hmac.compare_digest(expected.encode(), parts[3].encode()):
        return None
    expires = float(parts[1])
    if expires <= (time.time() if now is None else now):
        return None
    return Session(parts[2], expires, _csrf(key, parts[2]))


# -- revocation -------------------------------------------------------------------------------------------------

_checked: OrderedDict[str, float] = OrderedDict()  # nonce -> monotonic time it was last found not revoked


def _revoked_key(store: Store, nonce: str) -> str:
    return store.key("session", "revoked", nonce)


async def _is_revoked(store: Store, nonce: str) -> bool:
    seen = _checked.get(nonce)
    if seen is not None and time.monotonic() - seen < REVOKED_CACHE:
        return False
    if await store.call("EXISTS", _revoked_key(store, nonce)):
        _checked.pop(nonce, None)
        return True
    _checked[nonce] = time.monotonic()
    _checked.move_to_end(nonce)
    while len(_checked) > _CACHE_SIZE:
        _checked.popitem(last=False)
    return False


async def _revoke(store: Store, session: Session) -> None:
    _checked.pop(session.nonce, None)
    ttl = max(1, math.ceil(session.expires_at - time.time()))
    await store.call("SET", _revoked_key(store, session.nonce), "1", "EX", ttl)


# -- request helpers --------------------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # sessions use environment-only settings (password, keys, TTL)


async def _store(request: Request) -> Store:
    return (await request.app.state.gateway.get()).store


def is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https" or request.url.scheme == "https"


def client_address(request: Request) -> str:
    """The ASGI peer, or, when TRUST_PROXY_HEADERS is on, the last X-Forwarded-For hop: the one the trusted proxy
    appended (the hops before it are whatever the client wrote, so they cannot be trusted for throttling)."""
    if _settings(request).trust_proxy_headers:
        last = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        if last:
            return last
    return request.client.host if request.client else "unknown"


async def cookie_session(request: Request) -> Session | None:
    """The request's valid, unrevoked session, without any CSRF check (for safe reads like ``/admin/session``)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    session = parse(_settings(request), cookie)
    if session is None or await _is_revoked(await _store(request), session.nonce):
        return None
    return session


async def console_session(request: Request) -> Session | None:
    """The console's session if the request carries a valid one, else None (the caller answers 401).

    A POST/PUT/PATCH/DELETE with a valid session must carry ``X-CSRF-Token``, else ``PermissionDenied``
    (403 ``csrf_failed``). For the admin API and, through client auth, the playground's ``/v1`` calls."""
    session = await cookie_session(request)
    if session is not None and request.method.upper() in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise PermissionDenied(
                "Missing or wrong X-CSRF-Token: state-changing calls made with the console session must send the "
                "token from /admin/login or GET /admin/session.",
                code="csrf_failed",
            )
    return session


def _set_cookie(response: JSONResponse, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(COOKIE, value, max_age=max_age, path="/", secure=is_https(request), httponly=True,
                        samesite="strict")


def _session_body(session: Session) -> dict[str, object]:
    return {"authenticated": True, "csrf": session.csrf, "expires_at": session.expires_at}


# -- routes -----------------------------------------------------------------------------------------------------


@router.post("/login")
async def login(body: LoginBody, request: Request) -> JSONResponse:
    settings = _settings(request)
    if not settings.admin_password:
        raise PermissionDenied("The admin API is disabled: set ADMIN_PASSWORD to enable it.", code="admin_disabled")
    store = await _store(request)
    key = store.key("login", "failures", client_address(request))
    attempts, left_ms = await store.run(_THROTTLE, [key], [int(settings.login_failure_window * 1000)])
    if int(attempts) > settings.login_max_failures:
        retry = max(1, math.ceil(int(left_ms) / 1000)) if int(left_ms) > 0 else 1
        error = LoginThrottled(
            f"Too many wrong admin passwords from this address: try again in {retry} s.", retry_after=retry
        )
        return error_response(request, error)
    wanted = hashlib.sha256(settings.admin_password.encode()).digest()
    if not hmac.compare_digest(hashlib.sha256(body.password.encode()).digest(), wanted):
        raise AuthenticationFailed("Wrong admin password.", code="invalid_admin_password")
    await store.call("DEL", key)  # a right password: the address starts afresh
    cookie, session = issue(settings)
    response = JSONResponse(_session_body(session))
    _set_cookie(response, request, cookie, int(settings.admin_session_ttl))
    return response


@router.post("/logout")
async def logout(request: Request) -> JSONResponse:
    session = await console_session(request)  # a valid session must send its CSRF token to end itself
    if session is not None:
        await _revoke(await _store(request), session)
    response = JSONResponse({"authenticated": False})
    response.delete_cookie(COOKIE, path="/", secure=is_https(request), httponly=True, samesite="strict")
    return response


@router.get("/session")
async def session_state(request: Request) -> dict[str, object]:
    session = await cookie_session(request)
    return _session_body(session) if session else {"authenticated": False}
