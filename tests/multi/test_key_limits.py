"""Store-managed API keys across four gateway processes on one store, through the official SDKs: a limit of N
lets exactly N requests through whichever instances they reach, revocation is at once everywhere, and the request
log and statistics afterwards equal what the clients saw and what the simulated grok.com served."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import anthropic
import openai

from tests.multi.conftest import Cluster

INSTANCES = 4
ACCOUNTS = 6


def _new_key(c: Cluster, via: int, **fields: Any) -> tuple[str, str]:
    response = c.http.post(c.gateways[via].url + "/admin/keys", json={"name": f"multi-{uuid.uuid4().hex[:6]}",
                           **fields}, headers={"Authorization": "Bearer multi-admin-secret"})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"]["id"], body["secret"]


async def _burst(c: Cluster, secret: str, count: int, *, prompt: str = "burst {i}") -> Counter[str]:
    clients = [openai.AsyncOpenAI(base_url=g.url + "/v1", api_key=secret, max_retries=0) for g in c.gateways]

    async def one(i: int) -> str:
        try:
            await clients[i % len(clients)].chat.completions.create(
                model="grok-4.5-fast", messages=[{"role": "user", "content": prompt.format(i=i)}]
            )
            return "200"
        except openai.APIStatusError as exc:
            return f"{exc.status_code} {exc.body.get('code') if isinstance(exc.body, dict) else ''}"

    try:
        return Counter(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.close()


def test_key_limits_are_exact_across_instances(cluster) -> None:
    c: Cluster = cluster(INSTANCES, ACCOUNT_CONCURRENCY="4", LEASE_WAIT="20")
    tokens = [f"keys-{uuid.uuid4().hex}" for _ in range(ACCOUNTS)]
    for token in tokens:
        c.sim.add_account(token, tier="super", concurrency_limit=4)
    c.import_tokens(tokens, via=0)
    c.sim.reset_ledger()

    if time.time() % 60 > 40:  # a per-minute limit counts calendar minutes: start with time to spare
        time.sleep(60.5 - time.time() % 60)
    rpm_id, rpm = _new_key(c, 3, rpm=15)
    counts_m = asyncio.run(_burst(c, rpm, 40))
    assert counts_m == {"200": 15, "429 rate_limit_exceeded": 25}, counts_m
    _, brief = _new_key(c, 1, expires_at=time.time() + 3)
    assert asyncio.run(_burst(c, brief, 4)) == {"200": 4}
    time.sleep(3.2)
    assert asyncio.run(_burst(c, brief, 4)) == {"401 api_key_expired": 4}

    daily_id, daily = _new_key(c, 0, rpd=20)
    counts = asyncio.run(_burst(c, daily, 60))
    assert counts == {"200": 20, "429 daily_limit_exceeded": 40}, counts

    quota_id, quota = _new_key(c, 1, quota={"kind": "requests", "limit": 7, "period": "total"})
    counts_q = asyncio.run(_burst(c, quota, 25))
    assert counts_q == {"200": 7, "429 insufficient_quota": 18}, counts_q

    conc_id, conc = _new_key(c, 2, concurrency=2)
    counts_c = asyncio.run(_burst(c, conc, 8, prompt="hold on {i} #stall=2"))
    assert counts_c == {"200": 2, "429 concurrency_limit_exceeded": 6}, counts_c
    assert asyncio.run(_burst(c, conc, 2)) == {"200": 2}  # the slots are free again

    # Revoked through one instance: refused by every instance at once.
    c.admin("DELETE", f"/admin/keys/{daily_id}", via=3)
    assert asyncio.run(_burst(c, daily, 4)) == {"401 invalid_api_key": 4}

    # A model allow-list, in the Anthropic SDK's own error shape on every instance.
    _, narrow = _new_key(c, 0, models=["grok-4.5"])
    for g in c.gateways:
        claude = anthropic.Anthropic(base_url=g.url, api_key=narrow, max_retries=0)
        try:
            claude.messages.create(model="grok-3-fast", max_tokens=20, messages=[{"role": "user", "content": "x"}])
            raise AssertionError("the allow-list let grok-3-fast through")
        except anthropic.PermissionDeniedError as exc:
            assert exc.body["error"]["type"] == "permission_error"

    # The log and the statistics, read through another instance, equal what the clients saw ...
    time.sleep(0.2)
    for key_id, seen in ((rpm_id, counts_m), (daily_id, counts), (quota_id, counts_q),
                         (conc_id, counts_c + Counter({"200": 2}))):
        entries = _all_logs(c, key_id)
        logged = Counter(str(e["status"]) + ("" if e["status"] == 200 else f" {e['error_kind']}") for e in entries)
        assert logged == seen, (key_id, logged, seen)
    stats = c.admin("GET", "/admin/stats", via=1)
    assert stats["by_key"][daily_id]["requests"] == 60 and stats["by_key"][daily_id]["ok"] == 20
    assert stats["by_key"][quota_id] == {**stats["by_key"][quota_id], "requests": 25, "ok": 7, "failed": 18}
    # ... and what grok.com served: one upstream turn per answered request, none for a refused one.
    ledger = c.sim.ledger()
    served = sum(sum(a["charged"].values()) for a in ledger["accounts"].values())
    answered = counts_m["200"] + 4 + counts["200"] + counts_q["200"] + counts_c["200"] + 2
    assert served == answered, (served, answered)
    assert ledger["violation_count"] == 0


def _all_logs(c: Cluster, key_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"key": key_id, "limit": 200}
    while True:
        page = c.admin("GET", "/admin/logs", via=2, params=params)
        entries += page["data"]
        if not page["next_cursor"]:
            return entries
        params["cursor"] = page["next_cursor"]
