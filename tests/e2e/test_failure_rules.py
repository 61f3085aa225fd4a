"""Every failure rule of the token pool, driven end to end: client → gateway → simulated grok.com → store.

Each test makes the simulator fail the way grok.com does (a 429 with quota left, exhausted quota, 401, a
blocked account, a Cloudflare challenge, anti-bot rejections, 5xx, an unreachable or silent host) and checks what
the client saw, the account's state through the admin API, and what the simulator was sent. This module runs its
own simulator, because some tests switch simulator-wide modes (Cloudflare, strict statsig).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api._app import create_app
from core.pool.tokens import account_id
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from simulator.text import plain_answer
from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY, Deployment
from tests.support.asgi import ThreadedServer
from tests.support.net import black_hole, refused_port

STATSIG = base64.b64encode(bytes(range(70))).decode()  # what an operator would paste: 70 bytes, base64


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimConfig.fast()) as server:
        yield server


@pytest.fixture
def strict(sim: SimulatorServer) -> Iterator[SimulatorServer]:
    """The simulator with its switches restored after the test, whatever the test turned on."""
    saved = sim.config.to_dict()
    try:
        yield sim
    finally:
        sim.config.update({k: v for k, v in saved.items() if k != "mode_costs"})


def gateways(sim: SimulatorServer, redis_url: str, prefix: str,
             **defaults: Any) -> Iterator[Callable[..., Deployment]]:
    """The body of a module's ``make`` fixture (``yield from``): ``build(**settings)`` → a gateway on its own key
    prefix (``prefix`` + random), pointed at ``sim``, with ``defaults`` then the overrides on top of the base
    settings; every gateway built is stopped at teardown."""
    servers: list[ThreadedServer] = []

    def build(**overrides: Any) -> Deployment:
        values: dict[str, Any] = {
            "api_keys": (API_KEY,), "admin_password": ADMIN_PASSWORD, "redis_url": redis_url,
            "store_prefix": f"{prefix}{uuid.uuid4().hex[:10]}:", "grok_base_url": sim.base_url,
            "grok_assets_url": sim.assets_url, "grok_ws_url": sim.ws_url, "first_byte_timeout": 10.0,
            **defaults, **overrides,
        }
        settings = Settings(**values)
        server = ThreadedServer(create_app(settings)).start()
        servers.append(server)
        return Deployment(server.url, settings, sim)

    yield build
    for server in servers:
        server.server.should_exit = True  # all at once, then wait: teardown stays quick
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def make(sim: SimulatorServer, embedded_redis) -> Iterator[Callable[..., Deployment]]:
    """``make(**settings)`` → a gateway on its own key prefix, pointed at this module's simulator."""
    yield from gateways(sim, embedded_redis.url, "rules-")


# -- helpers ------------------------------------------------------------------------------------------------


def chat(gw: Deployment, content: str = "hello", *, model: str = "grok-4.5-fast", stream: bool = False
         ) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"})


