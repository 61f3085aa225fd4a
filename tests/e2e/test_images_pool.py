"""Images API and the token pool: failover before upstream accepts, charges after it did, lazy quota refresh of
the media products, moderation in a stream, and the in-chat transport (``IMAGE_TRANSPORT=chat``)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import openai
import pytest

from core.pool.tokens import account_id
from tests.e2e.conftest import Deployment

JPEG = b"\xff\xd8\xff"


@pytest.fixture
def fresh(deploy: Callable[..., Deployment], sim, tmp_path) -> Callable[..., Deployment]:
    def make(**overrides: object) -> Deployment:
        return deploy(grok_imagine_ws_url=sim.imagine_ws_url, data_dir=tmp_path, account_concurrency=1,
                      **overrides)

    return make


def _ledger(deployment: Deployment, token: str) -> dict:
    return deployment.sim.state.ledger(token)


def _violations(deployment: Deployment) -> list:
    """This deployment's accounts' violations (the session's simulator also serves other tests' accounts)."""
    return [v for token in deployment.tokens for v in _ledger(deployment, token)["violations"]]


def test_blocked_account_fails_over_before_upstream_charges(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    bad, good = deployment.add_accounts(2, tier="super")
    deployment.sim.state.block(bad)
    for _ in range(2):  # whichever account the pool picks first, the request is served by the good one
        result = deployment.client().images.generate(prompt="a boat", response_format="b64_json")
        assert len(result.data) == 1
    assert _ledger(deployment, bad)["charged"].get("image", 0) == 0
    assert _ledger(deployment, good)["charged"]["image"] == 2
    account = deployment.admin("GET", f"/admin/tokens/{account_id(bad)}").json()
    assert account["status"]["state"] in ("invalid", "cooling", "active")  # the pool counted the failure
    assert _violations(deployment) == []


def test_exhausted_product_is_skipped_by_the_lazy_refresh(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    empty, full = deployment.add_accounts(2, tier="basic")
    deployment.sim.state.set_quota(empty, "imagePro", remaining=0)
    for _ in range(2):
        deployment.client().images.generate(prompt="a bridge", model="grok-imagine-image-pro",
                                            response_format="b64_json")
    assert _ledger(deployment, full)["charged"]["imagePro"] == 2
    assert _violations(deployment) == []  # the empty account was never sent a request
    # basic accounts have 2 imagePro a day: the third request finds every account out of that product
    with pytest.raises(openai.RateLimitError) as info:
        deployment.client().images.generate(prompt="a bridge", model="grok-imagine-image-pro")
    assert "image_pro" in info.value.message or "quota" in info.value.message
    assert _violations(deployment) == []


def test_upstream_error_after_acceptance_is_charged_once_and_not_retried(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    deployment.add_accounts(2, tier="super")
    with pytest.raises(openai.APIStatusError) as info:
        deployment.client().images.generate(prompt="boom #error")
    assert info.value.status_code == 502
    charged = [_ledger(deployment, t)["charged"].get("image", 0) for t in deployment.tokens]
    assert sorted(charged) == [0, 1]


def test_stream_all_moderated_ends_with_an_error_event(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    deployment.add_accounts(1, tier="super")
    stream = deployment.client().images.generate(prompt="bad #moderated", stream=True, partial_images=1)
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert "moderated" in info.value.message


def test_partly_moderated_edit_batch_reports_the_count(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    deployment.add_accounts(1, tier="super")
    with pytest.raises(openai.BadRequestError) as info:
        deployment.client().images.edit(image=("a.png", _png(), "image/png"), prompt="edit #moderated")
    assert info.value.code == "content_policy_violation"
    assert _ledger(deployment, deployment.tokens[0])["charged"]["imageEdit"] == 1


def test_chat_transport_generates_in_chat_and_charges_fast(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh(image_transport="chat")
    deployment.add_accounts(2, tier="super")
    marker = f"chatdrawn-{uuid.uuid4().hex[:8]}"
    deployment.sim.state.rules.add(marker, scenario="image")  # the simulator draws for this prompt
    result = deployment.client().images.generate(prompt=f"{marker} a cat", n=3, response_format="b64_json")
    assert len(result.data) == 3
    assert all(base64.b64decode(d.b64_json).startswith(JPEG) for d in result.data)
    charged = [_ledger(deployment, t)["charged"] for t in deployment.tokens]
    assert sum(c.get("fast", 0) for c in charged) == 2  # 2 + 1 images: two calls
    assert sum(c.get("image", 0) for c in charged) == 0
    requests = deployment.sim.state.requests(path="/ws/imagine")
    assert not [r for r in requests if r["headers"].get("cookie", "").find(deployment.tokens[0]) >= 0]
    stream = deployment.client().images.generate(prompt=f"{marker} a dog", stream=True, partial_images=1)
    kinds = [e.type for e in stream]
    assert kinds == ["image_generation.partial_image", "image_generation.completed"]
    with pytest.raises(openai.BadRequestError):
        deployment.client().images.generate(prompt="x", model="grok-imagine-image-pro")
    with pytest.raises(openai.BadRequestError) as info:  # in chat Grok picks the size: not silently dropped
        deployment.client().images.generate(prompt="x", size="1792x1024")
    assert info.value.body["param"] == "size"


def _png() -> bytes:
    from tests.e2e.media import png

    return png(16, 16)


def test_store_commands_per_image_request(sim, embedded_redis, tmp_path) -> None:
    """Per upstream call one lease + one settle; per stored image (``url``) one record; ``b64_json`` stores none."""
    from api._app import create_app
    from core.settings import Settings
    from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY
    from tests.support.asgi import ThreadedServer

    settings = Settings(
        api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"e2e-imgcmd-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url,
        grok_assets_url=sim.assets_url, grok_imagine_ws_url=sim.imagine_ws_url, media_backend="local",
        data_dir=tmp_path, first_byte_timeout=10.0,
    )
    app = create_app(settings)
    with ThreadedServer(app) as server:
        deployment = Deployment(server.url, settings, sim)
        deployment.add_accounts(2, tier="super")
        client = deployment.client()

        def spent(**kwargs: object) -> int:
            store = app.state.gateway._gateway.store
            before = store.commands_sent
            client.images.generate(prompt="a kite", **kwargs)
            return store.commands_sent - before

        spent(n=8, response_format="b64_json")  # warm up: scripts loaded, both accounts' quota refreshed
        spent(n=1)
        # lease + settle per batch, one media record per stored image, one request-log write (core/ledger)
        assert spent(n=1, response_format="b64_json") == 2 + 1
        assert spent(n=1) == 3 + 1
        assert spent(n=6) == 2 * 2 + 6 + 1  # batches of 4 + 2
        assert spent(n=6, response_format="b64_json") == 4 + 1


def test_previews_then_silence_is_a_charged_timeout(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh(stream_idle_timeout=1.0)
    deployment.add_accounts(2, tier="super")
    with pytest.raises(openai.APIStatusError) as info:
        deployment.client().images.generate(prompt="stuck #blocked")
    assert info.value.status_code == 504
    charged = [_ledger(deployment, t)["charged"].get("image", 0) for t in deployment.tokens]
    assert sorted(charged) == [0, 1]  # upstream took it: charged once, not retried elsewhere
    assert all(_ledger(deployment, t)["in_flight"] == 0 for t in deployment.tokens)


def test_account_blocked_after_its_user_id_was_cached_still_fails_over(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    first, second = deployment.add_accounts(2, tier="super")
    for _ in range(4):  # both accounts served once at least: their user ids are cached by the gateway
        deployment.client().images.generate(prompt="warm", n=5, response_format="b64_json")
    assert all(_ledger(deployment, t)["charged"].get("image", 0) for t in (first, second))
    deployment.sim.state.block(first)
    served = _ledger(deployment, second)["charged"]["image"]
    for _ in range(2):
        result = deployment.client().images.generate(prompt="after the block", response_format="b64_json")
        assert len(result.data) == 1
    assert _ledger(deployment, second)["charged"]["image"] == served + 2
    assert deployment.admin("GET", "/admin/tokens").json()["summary"]["egress"]["cloudflare"] == 0


def test_one_account_serves_ten_images_call_after_call(fresh: Callable[..., Deployment]) -> None:
    deployment = fresh()
    (token,) = deployment.add_accounts(1, tier="super")
    result = deployment.client().images.generate(prompt="ten stars", n=10, response_format="b64_json")
    assert len(result.data) == 10 and not getattr(result, "failed_count", None)
    ledger = _ledger(deployment, token)
    assert ledger["charged"]["image"] == 3  # 4 + 4 + 2
    assert ledger["max_in_flight"] == 1 and ledger["violation_count"] == 0
