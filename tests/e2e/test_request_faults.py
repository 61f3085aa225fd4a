"""Failures charged to whom caused them, and answers that survive what goes wrong around them.

Client → gateway over real HTTP → simulated grok.com → embedded Redis. Covers: inputs no upstream can take
(rejected or cleaned at the edge), a failure that repeats on a second account (the request's fault: nobody
penalised), Cloudflare never retried on another account, answers that end early (JSON and SSE), non-fatal
in-stream warnings, a client hanging up mid-stream, and a store that stops answering while an answer streams.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from core.pool.tokens import account_id
from simulator.runner import SimulatorServer
from simulator.text import plain_answer
from tests.e2e import test_failure_rules as rules
from tests.e2e.conftest import API_KEY, Deployment

CHAT = "/rest/app-chat/conversations/new"

# Like test_failure_rules, this module runs its own simulator (some tests switch simulator-wide modes), with the
# same fixtures: ``sim`` for the module, ``strict`` restoring its switches after a test, gateways built alike.
sim = rules.sim
strict = rules.strict


@pytest.fixture(scope="module")
def make(sim: SimulatorServer, embedded_redis) -> Iterator[Callable[..., Deployment]]:
    yield from rules.gateways(sim, embedded_redis.url, "faults-", stream_idle_timeout=5.0, lease_wait=0.0)


def post(gw: Deployment, content: str | None = None, *, body: bytes | dict[str, Any] | None = None,
         stream: bool = False, timeout: float = 30) -> httpx.Response:
    if body is None:
        body = {"model": "grok-4.5-fast", "stream": stream, "messages": [{"role": "user", "content": content}]}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.base_url + "/chat/completions", content=raw, timeout=timeout,
                      headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})


def sse_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def sse_text(events: list[str]) -> str:
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def accounts(gw: Deployment) -> dict[str, dict[str, Any]]:
    """This deployment's accounts by id, read one by one (independent of the listing's pagination)."""
    out = {}
    for token in gw.tokens:
        response = gw.admin("GET", f"/admin/tokens/{account_id(token)}")
        assert response.status_code == 200, response.text
        out[account_id(token)] = response.json()
    return out


def learn_quota(gw: Deployment, *tokens: str) -> None:
    for token in tokens:
        assert gw.admin("POST", f"/admin/tokens/{account_id(token)}/test").json()["ok"]


def chats_sent(sim: SimulatorServer, tokens: list[str]) -> int:
    return sum(1 for r in sim.state.requests(path=CHAT) if any(t in r["headers"].get("cookie", "") for t in tokens))


# -- inputs no upstream can take ------------------------------------------------------------------------------


def test_lone_surrogate_is_a_400_at_the_edge_and_no_account_is_touched(make, sim) -> None:
    gw = make()
    tokens = gw.add_accounts(3)
    before = chats_sent(sim, tokens)
    raw = b'{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "ok"},' \
          b' {"role": "user", "content": "a\\ud800b"}]}'
    response = post(gw, body=raw)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages[1].content" and "surrogate" in error["message"]
    assert chats_sent(sim, tokens) == before  # never reached upstream
    assert all(a["status"]["state"] == "active" and a["failures"] == 0 for a in accounts(gw).values())
    # A valid pair (an emoji written as two escapes) is fine.
    ok = post(gw, body=b'{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "hi \\ud83d\\ude00"}]}')
    assert ok.status_code == 200, ok.text


def test_control_characters_are_removed_before_upstream(make, sim) -> None:
    gw = make()
    gw.add_accounts(1)
    response = post(gw, "tab\tand\nnew\x00li\x1bne")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == plain_answer("tab\tand\nnewline")


def test_invalid_utf8_body_is_a_clear_400(make) -> None:
    gw = make()
    gw.add_accounts(1)
    response = post(gw, body=b'{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "a\xff\xfeb"}]}')
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {"message": "request body is not valid UTF-8 JSON", "param": "body",
                                        "type": "invalid_request_error", "code": "invalid_request"}


# -- a failure that repeats on a second account is the request's fault -----------------------------------------


def test_failure_repeating_on_a_second_account_penalises_nobody(make, sim) -> None:
    gw = make()
    tokens = gw.add_accounts(3)
    before = chats_sent(sim, tokens)
    response = post(gw, "this content makes grok.com fail #crash")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_rejected_request" and "2 accounts" in error["message"]
    assert chats_sent(sim, tokens) == before + 2  # a third account was not tried
    for acc in accounts(gw).values():
        assert acc["status"]["state"] == "active" and acc["in_flight"] == 0, acc
    assert post(gw, "and the pool still serves").status_code == 200


def test_a_first_failure_is_held_against_its_account_once_another_serves(make, sim) -> None:
    gw = make()
    faulty, healthy = gw.add_accounts(2)
    learn_quota(gw, faulty, healthy)  # both fresh: the one with more quota left (or either) goes first
    sim.state.set_fault(faulty, 503)
    try:
        for _ in range(20):  # the pool picks at random among equals: go on until the faulty one was tried
            assert post(gw, "hello").status_code == 200
            if chats_sent(sim, [faulty]):
                break
        acc = accounts(gw)
        bad, good = acc[account_id(faulty)], acc[account_id(healthy)]
        assert bad["status"]["state"] == "cooling" and bad["status"]["reason"].startswith("backoff: server"), bad
        assert bad["in_flight"] == 0 and bad["failures"] == 1
        assert good["status"]["state"] == "active" and good["failures"] == 0
    finally:
        sim.state.set_fault(faulty, None)


def test_poisoned_prompts_do_not_starve_clean_ones(make, sim) -> None:
    """20 % poisoned prompts (a lone surrogate, or content upstream chokes on) among 100: clean ones ≥ 99 % ok."""
    gw = make(account_concurrency=3, lease_wait=5.0)
    learn_quota(gw, *gw.add_accounts(3, concurrency_limit=3))
    poison = [b'{"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "x\\udfffy"}]}',
              {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "boom #crash"}]}]

    def one(n: int) -> tuple[bool, int]:
        if n % 5 == 0:
            return True, post(gw, body=poison[(n // 5) % 2]).status_code
        return False, post(gw, f"clean {n}").status_code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(100)))
    clean = [status for poisoned, status in results if not poisoned]
    assert sum(status == 200 for status in clean) >= 0.99 * len(clean), clean
    assert {status for poisoned, status in results if poisoned} <= {400, 502}


# -- Cloudflare is our egress: never retried on another account -------------------------------------------------


def test_cloudflare_is_not_retried_on_other_accounts(make, strict) -> None:
    gw = make()
    tokens = gw.add_accounts(3)
    learn_quota(gw, *tokens)
    strict.config.cloudflare = True
    before = len(strict.state.requests())
    response = post(gw, "hello")
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_cloudflare"
    assert len(strict.state.requests()) == before + 1, "a Cloudflare challenge was retried"


# -- answers that end early, and warnings that do not end them --------------------------------------------------


def test_answer_ending_without_its_end_is_an_error_json(make) -> None:
    gw = make()
    gw.add_accounts(1)
    response = post(gw, "cut me short #long=20 #truncate")
    assert response.status_code == 502, response.text
    assert "before the answer was complete" in response.json()["error"]["message"]


def test_answer_ending_without_its_end_is_an_error_event_sse(make) -> None:
    gw = make()
    gw.add_accounts(1)
    response = post(gw, "cut me short #long=20 #truncate", stream=True)
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert "before the answer was complete" in last["error"]["message"]
    finishes = [c["choices"][0]["finish_reason"] for e in events[:-2] if (c := json.loads(e)).get("choices")]
    assert "stop" not in finishes


@pytest.mark.parametrize("stream", [False, True])
def test_non_fatal_warning_does_not_end_the_answer(make, stream: bool) -> None:
    gw = make()
    gw.add_accounts(1)
    prompt = "go on despite it #long=20 #warning"
    plain = post(gw, "go on despite it #long=20")
    response = post(gw, prompt, stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        events = sse_events(response)
        assert events[-1] == "[DONE]" and not any('"error"' in e for e in events)
        assert sse_text(events) == plain.json()["choices"][0]["message"]["content"]
    else:
        assert response.json()["choices"][0]["message"]["content"] == plain.json()["choices"][0]["message"]["content"]


# -- a client hanging up mid-stream -----------------------------------------------------------------------------


def test_client_hanging_up_mid_stream_settles_and_closes_upstream(make, sim) -> None:
    gw = make()
    (token,) = gw.add_accounts(1)
    aid = account_id(token)
    body = {"model": "grok-4.5-fast", "stream": True,
            "messages": [{"role": "user", "content": "slowly #long=40 #stall=30"}]}
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        lines = response.iter_lines()  # kept: a dropped line iterator would close the response itself
        for line in lines:
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break
        assert accounts(gw)[aid]["in_flight"] == 1
    # Hung up during the stall: the lease is settled (slot free, request counted) and upstream is closed.
    deadline = time.monotonic() + 10
    while accounts(gw)[aid]["in_flight"] or sim.state.ledger(token)["in_flight"]:
        assert time.monotonic() < deadline, (accounts(gw)[aid], sim.state.ledger(token))
        time.sleep(0.05)
    assert accounts(gw)[aid]["requests"] == 1


# -- the store stops answering while an answer streams -----------------------------------------------------------


class FrozenStore:
    """Freezes the real Redis behind the gateway (CLIENT PAUSE: every command waits) for a while."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)

    def pause(self, seconds: float) -> None:
        self.redis.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

    def resume(self) -> None:
        self.redis.execute_command("CLIENT", "UNPAUSE")