def answer_text(response: httpx.Response) -> str:
    """The assistant's text of a 200 answer, JSON or SSE (which must end with [DONE])."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert not any("error" in c for c in chunks), chunks
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return response.json()["choices"][0]["message"]["content"]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single OpenAI error object of a failed request (never a stream, never a traceback)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def account(gw: Deployment, token: str) -> dict[str, Any]:
    response = gw.admin("GET", f"/admin/tokens/{account_id(token)}")
    assert response.status_code == 200, response.text
    return response.json()


def import_only(gw: Deployment, *tokens: str) -> None:
    """Put tokens in the pool that the simulator does not know (grok.com answers 401 for them)."""
    response = gw.admin("POST", "/admin/tokens", json={"tokens": list(tokens)})
    assert response.json()["added"] == len(tokens), response.text


def learn_quota(gw: Deployment, *tokens: str) -> None:
    """Admin "test": the pool reads quotas and tier now, without spending anything."""
    for token in tokens:
        result = gw.admin("POST", f"/admin/tokens/{account_id(token)}/test").json()
        assert result["ok"], result


def ends(until: float, seconds: float, since: float) -> bool:
    """``until`` is ``seconds`` after some moment between ``since`` and now (when the rule was applied)."""
    return since - 0.01 <= until - seconds <= time.time() + 0.01


def cools(acc: dict[str, Any], seconds: float, since: float, reason: str) -> bool:
    status = acc["status"]
    assert status["state"] == "cooling" and status["reason"].startswith(reason), status
    return ends(status["until"], seconds, since)


def wait_active(gw: Deployment, token: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while account(gw, token)["status"]["state"] != "active":
        assert time.monotonic() < deadline, account(gw, token)["status"]
        time.sleep(0.05)


def new_token() -> str:
    return f"rule-{uuid.uuid4().hex}"


# -- 429 ----------------------------------------------------------------------------------------------------


def test_429_with_quota_left_cools_the_account_briefly(make: Callable[..., Deployment], sim) -> None:
    gw = make(rate_limit_cooldown=1.0)
    (token,) = gw.add_accounts(1)
    sim.state.set_fault(token, 429, times=1)  # "Too many requests" although quota is left

    since = time.time()
    error = error_of(chat(gw), 429)
    assert error["code"] == "upstream_rate_limited" and "rate limited by grok.com" in error["message"]
    acc = account(gw, token)
    assert cools(acc, 1.0, since, "rate limited")
    assert acc["quota"]["fast"]["remaining"] == 140  # nothing was charged, nothing is counted as spent
    assert sim.state.ledger(token)["charged_total"] == 0

    busy = chat(gw)  # while it cools, nothing is sent upstream
    assert "cooling" in error_of(busy, 429)["message"] and int(busy.headers["retry-after"]) >= 1
    assert sim.state.ledger(token)["rejected"] == {"fault_429": 1}

    wait_active(gw, token)
    assert answer_text(chat(gw, "after the cooldown")) == plain_answer("after the cooldown")

    sim.state.set_fault(token, 429, times=1, retry_after=5)  # upstream's Retry-After wins over the default
    since = time.time()
    error_of(chat(gw), 429)
    assert cools(account(gw, token), 5.0, since, "rate limited")


def test_429_from_the_concurrency_cap_cools_briefly(make: Callable[..., Deployment], sim) -> None:
    """The realistic 429 with quota left: more streams than grok.com allows the account at once."""
    gw = make(rate_limit_cooldown=30.0)
    (token,) = gw.add_accounts(1, concurrency_limit=1)
    learn_quota(gw, token)
    gw.admin("PATCH", f"/admin/tokens/{account_id(token)}", json={"concurrency": 2})  # misconfigured cap

    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": "grok-4.5-fast", "stream": True,
                            "messages": [{"role": "user", "content": "slow #long=6 #stall=1.5"}]}) as slow:
        assert slow.status_code == 200
        lines = slow.iter_lines()
        next(line for line in lines if '"content"' in line)  # the first stream holds grok.com's only slot
        since = time.time()
        error = error_of(chat(gw, "one too many"), 429)
        assert error["code"] == "upstream_rate_limited"
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"  # the first stream was not disturbed
    acc = account(gw, token)
    assert cools(acc, 30.0, since, "rate limited")
    assert acc["quota"]["fast"]["remaining"] == sim.state.quota(token, "fast").remaining == 139
    assert sim.state.ledger(token)["rejected"] == {"concurrency": 1}


def test_429_with_quota_exhausted_skips_the_mode_until_it_resets(make: Callable[..., Deployment], sim) -> None:
    gw = make(exhausted_cooldown=1.5)
    (token,) = gw.add_accounts(1, quotas={"fast": 3})
    assert answer_text(chat(gw, "one")) == plain_answer("one")
    # The first request refreshed the quota lazily; the store counts that request too.
    assert account(gw, token)["quota"]["fast"]["remaining"] == sim.state.quota(token, "fast").remaining == 2
    assert answer_text(chat(gw, "two")) == plain_answer("two")
    sim.state.set_quota(token, "fast", remaining=0)  # the owner used the last one in the browser meanwhile

    since = time.time()
    error = error_of(chat(gw, "three"), 429)  # the pool's last unit: grok.com says no
    assert error["code"] == "upstream_rate_limited"
    acc = account(gw, token)
    assert acc["status"]["state"] == "active"  # the account is fine; only its fast mode is out
    assert acc["quota"]["fast"]["remaining"] == 0
    assert ends(acc["quota"]["fast"]["resets_at"], 1.5, since)

    skipped = chat(gw, "four")
    assert "out of fast quota" in error_of(skipped, 429)["message"]
    assert sim.state.ledger(token)["accepted"] == {"fast": 2}  # nothing sent while the mode is out
    assert answer_text(chat(gw, "other mode", model="grok-4.5")) == plain_answer("other mode")

    sim.state.advance_time(7200)  # grok.com's window resets ...
    time.sleep(1.6)  # ... and so does the pool's skip
    assert answer_text(chat(gw, "five")) == plain_answer("five")
    assert account(gw, token)["quota"]["fast"]["remaining"] == sim.state.quota(token, "fast").remaining == 2


def test_usage_limit_in_the_stream_marks_the_mode_exhausted(make: Callable[..., Deployment], strict) -> None:
    """grok.com may report exhaustion as a 200 stream with a usage-limit line: the pool believes it at once,
    even when its own numbers said several queries were left."""
    strict.config.quota_in_stream = True
    gw = make(exhausted_cooldown=600.0)
    (token,) = gw.add_accounts(1, quotas={"fast": 10})
    answer_text(chat(gw))
    strict.state.set_quota(token, "fast", remaining=0)

    since = time.time()
    error = error_of(chat(gw), 429)
    assert error["code"] == "upstream_rate_limited" and "usage limit" in error["message"]
    acc = account(gw, token)
    assert acc["status"]["state"] == "active" and acc["quota"]["fast"]["remaining"] == 0
    assert ends(acc["quota"]["fast"]["resets_at"], 600, since)
    assert "out of fast quota" in error_of(chat(gw), 429)["message"]


# -- the account's own fault: 401 and blocked ---------------------------------------------------------------


def test_401_makes_the_account_invalid_after_consecutive_strikes(make: Callable[..., Deployment], sim) -> None:
    gw = make(invalid_after_unauthorized=2)
    token = new_token()
    import_only(gw, token)  # grok.com does not know this session

    error = error_of(chat(gw), 502)
    assert error["code"] == "upstream_unauthorized" and "session token rejected" in error["message"]
    acc = account(gw, token)
    assert acc["strikes"] == 1 and acc["status"]["state"] == "active"

    sim.state.add_account(token)  # the session works again: a success clears the strikes
    answer_text(chat(gw))
    assert account(gw, token)["strikes"] == 0
    sim.state.remove_account(token)  # logged out for good

    error_of(chat(gw), 502)
    assert account(gw, token)["status"]["state"] == "active"  # one strike is not enough
    error_of(chat(gw), 502)
    acc = account(gw, token)
    assert acc["status"]["state"] == "invalid" and "401" in acc["status"]["reason"]

    error = error_of(chat(gw), 429)
    assert error["code"] == "no_account_available" and "invalid" in error["message"]
    assert gw.admin("POST", "/admin/tokens/enable", json={"ids": [account_id(token)]}).json() == {"updated": 1}
    assert account(gw, token)["status"]["state"] == "active" and account(gw, token)["strikes"] == 0


def test_blocked_403_makes_the_account_invalid(make: Callable[..., Deployment], sim) -> None:
    gw = make()
    (token,) = gw.add_accounts(1)
    sim.state.block(token)

    error = error_of(chat(gw), 502)
    assert error["code"] == "upstream_blocked" and "blocked" in error["message"]
    acc = account(gw, token)
    assert acc["status"]["state"] == "invalid" and "blocked" in acc["status"]["reason"]
    rejected = sim.state.ledger(token)["rejected"]  # the lazy quota refresh asked once per chat mode
    assert error_of(chat(gw), 429)["code"] == "no_account_available"
    assert sim.state.ledger(token)["rejected"] == rejected  # never asked again


# -- not the account's fault: Cloudflare and anti-bot --------------------------------------------------------


def test_cloudflare_403_is_an_egress_problem_not_the_accounts(make: Callable[..., Deployment], strict) -> None:
    strict.config.cloudflare = True
    gw = make()
    tokens = gw.add_accounts(2)

    error = error_of(chat(gw), 502)
    assert error["code"] == "upstream_cloudflare"
    assert "Cloudflare" in error["message"] and "not the account's" in error["message"]
    for token in tokens:
        acc = account(gw, token)
        assert acc["status"]["state"] == "active" and acc["strikes"] == 0 and acc["failures"] == 0
    egress = gw.admin("GET", "/admin/pool").json()["egress"]
    assert egress["cloudflare"] >= 1 and egress["last_kind"] == "cloudflare"
    assert egress == gw.admin("GET", "/admin/tokens").json()["summary"]["egress"]

    # The same accounts work once the operator configures a clearance from their browser.
    strict.state.register_clearance("cf-from-my-browser", gw.settings.user_agent)
    fixed = make(cf_clearance="cf-from-my-browser")
    fixed.admin("POST", "/admin/tokens", json={"tokens": tokens})
    assert answer_text(chat(fixed, "through")) == plain_answer("through")


def test_anti_bot_rejection_is_an_egress_problem_not_the_accounts(make: Callable[..., Deployment], strict) -> None:
    gw = make()
    (token,) = gw.add_accounts(1)
    answer_text(chat(gw))  # quota known: the next request goes straight to chat
    strict.config.strict_statsig = True

    error = error_of(chat(gw), 502)  # 403 {"code":7,"message":"Request rejected by anti-bot rules."}
    assert error["code"] == "upstream_anti_bot" and "GROK_STATSIG_ID" in error["message"]
    strict.config.anti_bot_in_stream = True
    error = error_of(chat(gw), 502)  # the same rejection inside a 200 stream
    assert error["code"] == "upstream_anti_bot"

    acc = account(gw, token)
    assert acc["status"]["state"] == "active" and acc["strikes"] == 0 and acc["failures"] == 0
    assert acc["requests"] == 1
    egress = gw.admin("GET", "/admin/pool").json()["egress"]
    assert egress["anti_bot"] == 2 and egress["last_kind"] == "anti_bot"

    fixed = make(statsig_id=STATSIG)
    fixed.admin("POST", "/admin/tokens", json={"tokens": [token]})
    assert answer_text(chat(fixed, "with statsig")) == plain_answer("with statsig")


# -- upstream trouble: 5xx, network, silence -----------------------------------------------------------------


def test_5xx_backs_off_exponentially_until_a_success(make: Callable[..., Deployment], sim) -> None:
    gw = make(failure_backoff_base=0.5, failure_backoff_max=1.2)
    (token,) = gw.add_accounts(1)
    sim.state.set_fault(token, 503)

    for backoff in (0.5, 1.0, 1.2):  # doubling, capped at FAILURE_BACKOFF_MAX
        wait_active(gw, token)
        since = time.time()
        error = error_of(chat(gw), 502)
        assert error["code"] == "upstream_server" and "503" in error["message"]
        assert cools(account(gw, token), backoff, since, "backoff: server")
    assert account(gw, token)["consecutive_failures"] == 3

    sim.state.set_fault(token, None)
    wait_active(gw, token)
    answer_text(chat(gw))
    acc = account(gw, token)
    assert acc["consecutive_failures"] == 0 and acc["status"]["state"] == "active" and acc["failures"] == 3


def test_unreachable_grok_backs_off(make: Callable[..., Deployment]) -> None:
    gw = make(grok_base_url=f"http://127.0.0.1:{refused_port()}", failure_backoff_base=2.0)
    token = new_token()
    import_only(gw, token)

    since = time.time()
    error = error_of(chat(gw), 502)
    assert error["code"] == "upstream_network" and "could not reach grok.com" in error["message"]
    assert cools(account(gw, token), 2.0, since, "backoff: network")


def test_silent_grok_times_out_and_backs_off(make: Callable[..., Deployment]) -> None:
    healthy = make()
    (token,) = healthy.add_accounts(1)
    learn_quota(healthy, token)
    with black_hole() as port:  # a second instance on the same store whose grok.com never answers
        silent = make(store_prefix=healthy.settings.store_prefix, grok_base_url=f"http://127.0.0.1:{port}",
                      first_byte_timeout=0.5, failure_backoff_base=2.0)
        since = time.time()
        error = error_of(chat(silent), 504)
    assert error["code"] == "upstream_timeout" and "0.5s" in error["message"]
    assert cools(account(healthy, token), 2.0, since, "backoff: timeout")


# -- failover -----------------------------------------------------------------------------------------------


def _break(sim: SimulatorServer, token: str, how: str) -> None:
    if how == "503":
        sim.state.set_fault(token, 503, times=1)
    elif how == "429":
        sim.state.set_fault(token, 429, times=1)
    elif how == "401":
        sim.state.remove_account(token)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("how", ["503", "429", "401"])
def test_failed_attempt_is_retried_on_another_account(
    make: Callable[..., Deployment], sim, how: str, stream: bool
) -> None:
    gw = make()
    (first,) = gw.add_accounts(1, tier="heavy")  # fast 400 remaining: the pool's first choice
    (second,) = gw.add_accounts(1, tier="super")  # fast 140
    learn_quota(gw, first, second)
    _break(sim, first, how)

    prompt = f"fail over {how}"
    assert answer_text(chat(gw, prompt, stream=stream)) == plain_answer(prompt)  # one clean answer
    assert sim.state.ledger(second)["accepted"] == {"fast": 1}
    assert account(gw, second)["requests"] == 1
    broken = account(gw, first)
    assert broken["failures"] == 1 and broken["last_error"].startswith(
        {"503": "server", "429": "rate_limited", "401": "unauthorized"}[how])
    assert account(gw, first)["quota"]["fast"]["remaining"] == 400  # the failed attempt cost nothing


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_when_every_attempt_fails_the_client_sees_one_clear_error(
    make: Callable[..., Deployment], sim, stream: bool
) -> None:
    gw = make(max_attempts=3)
    tokens = gw.add_accounts(4)
    learn_quota(gw, *tokens)
    for token in tokens:
        sim.state.set_fault(token, 429, message="Grok is under heavy usage")  # each account's own trouble

    response = chat(gw, stream=stream)
    error = error_of(response, 429)  # a JSON error, not a stream that started and broke
    assert error["code"] == "upstream_rate_limited" and "heavy usage" in error["message"]
    assert "Traceback" not in response.text
    tried = [t for t in tokens if sim.state.ledger(t)["rejected"]]
    assert len(tried) == 3  # max_attempts accounts, each once
    assert sum(account(gw, t)["failures"] for t in tokens) == 3
    assert sorted(account(gw, t)["status"]["state"] for t in tokens) == ["active", "cooling", "cooling", "cooling"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_same_server_error_on_two_accounts_stops_there_and_penalises_nobody(
    make: Callable[..., Deployment], sim, stream: bool
) -> None:
    gw = make(max_attempts=3)
    tokens = gw.add_accounts(4)
    learn_quota(gw, *tokens)
    for token in tokens:
        sim.state.set_fault(token, 503)

    error = error_of(chat(gw, stream=stream), 502)
    assert error["code"] == "upstream_rejected_request" and "grok.com server error 503" in error["message"]
    tried = [t for t in tokens if sim.state.ledger(t)["rejected"]]
    assert len(tried) == 2  # the second identical failure ends it
    assert sum(account(gw, t)["failures"] for t in tokens) == 2
    assert all(account(gw, t)["status"]["state"] == "active" for t in tokens)
