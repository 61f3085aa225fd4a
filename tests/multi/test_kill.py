"""An instance dies (SIGKILL) while it holds leases on slow streams.

With ``INSTANCE_ID`` set, its restart frees them at once (``reclaim_instance`` at start-up): 16 streams are
killed, and the restarted instance serves within moments, without "busy" refusals. Without one (serverless),
the slots come back by themselves after ``LEASE_TTL``. Either way the killed requests are counted (usage ==
what grok.com charged) and their quota stays spent, and nothing else is lost."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import httpx

from tests.multi.conftest import API_KEY, Cluster
from tests.multi.load import Result, one_request

LEASE_TTL = 3.0  # seconds; short so the test is quick, long enough to look at the held slots first
STALL = "#long=12 #stall=60"  # half an answer, then a minute of silence: the lease stays held


class SlowStream(threading.Thread):
    """A streamed chat request that has started answering (first content received) and then hangs."""

    def __init__(self, url: str, n: int = 0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.n = n
        self.answering = threading.Event()
        self.outcome = ""

    def run(self) -> None:
        body = {"model": "grok-4.5-fast", "stream": True,
                "messages": [{"role": "user", "content": f"tell me slowly {self.n} {STALL}"}]}
        try:
            with httpx.stream("POST", self.url + "/v1/chat/completions", json=body, timeout=90,
                              headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and _content(json.loads(line[6:])):
                        self.answering.set()
            self.outcome = "ended"
        except httpx.HTTPError as exc:
            self.outcome = type(exc).__name__  # the gateway died under us: expected


def test_killed_instance_without_id_frees_its_slots_after_lease_ttl(cluster) -> None:
    c: Cluster = cluster(2, LEASE_TTL=str(LEASE_TTL))
    doomed, survivor = 0, 1
    tokens = [f"kill-{uuid.uuid4().hex}" for _ in range(3)]
    for token in tokens:
        c.sim.add_account(token, tier="super", quotas={"fast": 30}, concurrency_limit=1)
    ids = c.import_tokens(tokens)

    # Some history first, so there are counters to lose: six requests spread over the three accounts.
    for n in range(6):
        assert c.chat(survivor, f"warm-up {n}").status_code == 200
    before = c.accounts()

    # Two slow streams on the doomed instance: two accounts leased, answering, then silent.
    streams = [SlowStream(c.gateways[doomed].url) for _ in range(2)]
    leased_at = time.monotonic()  # no later than either lease was taken
    for stream in streams:
        stream.start()
        assert stream.answering.wait(15), "the slow stream never started answering"
    held = {aid for aid, a in c.accounts(via=survivor).items() if a["in_flight"] == 1}
    (free,) = set(ids.values()) - held
    assert len(held) == 2

    c.gateways[doomed].kill()
    killed_at = time.monotonic()
    for stream in streams:
        stream.join(10)
        assert stream.outcome and stream.outcome != "ended"
    _wait(lambda: c.sim.ledger()["in_flight_total"] == 0, "the simulator to see the connections close")

    # Until the leases expire, the survivor sees the dead instance's slots as taken and works around them.
    token_of = {aid: token for token, aid in ids.items()}
    charged_before = _charged(c, token_of)
    for n in range(2):
        assert c.chat(survivor, f"meanwhile {n}").status_code == 200
    assert time.monotonic() - leased_at < LEASE_TTL, "too slow to observe the held slots; raise LEASE_TTL"
    charged_now = _charged(c, token_of)
    assert charged_now[free] == charged_before[free] + 2
    assert all(charged_now[aid] == charged_before[aid] for aid in held)
    assert all(c.accounts(via=survivor)[aid]["in_flight"] == 1 for aid in held)

    # Then the slots come back on their own: no cleanup ran anywhere, nobody released them.
    _wait(lambda: c.admin("GET", "/admin/pool", via=survivor)["in_flight"] == 0, "the leases to expire",
          timeout=LEASE_TTL + 5)
    freed_after = time.monotonic() - leased_at
    print(f"\nkilled {time.monotonic() - killed_at:.1f}s ago; slots free {freed_after:.1f}s after leasing "
          f"(LEASE_TTL {LEASE_TTL:g}s)")
    assert freed_after <= LEASE_TTL + 1.5

    # Three overlapping requests on three accounts with one slot each: all are served, so all slots are free.
    answers = _concurrently(lambda n: c.chat(survivor, f"all hands {n} #long=4 #stall=0.5"), 3)
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
    charged_after = _charged(c, token_of)
    assert all(charged_after[aid] == charged_now[aid] + 1 for aid in ids.values())

    # Nothing else was lost. The killed requests were charged by grok.com: their reservations were kept (the
    # store's remaining quota still equals grok.com's) and they were counted when their leases were dropped.
    ledger = c.sim.ledger()
    assert ledger["violation_count"] == 0, ledger["violations"]
    _assert_books_balance(c, token_of, via=survivor)
    after = c.accounts(via=survivor)
    for aid, account in after.items():
        assert account["failures"] == before[aid]["failures"] == 0
        assert account["lost"] == (1 if aid in held else 0)


def test_restarted_instance_reclaims_its_leases_at_once(cluster) -> None:
    """16 streams in flight on 8 accounts × 2 slots, all on one named instance; kill -9; restart it. LEASE_TTL is
    a minute, so only the reclaim can explain slots coming back: the first answer within 5 s of the restart,
    then a 15 s burst (more requests than slots, clients queueing) with < 1 % refused as busy — the old pool
    (leases held until their TTL) refused all but none of them."""
    accounts, slots = 8, 2
    c: Cluster = cluster(1, LEASE_TTL="60", INSTANCE_ID="gw-kill-test", ACCOUNT_CONCURRENCY=str(slots))
    tokens = [f"reclaim-{uuid.uuid4().hex}" for _ in range(accounts)]
    for token in tokens:
        c.sim.add_account(token, tier="super", quotas={"fast": 2000}, concurrency_limit=slots)
    ids = c.import_tokens(tokens)
    token_of = {aid: token for token, aid in ids.items()}
    c.refresh_quotas()  # known quotas: two streams may share an account (a refresh needs it to itself)

    streams = [SlowStream(c.gateways[0].url, n) for n in range(accounts * slots)]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.answering.wait(30), "a slow stream never started answering"
    assert c.admin("GET", "/admin/pool")["in_flight"] == accounts * slots
    assert all(a["in_flight"] == slots for a in c.accounts().values())

    c.gateways[0].kill()
    for stream in streams:
        stream.join(10)
        assert stream.outcome and stream.outcome != "ended"
    _wait(lambda: c.sim.ledger()["in_flight_total"] == 0, "the simulator to see the connections close")

    restarted = time.monotonic()
    gateway = c.restart(0)
    ready = time.monotonic()
    assert "freed 16 lease(s)" in gateway.tail(), gateway.tail()
    first = c.chat(0, "first after the restart")
    first_at = time.monotonic()
    assert first.status_code == 200, first.text
    print(f"\nrestart: ready {ready - restarted:.1f}s, first answer {first_at - restarted:.1f}s after the restart")
    assert first_at - ready < 5.0

    results = asyncio.run(_burst(gateway.url, seconds=15.0, clients=24))
    busy = [r for r in results if r.status == 429 and "busy" in r.message]
    problems = [r for r in results if r.problem or (r.status != 200 and r not in busy)]
    print(f"burst: {len(results)} requests in 15 s, {len(busy)} refused busy "
          f"({100 * len(busy) / max(len(results), 1):.2f} %)")
    assert len(results) >= 100
    assert not problems, [(r.status, r.message, r.problem) for r in problems[:5]]
    assert len(busy) < 0.01 * len(results)

    ledger = c.sim.ledger()
    assert ledger["violation_count"] == 0, ledger["violations"][:10]
    _assert_books_balance(c, token_of)
    for account in c.accounts().values():
        assert account["lost"] == slots  # the two killed streams of each account, counted once


async def _burst(url: str, *, seconds: float, clients: int) -> list[Result]:
    """``clients`` clients asking one after another for ``seconds``: more of them than there are slots, so some
    always queue for one (``LEASE_WAIT``)."""
    results: list[Result] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                index = w * 100_000 + n
                result = Result(index, 0, stream=n % 2 == 1)
                results.append(await one_request(client, url, API_KEY, result, f"burst {index}",
                                                 "grok-4.5-fast"))
                n += 1

        await asyncio.gather(*(worker(w) for w in range(clients)))
    return results


def _assert_books_balance(c: Cluster, token_of: dict[str, str], via: int = 0) -> None:
    """Store == grok.com, account by account: remaining quota, requests, and the day's usage counters."""
    usage = c.admin("GET", "/admin/usage", via=via)["usage"]["accounts"]
    for aid, account in c.accounts(via=via).items():
        sim_account = c.sim.account(token_of[aid])
        charged = c.sim.ledger()["accounts"][token_of[aid]]["charged"].get("fast", 0)
        assert account["quota"]["fast"]["remaining"] == sim_account["quotas"]["fast"]["remaining"], aid
        assert account["status"]["state"] == "active" and account["in_flight"] == 0
        assert account["requests"] == charged, (aid, account["requests"], charged)
        assert usage[aid]["req"] == charged, (aid, usage[aid], charged)


def _content(chunk: dict[str, Any]) -> str:
    return "".join(choice["delta"].get("content") or "" for choice in chunk.get("choices", []))


def _charged(c: Cluster, token_of: dict[str, str]) -> dict[str, int]:
    accounts = c.sim.ledger()["accounts"]
    return {aid: accounts[token]["charged"].get("fast", 0) for aid, token in token_of.items()}


def _concurrently(call: Any, count: int) -> list[httpx.Response]:
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        results[n] = call(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def _wait(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
