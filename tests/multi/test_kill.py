"""An instance dies (SIGKILL) while it holds leases on slow streams: the slots come back by themselves after
LEASE_TTL, another instance then serves those accounts, and nothing else is lost."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import httpx

from tests.multi.conftest import API_KEY, Cluster

LEASE_TTL = 3.0  # seconds; short so the test is quick, long enough to look at the held slots first
STALL = "#long=12 #stall=60"  # half an answer, then a minute of silence: the lease stays held


class SlowStream(threading.Thread):
    """A streamed chat request that has started answering (first content received) and then hangs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answering = threading.Event()
        self.outcome = ""

    def run(self) -> None:
        body = {"model": "grok-4.5-fast", "stream": True,
                "messages": [{"role": "user", "content": f"tell me slowly {STALL}"}]}
        try:
            with httpx.stream("POST", self.url + "/v1/chat/completions", json=body, timeout=90,
                              headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and _content(json.loads(line[6:])):
                        self.answering.set()
            self.outcome = "ended"
        except httpx.HTTPError as exc:
            self.outcome = type(exc).__name__  # the gateway died under us: expected


def test_killed_instance_leases_expire_and_nothing_else_is_lost(cluster) -> None:
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

    # Nothing else was lost. Counters only grew by what was settled; the killed requests were charged by
    # grok.com and their reservations were kept, so the store's remaining quota still equals grok.com's.
    ledger = c.sim.ledger()
    assert ledger["violation_count"] == 0, ledger["violations"]
    after = c.accounts(via=survivor)
    for aid, account in after.items():
        sim_account = c.sim.account(token_of[aid])
        assert account["quota"]["fast"]["remaining"] == sim_account["quotas"]["fast"]["remaining"], aid
        assert account["failures"] == before[aid]["failures"] == 0
        assert account["status"]["state"] == "active" and account["in_flight"] == 0
        killed = 1 if aid in held else 0  # charged upstream, never settled: it is in the quota, not in requests
        assert account["requests"] == charged_after[aid] - killed
        assert account["requests"] >= before[aid]["requests"]


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
