"""Many instances leasing at once: the cap and the quota hold, because each decision is one atomic script."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

from core.errors import NoAccountAvailable
from core.pool import Outcome, TokenPool
from tests.pool.helpers import add_accounts, set_quota

ACCOUNTS, QUOTA, INSTANCES, ATTEMPTS = 10, 3, 4, 200


async def test_200_concurrent_leases_across_instances_respect_cap_and_quota(make_pool) -> None:
    pools: list[TokenPool] = [
        make_pool(account_concurrency=1) for _ in range(INSTANCES)
    ]  # separate connections
    accounts = await add_accounts(pools[0], ACCOUNTS)
    for account in accounts:
        await set_quota(pools[0], account, "fast", QUOTA, QUOTA)

    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    served: Counter[str] = Counter()
    refusals: defaultdict[str, int] = defaultdict(int)
    rng = random.Random(7)

    async def attempt(n: int) -> None:
        pool = pools[n % INSTANCES]
        for _ in range(200):  # busy → try again shortly; out of quota → give up
            try:
                lease = await pool.lease(mode="fast", min_tier="basic")
            except NoAccountAvailable as exc:
                refusals["busy" if "busy" in exc.message else "exhausted"] += 1
                if "busy" not in exc.message:
                    return
                await asyncio.sleep(0.001)
                continue
            in_flight[lease.account_id] += 1
            peak[lease.account_id] = max(peak[lease.account_id], in_flight[lease.account_id])
            served[lease.account_id] += 1
            await asyncio.sleep(rng.random() * 0.003)
            in_flight[lease.account_id] -= 1
            await pool.settle(lease, Outcome.success("grok-4.5-fast"))
            return

    await asyncio.gather(*(attempt(n) for n in range(ATTEMPTS)))

    assert max(peak.values()) == 1  # never two requests on one account at once
    assert all(count <= QUOTA for count in served.values())  # never more than its quota reserved
    assert sum(served.values()) == ACCOUNTS * QUOTA  # and all of it was used
    assert refusals["exhausted"] == ATTEMPTS - ACCOUNTS * QUOTA
    for account in await pools[1].list():
        assert account.quota["fast"].remaining == 0 and account.in_flight == 0
        assert account.requests == QUOTA


async def test_concurrent_reservations_never_overspend_a_shared_quota(make_pool) -> None:
    pools: list[TokenPool] = [make_pool() for _ in range(INSTANCES)]
    (account,) = await add_accounts(pools[0], 1)
    await set_quota(pools[0], account, "fast", 10, 10)
    await pools[0].set_concurrency(account, 50)

    async def one(n: int) -> int | None:
        try:
            lease = await pools[n % INSTANCES].lease(mode="fast", min_tier="basic", cost=3)
        except NoAccountAvailable:
            return None
        return lease.reserved

    reserved = [r for r in await asyncio.gather(*(one(n) for n in range(50))) if r is not None]
    assert reserved == [3, 3, 3]  # the last unit is less than the cost: not enough for a fourth
    got = await pools[0].get(account)
    assert got and got.quota["fast"].remaining == 1
