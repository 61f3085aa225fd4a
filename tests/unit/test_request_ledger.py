"""The request log's middleware writes a record once, after the response, and retries a failed write once (the
record also frees a store key's concurrency slot, which otherwise waits for its TTL)."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

import api._ledger as middleware
from api._ledger import RequestLedger
from core import ledger
from core.errors import StoreUnavailable
from core.ledger.reader import LedgerReader


class FlakyLedger:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[ledger.RequestRecord] = []

    async def write(self, record: ledger.RequestRecord) -> None:
        self.attempts.append(record)
        if len(self.attempts) <= self.failures:
            raise StoreUnavailable("store unreachable (test)")
        record.written = True


def app_with(flaky: FlakyLedger):
    async def gateway_get() -> SimpleNamespace:
        return SimpleNamespace(ledger=flaky)

    async def endpoint(scope, receive, send) -> None:
        ledger.current().logged = True  # what client auth does once it knows the requester
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    wrapped = RequestLedger(endpoint)

    async def app(scope, receive, send) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(get=gateway_get)))
        await wrapped(scope, receive, send)

    return app


@pytest.mark.parametrize("failures,written", [(0, 1), (1, 2), (2, 2)])
async def test_a_failed_record_write_is_retried_once(monkeypatch: pytest.MonkeyPatch, failures: int,
                                                     written: int) -> None:
    monkeypatch.setattr(middleware, "RETRY_DELAY", 0.0)
    flaky = FlakyLedger(failures)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_with(flaky)), base_url="http://t") as client:
        response = await client.post("/v1/chat/completions", json={})
    assert response.status_code == 200  # a lost log line never becomes the client's error
    assert len(flaky.attempts) == written and flaky.attempts[0].status == 200


async def test_a_record_written_twice_counts_once(embedded_redis) -> None:
    """The retry above may follow a first try that ran in the store but timed out on the way back: the second
    write of the same record changes nothing (one log entry, one request in the counters)."""
    import uuid

    from core.ledger.writer import Ledger
    from core.settings import Settings
    from core.store import open_store

    settings = Settings(redis_url=embedded_redis.url, store_prefix=f"once-{uuid.uuid4().hex[:8]}:")
    store = open_store(settings)
    try:
        writer = Ledger(store, settings)
        record = ledger.RequestRecord(route="POST /v1/chat/completions", status=200, model="grok-4.5",
                                      prompt_tokens=7, completion_tokens=5)
        await writer.write(record)
        await writer.write(record)
        other = ledger.RequestRecord(route="POST /v1/chat/completions", status=200, model="grok-4.5")
        await writer.write(other)
        assert await store.call("XLEN", writer.log_key) == 2
        totals = (await LedgerReader(writer).stats("24h"))["totals"]
        assert totals["requests"] == 2 and totals["prompt_tokens"] == 7 and totals["completion_tokens"] == 5
    finally:
        await store.close()
