"""The admin side: listing, summary, edits, deletion, export, encryption at rest."""

from __future__ import annotations

import pytest

from core.errors import FailureKind, NoAccountAvailable, UpstreamError
from core.pool import Outcome, QuotaWindow, TokenDecryptError, TokenPool
from tests.pool.conftest import fake_token
from tests.pool.helpers import add_accounts, set_quota, set_tier


async def test_list_filters_and_summary(pool: TokenPool) -> None:
    a, b, c, d = await add_accounts(pool, 4, tags=["eu"])
    await set_tier(pool, a, "super")
    await set_tier(pool, b, "basic")
    await pool.set_tags(c, ["us", "spare"])
    await pool.set_note(c, "  backup  ")
    await pool.set_enabled([d], False)
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic", exclude=[c]),
        Outcome.failed(UpstreamError(FailureKind.RATE_LIMITED, "slow down")),
    )
    lease = await pool.lease(mode="expert", min_tier="basic", exclude=[a, b])  # c stays in flight

    assert [x.id for x in await pool.list(tier="super")] == [a]
    assert [x.id for x in await pool.list(tag="us")] == [c]
    assert [x.id for x in await pool.list(status="disabled")] == [d]
    assert len(await pool.list(status="cooling")) == 1
    got = await pool.get(c)
    assert got and got.tags == ("spare", "us") and got.note == "backup" and got.in_flight == 1
    assert await pool.get("nope") is None

    summary = await pool.summary()
    assert summary.total == 4 and summary.in_flight == 1
    assert summary.by_tier == {"basic": 1, "super": 1, "heavy": 0, "unknown": 2}
    assert summary.by_status == {"active": 2, "cooling": 1, "disabled": 1, "invalid": 0}
    assert summary.remaining["fast"] == 140 + 30  # the 429 was refunded (upstream did not charge it)
    assert summary.unknown_quota["fast"] == 1  # c (d is disabled and not counted)
    assert summary.encryption == "none" and summary.plaintext_accounts == 4
    await pool.settle(lease, Outcome.cancelled())


async def test_summary_remaining_per_mode(pool: TokenPool) -> None:
    a, b = await add_accounts(pool, 2)
    await set_quota(pool, a, "fast", 7, 30)
    await set_quota(pool, b, "fast", 5, 30)
    await pool.update_quota(b, {}, {"image_pro": QuotaWindow(2, None, 86400)})
    summary = await pool.summary()
    assert summary.remaining["fast"] == 12 and summary.unknown_quota["fast"] == 0
    assert summary.remaining["image_pro"] == 2 and summary.unknown_quota["image_pro"] == 1


async def test_delete(pool: TokenPool) -> None:
    a, b = await add_accounts(pool, 2)
    lease = await pool.lease(mode="fast", min_tier="basic", exclude=[b])
    assert await pool.delete([a, "missing"]) == 1
    assert [x.id for x in await pool.list()] == [b]
    assert await pool.store.call("EXISTS", pool.keys.leases(a)) == 0
    await pool.settle(lease, Outcome.success())  # settling a lease of a deleted account is harmless
    assert await pool.get(a) is None
    assert await pool.delete([]) == 0


async def test_disable_and_enable(pool: TokenPool) -> None:
    (a,) = await add_accounts(pool, 1)
    assert await pool.set_enabled([a, "missing"], False) == 1
    assert await pool.get("missing") is None  # edits never create accounts
    with pytest.raises(NoAccountAvailable, match="1 disabled"):
        await pool.lease(mode="fast", min_tier="basic")
    await pool.set_enabled([a], True)
    await pool.settle(
        await pool.lease(mode="fast", min_tier="basic"),
        Outcome.failed(UpstreamError(FailureKind.BLOCKED, "x")),
    )
    assert (await pool.get(a)).status.state == "invalid"  # type: ignore[union-attr]
    await pool.set_enabled([a], True)  # the admin's "try again"
    got = await pool.get(a)
    assert got and got.status.state == "active" and got.strikes == 0


async def test_export_plaintext(pool: TokenPool) -> None:
    _, b = await add_accounts(pool, 2)
    assert await pool.export() == [fake_token(0), fake_token(1)]
    assert await pool.export([b]) == [fake_token(1)]


async def test_encrypted_at_rest_when_a_key_is_set(make_pool, store) -> None:
    pool: TokenPool = make_pool(store, encryption_key="s3cret-key")
    report = await pool.add([fake_token(1)])
    assert report.encrypted
    account = report.added[0].account_id or ""
    raw = await store.call("HGET", pool.keys.account(account), "token")
    assert fake_token(1) not in raw and raw.startswith("v1.")
    everything = await store.call("HGETALL", pool.keys.account(account))
    assert not any(fake_token(1) in str(value) for value in everything)
    got = await pool.get(account)
    assert got and got.encrypted and got.masked == f"{fake_token(1)[:4]}…{fake_token(1)[-4:]}"
    assert fake_token(1) not in repr(got)
    lease = await pool.lease(mode="fast", min_tier="basic")
    assert lease.token == fake_token(1)
    assert await pool.export() == [fake_token(1)]
    summary = await pool.summary()
    assert summary.encryption == "aesgcm" and summary.plaintext_accounts == 0

    with pytest.raises(TokenDecryptError, match="differs"):
        await make_pool(store, encryption_key="another key").export()


async def test_plaintext_accounts_are_reported_once_a_key_is_set(make_pool, store) -> None:
    await add_accounts(make_pool(store), 1)  # no key yet
    keyed: TokenPool = make_pool(store, encryption_key="k")
    await add_accounts(keyed, 1, start=1)
    summary = await keyed.summary()
    assert summary.plaintext_accounts == 1 and summary.encryption == "aesgcm"
    assert sorted(await keyed.export()) == sorted([fake_token(0), fake_token(1)])


async def test_set_concurrency_validates(pool: TokenPool) -> None:
    (a,) = await add_accounts(pool, 1)
    with pytest.raises(ValueError, match="at least 1"):
        await pool.set_concurrency(a, 0)
    assert await pool.set_concurrency(a, 4)
    assert (await pool.get(a)).concurrency == 4  # type: ignore[union-attr]
    assert await pool.set_concurrency(a, None)
    assert (await pool.get(a)).concurrency is None  # type: ignore[union-attr]


async def test_bad_arguments(pool: TokenPool) -> None:
    with pytest.raises(ValueError, match="mode"):
        await pool.lease(mode="turbo", min_tier="basic")
    with pytest.raises(ValueError, match="tier"):
        await pool.lease(mode="fast", min_tier="mega")
    (a,) = await add_accounts(pool, 1)
    with pytest.raises(ValueError, match="quota kind"):
        await pool.update_quota(a, {"turbo": QuotaWindow(1, 1, 1)})
    await set_quota(pool, a, "fast", 1, 1)
