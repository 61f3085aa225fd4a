"""The ledger under concurrency: exact charges, in-flight tracking, violations for over-quota and
over-concurrency requests."""

from __future__ import annotations

import asyncio

import httpx

from tests.simulator.helpers import NEW, TOKEN


async def _status(client: httpx.AsyncClient, message: str, mode: str = "fast") -> int:
    async with client.stream("POST", NEW, json={"message": message, "modeId": mode}) as response:
        await response.aread()
        return response.status_code


async def test_burst_beyond_quota_records_violations(aclient: httpx.AsyncClient, sim) -> None:
    sim.state.set_quota(TOKEN, "fast", total=10)
    statuses = await asyncio.gather(*(_status(aclient, f"q{i}") for i in range(40)))
    assert statuses.count(200) == 10 and statuses.count(429) == 30
    ledger = (await aclient.get("/__sim/ledger")).json()
    account = ledger["accounts"][TOKEN]
    assert account["accepted"] == {"fast": 10} and account["charged"] == {"fast": 10}
    assert account["rejected"] == {"quota_exhausted": 30}
    assert account["violation_count"] == 30 == ledger["violation_count"]
    assert {v["kind"] for v in account["violations"]} == {"quota_exhausted"}
    assert account["in_flight"] == 0
    assert ledger == sim.state.ledger()


async def test_concurrency_limit(aclient: httpx.AsyncClient, sim) -> None:
    sim.state.set_concurrency_limit(TOKEN, 3)
    # Streams stay open 0.3 s, so 8 simultaneous requests overlap.
    statuses = await asyncio.gather(*(_status(aclient, f"#stall=0.3 n{i}") for i in range(8)))
    assert statuses.count(200) == 3 and statuses.count(429) == 5
    for _ in range(100):  # a stream is released just after its last byte reaches the client
        account = sim.state.ledger(TOKEN)
        if account["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert account["max_in_flight"] == 3 and account["in_flight"] == 0
    assert [v["kind"] for v in account["violations"]] == ["concurrency"] * 5
    assert all(v["in_flight"] == 3 and v["concurrency_limit"] == 3 for v in account["violations"])
    # Once the streams are done, new requests are accepted again.
    assert await _status(aclient, "again") == 200


async def test_client_disconnect_releases_in_flight(aclient: httpx.AsyncClient, sim) -> None:
    async with aclient.stream("POST", NEW, json={"message": "#stall=5 hold", "modeId": "fast"}) as response:
        async for _ in response.aiter_lines():
            break
        assert sim.state.ledger(TOKEN)["in_flight"] == 1
    for _ in range(100):
        if sim.state.ledger(TOKEN)["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.state.ledger(TOKEN)["in_flight"] == 0


async def test_ledger_spans_accounts_and_reset(aclient: httpx.AsyncClient, sim) -> None:
    sim.state.add_account("second", tier="basic")
    await _status(aclient, "a")
    other = await aclient.post(NEW, json={"message": "b", "modeId": "expert"},
                               headers={"cookie": "sso=second; sso-rw=second"})
    assert other.status_code == 200
    ledger = sim.state.ledger()
    assert ledger["accepted_total"] == 2
    assert ledger["accounts"]["second"]["charged"] == {"expert": 1}
    await aclient.post(NEW, json={"message": "x"}, headers={"cookie": "sso=ghost"})
    assert sim.state.ledger()["unattributed_rejections"] == {"unauthenticated": 1}
    assert (await aclient.delete("/__sim/ledger")).json()["accepted_total"] == 0
    assert sim.state.quota(TOKEN, "fast").remaining == 139  # counters reset, quota untouched