@pytest.mark.parametrize("stream", [True, False])
def test_answer_survives_a_store_outage_at_settle(make, embedded_redis, stream: bool) -> None:
    gw = make(store_timeout=0.3)
    gw.add_accounts(1)
    prompt = "an answer while the store sleeps #long=30 #stall=1"
    freezer = FrozenStore(embedded_redis.url)
    # Freeze the store while the answer is stalled half way: the settle at its end finds no store.
    timer = threading.Timer(0.5, freezer.pause, args=(3.0,))
    timer.start()
    try:
        started = time.monotonic()
        response = post(gw, prompt, stream=stream)
        took = time.monotonic() - started
    finally:
        timer.join()
        freezer.resume()
    assert response.status_code == 200, response.text
    assert took < 2.9, "the answer waited for the store to come back"
    if stream:
        events = sse_events(response)
        assert events[-1] == "[DONE]" and not any('"error"' in e for e in events), events[-3:]
        finishes = [c["choices"][0]["finish_reason"] for e in events[:-1] if (c := json.loads(e)).get("choices")]
        assert finishes[-1] == "stop"
        text = sse_text(events)
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert len(text.split()) >= 20


# -- a long answer keeps its lease ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_a_long_answer_renews_its_lease_through_upstream_silence(make, sim, stream: bool) -> None:
    """LEASE_TTL 1 s, an answer that pauses 2.5 s half way: the lease is renewed during the pause, so the
    account stays busy for others (its concurrency is 1) and no second stream is ever sent to it."""
    gw = make(lease_ttl=1.0, lease_wait=0.0)
    (token,) = gw.add_accounts(1, concurrency_limit=1)
    learn_quota(gw, token)
    result: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: result.update(r=post(gw, "pause #long=20 #stall=2.5", stream=stream)))
    slow.start()
    deadline = time.monotonic() + 10
    while not sim.state.ledger(token)["in_flight"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.8)  # well past the lease's first expiry, inside the pause
    busy = post(gw, "may I?")
    slow.join(15)
    assert busy.status_code == 429 and "busy" in busy.json()["error"]["message"], busy.text
    assert result["r"].status_code == 200, result["r"].text
    ledger = sim.state.ledger(token)
    assert ledger["violations"] == [] and ledger["max_in_flight"] == 1
    acc = accounts(gw)[account_id(token)]
    assert acc["in_flight"] == 0 and acc["requests"] == 1


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_dying_mid_answer_earns_the_account_no_backoff(make, sim, stream: bool) -> None:
    gw = make()
    (token,) = gw.add_accounts(1)
    response = post(gw, "half an answer #long=20 #disconnect", stream=stream)
    if stream:
        events = sse_events(response)
        assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
    else:
        assert response.status_code == 502, response.text
    acc = accounts(gw)[account_id(token)]
    assert acc["status"]["state"] == "active" and acc["failures"] == 1 and acc["in_flight"] == 0, acc
    assert post(gw, "and the next one is served at once").status_code == 200


