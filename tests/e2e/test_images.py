"""Images API end to end: the official ``openai`` SDK → the gateway over real HTTP → the simulator's Imagine
WebSocket and edit stream; images kept in the real local media store and fetched back by a plain HTTP client
with no cookies. Quota: the pool's view of each image product matches the simulator's ledger."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
import openai
import pytest

from core.pool.tokens import account_id
from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import data_uri, png

JPEG = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def images(deploy: Callable[..., Deployment], sim, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = deploy(
        grok_imagine_ws_url=sim.imagine_ws_url,
        data_dir=tmp_path_factory.mktemp("media"),
        max_image_bytes=300_000,
        account_concurrency=1,
    )
    deployment.add_accounts(2, tier="super")
    return deployment


def _charged(deployment: Deployment, product: str) -> dict[str, int]:
    ledger = deployment.sim.state.ledger()["accounts"]
    return {t: ledger[t]["charged"].get(product, 0) for t in deployment.tokens}


def _imagine_calls(deployment: Deployment) -> int:
    return len(deployment.sim.state.requests(path="/ws/imagine"))


def _fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=10)  # no cookies, no key: links are capabilities
    assert response.status_code == 200, response.text
    return response.content


def _pool_matches_ledger(deployment: Deployment, kind: str, product: str) -> None:
    """Every account whose quota the pool knows holds what the simulator says is left."""
    accounts = {a["id"]: a for a in deployment.admin("GET", "/admin/tokens").json()["data"]}
    known = 0
    for token in deployment.tokens:
        pool = accounts[account_id(token)]["media"][kind]["remaining"]
        if pool is not None:
            known += 1
            assert pool == deployment.sim.state.quota(token, product).remaining, (kind, token)
    assert known


def test_generate_url_links_open_without_cookies(images: Deployment) -> None:
    before = sum(_charged(images, "image").values())
    result = images.client().images.generate(prompt="a red fox in the snow", model="grok-imagine-image")
    assert len(result.data) == 1
    image = result.data[0]
    assert image.url and image.url.startswith(images.url + "/media/")
    assert _fetch(image.url).startswith(JPEG)
    assert image.revised_prompt and "red fox" in image.revised_prompt
    assert sum(_charged(images, "image").values()) == before + 1
    _pool_matches_ledger(images, "image", "image")


def test_generate_b64_json_and_size(images: Deployment) -> None:
    result = images.client().images.generate(
        prompt="a lighthouse", n=2, size="1792x1024", response_format="b64_json"
    )
    assert len(result.data) == 2
    for image in result.data:
        assert image.url is None
        assert base64.b64decode(image.b64_json).startswith(JPEG)
    frames = images.sim.state.requests(path="/ws/imagine")
    assert frames  # went over the Imagine WebSocket


def test_n_above_one_batch_spreads_over_two_accounts(images: Deployment) -> None:
    before = _charged(images, "image")
    result = images.client().images.generate(prompt="six owls", n=6, response_format="url")
    assert len(result.data) == 6
    urls = [item.url for item in result.data]
    assert len(set(urls)) == 6
    for url in urls:
        assert _fetch(url).startswith(JPEG)
    after = _charged(images, "image")
    spent = {t: after[t] - before[t] for t in images.tokens}
    assert sorted(spent.values()) == [1, 1]  # batches of 4 + 2: one call (one unit) on each account
    _pool_matches_ledger(images, "image", "image")


def test_pro_model_charges_image_pro(images: Deployment) -> None:
    before = sum(_charged(images, "imagePro").values())
    result = images.client().images.generate(prompt="a castle", model="grok-imagine-image-pro",
                                             response_format="b64_json")
    assert len(result.data) == 1
    assert sum(_charged(images, "imagePro").values()) == before + 1
    _pool_matches_ledger(images, "image_pro", "imagePro")


def test_stream_partial_images_then_completed(images: Deployment) -> None:
    stream = images.client().images.generate(prompt="a green field", stream=True, partial_images=2)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image", "image_generation.partial_image",
                     "image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    for event in events:
        assert base64.b64decode(event.b64_json).startswith(JPEG)
    assert len(base64.b64decode(events[-1].b64_json)) > len(base64.b64decode(events[0].b64_json))


def test_stream_without_partials_has_only_completed_events(images: Deployment) -> None:
    events = list(images.client().images.generate(prompt="two moons", n=2, stream=True))
    assert [e.type for e in events] == ["image_generation.completed"] * 2


def test_all_moderated_is_content_policy_400_and_charged(images: Deployment) -> None:
    before = sum(_charged(images, "image").values())
    with pytest.raises(openai.BadRequestError) as info:
        images.client().images.generate(prompt="something #moderated")
    assert info.value.code == "content_policy_violation"
    assert sum(_charged(images, "image").values()) == before + 1  # upstream charged the call
    _pool_matches_ledger(images, "image", "image")


def test_edit_multipart_several_images(images: Deployment) -> None:
    before = sum(_charged(images, "imageEdit").values())
    uploads_before = len(images.sim.state.files)
    first, second = io.BytesIO(png(16, 16, (255, 0, 0))), io.BytesIO(png(16, 16, (0, 0, 255)))
    first.name, second.name = "a.png", "b.png"
    result = images.client().images.edit(image=[first, second], prompt="make them purple",
                                         model="grok-imagine-image-edit")
    assert len(result.data) == 1
    assert _fetch(result.data[0].url).startswith(JPEG)
    assert len(images.sim.state.files) == uploads_before + 2
    assert sum(_charged(images, "imageEdit").values()) == before + 1
    _pool_matches_ledger(images, "image_edit", "imageEdit")
    edit_calls = [c for c in images.sim.state.conversations.values() if c.turns and "purple" in c.turns[0].message]
    assert edit_calls and len(edit_calls[0].turns[0].file_attachments) == 0  # inputAssets, not fileAttachments
    uploads = images.sim.state.requests(path="/http/upload-file-v2/direct")[-2:]
    assert all(r["headers"]["referer"].endswith("/imagine") and "x-xai-request-id" not in r["headers"]
               for r in uploads)
    edit = images.sim.state.requests(path="/rest/app-chat/conversations/new")[-1]
    assert edit["headers"]["referer"].endswith("/imagine") and edit["status"] == 200


def test_edit_json_data_uri_and_b64(images: Deployment) -> None:
    response = httpx.post(
        images.base_url + "/images/edits",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"prompt": "add a hat", "images": [{"image_url": data_uri(png(12, 12))}], "n": 2,
              "response_format": "b64_json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2 and all(base64.b64decode(d["b64_json"]).startswith(JPEG) for d in data)


@pytest.mark.parametrize(
    ("kwargs", "status", "param"),
    [
        ({"prompt": "x", "model": "no-such-image-model"}, 404, "model"),
        ({"prompt": "x", "model": "grok-4.5"}, 404, "model"),
        ({"prompt": "x", "model": "grok-imagine-image-edit"}, 400, "model"),
        ({"prompt": "x", "n": 11}, 400, "n"),
        ({"prompt": "x", "n": 0}, 400, "n"),
        ({"prompt": "x", "size": "512x512"}, 400, "size"),
        ({"prompt": "x", "extra_body": {"aspect_ratio": "5:4"}}, 400, "aspect_ratio"),
        ({"prompt": "x", "size": "1024x1024", "extra_body": {"aspect_ratio": "16:9"}}, 400, "aspect_ratio"),
        ({"prompt": "   "}, 400, "prompt"),
        ({"prompt": "x", "output_format": "png"}, 400, "output_format"),
        ({"prompt": "x", "stream": True, "response_format": "url"}, 400, "response_format"),
    ],
)
def test_generation_errors_before_upstream(images: Deployment, kwargs: dict, status: int, param: str) -> None:
    calls = _imagine_calls(images)
    with pytest.raises(openai.APIStatusError) as info:
        result = images.client().images.generate(**kwargs)
        if kwargs.get("stream"):
            list(result)
    assert info.value.status_code == status
    assert info.value.body["param"] == param
    assert _imagine_calls(images) == calls


def test_aspect_ratio_extension(images: Deployment) -> None:
    result = images.client().images.generate(prompt="tall tower", response_format="b64_json",
                                             extra_body={"aspect_ratio": "9:16"})
    assert len(result.data) == 1


def _edit(images: Deployment, files: list[tuple[str, tuple[str, bytes, str]]], **fields: str) -> httpx.Response:
    return httpx.post(images.base_url + "/images/edits", headers={"Authorization": f"Bearer {API_KEY}"},
                      data={"prompt": "change it", **fields}, files=files, timeout=30)


def test_edit_errors(images: Deployment) -> None:
    uploads = len(images.sim.state.files)
    not_image = _edit(images, [("image", ("a.txt", b"hello, not an image", "text/plain"))])
    assert not_image.status_code == 400 and "not a JPEG" in not_image.json()["error"]["message"]
    big = png(8, 8) + b"\x00" * 310_000
    too_big = _edit(images, [("image", ("big.png", big, "image/png"))])
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    nine = [("image[]", (f"{i}.png", png(8, 8, (i, i, i)), "image/png")) for i in range(9)]
    assert _edit(images, nine).status_code == 400
    masked = _edit(images, [("image", ("a.png", png(), "image/png")), ("mask", ("m.png", png(), "image/png"))])
    assert masked.status_code == 400 and masked.json()["error"]["param"] == "mask"
    assert _edit(images, []).json()["error"]["param"] == "image"
    empty = _edit(images, [("image", ("a.png", png(), "image/png"))], prompt="")
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "prompt"
    wrong_model = _edit(images, [("image", ("a.png", png(), "image/png"))], model="grok-imagine-image")
    assert wrong_model.status_code == 400 and wrong_model.json()["error"]["param"] == "model"
    assert len(images.sim.state.files) == uploads  # nothing reached upstream
