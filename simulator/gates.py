"""The auth gate, in the reference's order (§12.1): session cookie → Cloudflare → blocked → anti-bot.

The simulator only *validates* what it is sent; it never produces statsig values or clearances.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import cookie_parser
from starlette.responses import Response

from simulator.responses import ANTI_BOT, BLOCKED, UNAUTHENTICATED, challenge_page, json_response
from simulator.state import Account, SimState


@dataclass(frozen=True, slots=True)
class GateFailure:
    reason: str  # unauthenticated | cloudflare | blocked | anti_bot
    account: Account | None

    def response(self, path: str) -> Response:
        if self.reason == "cloudflare":
            return challenge_page(path)
        if self.reason == "blocked":
            return json_response(BLOCKED, 403)
        if self.reason == "anti_bot":
            return json_response(ANTI_BOT, 403)
        return json_response(UNAUTHENTICATED, 401)


def valid_statsig(value: str | None) -> bool:
    """base64 (standard alphabet, padding optional) of exactly 70 bytes (§2.3)."""
    if not value:
        return False
    value = value.strip()
    try:
        return len(base64.b64decode(value + "=" * (-len(value) % 4), validate=True)) == 70
    except (binascii.Error, ValueError):
        return False


def session_token(cookies: Mapping[str, str]) -> str | None:
    sso, sso_rw = cookies.get("sso"), cookies.get("sso-rw")
    if sso and sso_rw and sso != sso_rw:
        return None  # two different sessions in one jar
    return sso or sso_rw or None


def check(
    state: SimState,
    headers: Mapping[str, str],
    *,
    statsig: bool = False,
    require_userid: bool = False,
) -> Account | GateFailure:
    """Return the authenticated account or the first gate that refuses the request (and count it)."""
    failure = _check(state, headers, statsig=statsig, require_userid=require_userid)
    if isinstance(failure, GateFailure):
        state.record_rejection(failure.account, failure.reason)
    return failure


def _check(
    state: SimState, headers: Mapping[str, str], *, statsig: bool, require_userid: bool
) -> Account | GateFailure:
    cookies = cookie_parser(headers.get("cookie", ""))
    token = session_token(cookies)
    account = state.get_account(token) if token else None
    if account is None:
        return GateFailure("unauthenticated", None)
    if require_userid and cookies.get("x-userid") != account.user_id:
        return GateFailure("unauthenticated", account)
    config = state.config
    if config.cloudflare:
        clearance = cookies.get("cf_clearance")
        if not clearance or clearance not in state.clearances:
            return GateFailure("cloudflare", account)
        bound_ua = state.clearances[clearance]
        if bound_ua is not None and headers.get("user-agent") != bound_ua:
            return GateFailure("cloudflare", account)
    if account.blocked:
        return GateFailure("blocked", account)
    if statsig and config.strict_statsig and not valid_statsig(headers.get("x-statsig-id")):
        return GateFailure("anti_bot", account)
    return account