# -- quota arithmetic on the paths a mutation test found untested ------------------------------------------------


def test_a_turn_upstream_accepted_then_failed_is_charged(make, sim) -> None:
    """The stream dies after grok.com opened the conversation but before any answer: grok.com charged the
    turn, so the pool's quota must drop by one too (a rate-limited turn would not be charged)."""
    gw = make()
    (token,) = gw.add_accounts(1)
    learn_quota(gw, token)
    sim.state.script_replies(token, [""])  # no answer text: the error comes right after the conversation line
    before = accounts(gw)[account_id(token)]["quota"]["fast"]["remaining"]
    response = post(gw, "fail right away #error")
    assert response.status_code == 502, response.text
    after = accounts(gw)[account_id(token)]["quota"]["fast"]["remaining"]
    charged = sim.state.ledger(token)["charged"].get("fast", 0)
    assert charged == 1 and after == before - 1


def test_a_lazy_refresh_stores_quota_net_of_the_request_it_serves(make, sim) -> None:
    """Quota never read: the lease refreshes it first; the stored remaining must be upstream's after this
    request's own charge, not before it."""
    gw = make()
    (token,) = gw.add_accounts(1)
    assert post(gw, "first use").status_code == 200
    ours = accounts(gw)[account_id(token)]["quota"]["fast"]
    refreshed = gw.admin("POST", f"/admin/tokens/{account_id(token)}/test").json()
    assert refreshed["ok"]
    assert ours["remaining"] == accounts(gw)[account_id(token)]["quota"]["fast"]["remaining"]


# -- what the gateway cannot honour is refused, not ignored -------------------------------------------------------


@pytest.mark.parametrize("extra,param", [
    ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ({"modalities": ["text", "audio"], "audio": {"format": "wav", "voice": "alloy"}}, "modalities"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
])
def test_output_features_grok_lacks_are_a_400(make, extra: dict[str, Any], param: str) -> None:
    gw = make()
    gw.add_accounts(1)
    body = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = post(gw, body=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


def test_head_probes_and_image_models_are_listed(make) -> None:
    gw = make()
    assert httpx.head(gw.url + "/").status_code == 200
    assert httpx.head(gw.url + "/health").status_code == 200
    wrong = httpx.post(gw.url + "/health")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]  # HTTP requires Allow on a 405
    models = httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {API_KEY}"}).json()["data"]
    assert {"grok-4.5-fast", "grok-imagine-image"} <= {m["id"] for m in models}
