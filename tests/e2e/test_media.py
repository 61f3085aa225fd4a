"""Media end to end: the official openai SDK → the gateway over real HTTP → the simulator, with the embedded Redis
as the store and media in a local directory or in a real S3 API (moto in server mode). Links are fetched with a
plain HTTP client that has no grok.com cookie."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator

import boto3
import httpx
import pytest

from core.media import MediaItem, MediaStore
from core.settings import Settings
from core.store import open_store
from tests.e2e.conftest import Deployment
from tests.support.s3_server import moto_s3_server

BUCKET = "g2a-media-e2e"
LINK = re.compile(r"!\[image\]\(([^)]+)\)")
DATA = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    with moto_s3_server(BUCKET) as url:
        yield url


def s3_settings(moto_url: str, **extra: object) -> dict[str, object]:
    return {"media_backend": "s3", "s3_bucket": BUCKET, "s3_endpoint_url": moto_url, "s3_region": "us-east-1",
            "s3_prefix": f"e2e-{uuid.uuid4().hex[:6]}/", **extra}


def put(settings: Settings, data: bytes, mime: str = "image/jpeg") -> MediaItem:
    """Write through another MediaStore on the same store and backend (as another instance would)."""

    async def run() -> MediaItem:
        store = open_store(settings)
        try:
            return await MediaStore.from_settings(settings, store, environ={}).put(data, mime=mime, source="test")
        finally:
            await store.close()

    return asyncio.run(run())


def sim_images(deployment: Deployment) -> set[bytes]:
    state = deployment.sim.state
    return {state.asset(path).body() for path in list(state.assets) if path.endswith("image.jpg")}


# -- serving: local ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(media_backend="local", data_dir=tmp_path_factory.mktemp("media-local"))


def test_local_get_head_etag_and_caching(local: Deployment) -> None:
    item = put(local.settings, DATA)
    url = f"{local.url}/media/{item.id}.jpg"
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == DATA
    headers = response.headers
    assert headers["content-type"] == "image/jpeg" and headers["content-length"] == str(len(DATA))
    assert headers["cache-control"] == "public, max-age=31536000, immutable" and headers["accept-ranges"] == "bytes"
    etag = headers["etag"]
    assert httpx.get(f"{local.url}/media/{item.id}").content == DATA  # without the extension too
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA)) and not head.content
    cached = httpx.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag and not cached.content
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_local_ranges(local: Deployment) -> None:
    item = put(local.settings, DATA, "video/mp4")
    url = f"{local.url}/media/{item.id}.mp4"
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == DATA[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(DATA)}" and part.headers["content-length"] == "100"
    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == DATA[-10:]
    rest = httpx.get(url, headers={"Range": f"bytes={len(DATA) - 5}-"})
    assert rest.status_code == 206 and rest.content == DATA[-5:]
    clipped = httpx.get(url, headers={"Range": f"bytes=0-{len(DATA) * 2}"})
    assert clipped.status_code == 206 and clipped.content == DATA
    bad = httpx.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(DATA)}"
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"older"'})
    assert stale.status_code == 200 and stale.content == DATA  # If-Range mismatch: the whole object
    head = httpx.head(url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10"


def test_unknown_media_is_openai_404(local: Deployment) -> None:
    for name in ("A" * 24 + ".jpg", "nope", "..%2F..%2Fetc%2Fpasswd"):
        response = httpx.get(f"{local.url}/media/{name}")
        assert response.status_code == 404, name
        error = response.json()["error"]
        assert error["type"] == "not_found_error" and error["code"] in ("media_not_found", "not_found"), name
    assert httpx.get(f"{local.url}/media/{'A' * 24}").json()["error"]["code"] == "media_not_found"
    item = put(local.settings, DATA)
    assert httpx.get(f"{local.url}/media/{item.id}.png").status_code == 404  # wrong extension


# -- serving: S3 --------------------------------------------------------------------------------------------------


def test_s3_redirects_to_presigned_url(deploy: Callable[..., Deployment], moto_s3: str) -> None:
    gw = deploy(**s3_settings(moto_s3, media_presign_ttl=600))
    item = put(gw.settings, DATA)
    response = httpx.get(f"{gw.url}/media/{item.id}.jpg")
    assert response.status_code == 302 and response.headers["cache-control"] == "private, max-age=300"
    target = response.headers["location"]
    assert target.startswith(moto_s3) and "X-Amz-Signature=" in target and "Expires=600" in target
    assert httpx.get(target).content == DATA  # a plain client, no credentials
    head = httpx.head(f"{gw.url}/media/{item.id}.jpg", follow_redirects=True)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA))


def test_s3_redirects_to_public_base_url(deploy: Callable[..., Deployment], moto_s3: str) -> None:
    public = "g2a-media-public"  # a public-read bucket, as behind a CDN or R2's public domain
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket=public)
    s3.put_bucket_policy(Bucket=public, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{public}/*"}]}))
    gw = deploy(**{**s3_settings(moto_s3), "s3_bucket": public}, media_public_base_url=f"{moto_s3}/{public}")
    item = put(gw.settings, DATA)
    response = httpx.get(f"{gw.url}/media/{item.id}.jpg")
    assert response.status_code == 302 and "immutable" in response.headers["cache-control"]
    assert response.headers["location"] == f"{moto_s3}/{public}/{gw.settings.s3_prefix}{item.id}.jpg"
    assert httpx.get(response.headers["location"]).content == DATA


# -- in-chat images -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["rest", "mgw"])
def chat_gw(request: pytest.FixtureRequest, deploy: Callable[..., Deployment],
            tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    gw = deploy(chat_transport=request.param, media_backend="local", data_dir=tmp_path_factory.mktemp("chat"))
    gw.add_accounts(1, tier="heavy")
    return gw


def links(content: str) -> list[str]:
    return LINK.findall(content)


def test_in_chat_image_links_open_without_cookies(chat_gw: Deployment) -> None:
    completion = chat_gw.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#image=2 draw a red fox"}]
    )
    content = completion.choices[0].message.content or ""
    urls = links(content)
    assert len(urls) == 2, content
    expected = sim_images(chat_gw)
    for url in urls:
        assert re.fullmatch(re.escape(chat_gw.url) + r"/media/[A-Za-z0-9_-]{24}\.jpg", url), url
        response = httpx.get(url)  # no grok.com cookie
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert response.content in expected and response.content[:3] == b"\xff\xd8\xff"
    assert "assets" not in content


def test_in_chat_image_streamed(chat_gw: Deployment) -> None:
    stream = chat_gw.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#image=1 draw a boat"}], stream=True
    )
    content = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    (url,) = links(content)
    assert httpx.get(url).content in sim_images(chat_gw)


def test_in_chat_image_link_uses_forwarded_host(chat_gw: Deployment) -> None:
    client = chat_gw.client(default_headers={"X-Forwarded-Host": "gw.example.org", "X-Forwarded-Proto": "https"})
    completion = client.chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#image=1 draw a tree"}]
    )
    (url,) = links(completion.choices[0].message.content or "")
    assert url.startswith("https://gw.example.org/media/")
    assert httpx.get(chat_gw.url + url.removeprefix("https://gw.example.org")).status_code == 200


def test_moderated_image_is_dropped(chat_gw: Deployment) -> None:
    completion = chat_gw.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#moderated draw something"}]
    )
    content = completion.choices[0].message.content or ""
    assert "assets" not in content and "/media/" not in content


def test_in_chat_image_b64_json(deploy: Callable[..., Deployment], tmp_path_factory) -> None:
    gw = deploy(image_format="b64_json", media_backend="local", data_dir=tmp_path_factory.mktemp("b64"))
    gw.add_accounts(1, tier="heavy")
    completion = gw.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#image=1 draw a lamp"}]
    )
    (url,) = links(completion.choices[0].message.content or "")
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) in sim_images(gw)


def test_two_instances_share_store_and_bucket(deploy: Callable[..., Deployment], moto_s3: str) -> None:
    shared = {"store_prefix": f"e2e-shared-{uuid.uuid4().hex[:8]}:", **s3_settings(moto_s3)}
    first, second = deploy(**shared), deploy(**shared)
    first.add_accounts(1, tier="heavy")
    completion = first.client().chat.completions.create(
        model="grok-4.5", messages=[{"role": "user", "content": "#image=1 draw a bridge"}]
    )
    (url,) = links(completion.choices[0].message.content or "")
    assert url.startswith(first.url + "/media/")
    via_second = second.url + url.removeprefix(first.url)
    redirect = httpx.get(via_second)
    assert redirect.status_code == 302
    assert httpx.get(redirect.headers["location"]).content in sim_images(first)


def test_cron_tick_reports_media_cleanup(local: Deployment) -> None:
    """(CRON_SECRET unset: the admin password authorizes the tick.)"""
    response = local.admin("GET", "/cron/tick?budget=2")
    assert response.status_code == 200, response.text
    assert response.json()["media_cleanup"]["done"] is True


def test_anthropic_and_responses_answers_link_stored_images(chat_gw: Deployment) -> None:
    import anthropic

    from tests.e2e.conftest import API_KEY

    claude = anthropic.Anthropic(base_url=chat_gw.url, api_key=API_KEY, max_retries=0)
    message = claude.messages.create(model="grok-4.5", max_tokens=1024,
                                     messages=[{"role": "user", "content": "#image=1 draw a kite"}])
    text = "".join(block.text for block in message.content if block.type == "text")
    response = chat_gw.client().responses.create(model="grok-4.5", input="#image=1 draw a cup")
    for content in (text, response.output_text):
        (url,) = links(content)
        assert url.startswith(chat_gw.url + "/media/") and httpx.get(url).content in sim_images(chat_gw)


def test_store_commands_per_in_chat_image(sim, embedded_redis, tmp_path) -> None:
    """A plain answer costs what it did (≤ 3 store commands); each stored image adds one (its record)."""
    from api._app import create_app
    from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY
    from tests.support.asgi import ThreadedServer

    settings = Settings(
        api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=embedded_redis.url,
        store_prefix=f"e2e-cmd-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url, grok_assets_url=sim.assets_url,
        grok_ws_url=sim.ws_url, media_backend="local", data_dir=tmp_path, first_byte_timeout=10.0,
    )
    app = create_app(settings)
    with ThreadedServer(app) as server:
        deployment = Deployment(server.url, settings, sim)
        deployment.add_accounts(1, tier="heavy")
        client = deployment.client()

        def spent(content: str) -> int:
            store = app.state.gateway._gateway.store
            before = store.commands_sent
            client.chat.completions.create(model="grok-4.5", messages=[{"role": "user", "content": content}])
            return store.commands_sent - before

        spent("warm up")
        spent("#image=1 warm up the media script")
        plain = spent("hello there")
        assert plain <= 3
        assert spent("#image=1 one image") == plain + 1
        assert spent("#image=2 two images") == plain + 2
