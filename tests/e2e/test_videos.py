"""Videos API end to end: the official ``openai`` SDK → the gateway over real HTTP → the simulator's video stream
(D5 ``textToVideo``, D4 image to video); the MP4 streamed into the real local media store and downloaded back
without any grok.com cookie. Quota: the simulator's ledger for ``video`` moves by one per accepted job."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable

import httpx
import openai
import pytest

from core.pool.tokens import account_id
from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import data_uri, png

JPEG = b"\xff\xd8\xff"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Videos API deprecated


@pytest.fixture(scope="module")
def videos(deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = deploy(data_dir=tmp_path_factory.mktemp("video-media"), account_concurrency=2)
    deployment.add_accounts(1, tier="super")  # video 30 a window (Basic: 6)
    return deployment


def _charged(deployment: Deployment, product: str) -> int:
    ledger = deployment.sim.state.ledger()["accounts"]
    return sum(ledger[t]["charged"].get(product, 0) for t in deployment.tokens)


def _video_calls(deployment: Deployment) -> int:
    return len(deployment.sim.state.requests(path="/rest/app-chat/conversations/new"))


def _raw(deployment: Deployment, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.request(method, deployment.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The bodies the gateway built for grok.com (the gateway runs in this process)."""
    from core.grok import video as upstream

    bodies: list[dict] = []
    for name in ("text_payload", "image_payload"):
        original = getattr(upstream, name)

        def spy(*args: object, _original: Callable[..., dict] = original, **kwargs: object) -> dict:
            body = _original(*args, **kwargs)
            bodies.append(body)
            return body

        monkeypatch.setattr(upstream, name, spy)
    return bodies


def _is_mp4(data: bytes) -> bool:
    return len(data) > 12 and data[4:8] == b"ftyp"


def test_create_retrieve_download(videos: Deployment, sent: list[dict]) -> None:
    client = videos.client()
    before = _charged(videos, "video")
    video = client.videos.create(prompt="a paper boat on a river", model="grok-imagine-video", seconds="8",
                                 size="480x854")
    assert video.id.startswith("video_") and video.object == "video"
    assert video.status == "completed", video.error
    assert (video.progress, video.seconds, video.size, video.model) == (100, "8", "480x854", "grok-imagine-video")
    assert video.completed_at and video.expires_at and video.expires_at > video.created_at
    assert _charged(videos, "video") == before + 1  # one job, one unit of the `video` product
    accounts = {a["id"]: a for a in videos.admin("GET", "/admin/tokens").json()["data"]}
    for token in videos.tokens:  # the pool's view of the product is what grok.com says is left
        assert accounts[account_id(token)]["media"]["video"]["remaining"] == \
            videos.sim.state.quota(token, "video").remaining
    gen = sent[-1]["mediaGenInput"]["textToVideo"]
    assert (gen["duration"], gen["aspectRatio"], gen["resolutionName"]) == (8, "9:16", "480p")

    again = client.videos.retrieve(video.id)
    assert again.status == "completed" and again.id == video.id
    content = client.videos.download_content(video.id)
    assert _is_mp4(content.read())
    poster = client.videos.download_content(video.id, variant="thumbnail").read()
    assert poster.startswith(JPEG)

    ranged = _raw(videos, "GET", f"/v1/videos/{video.id}/content", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100 and ranged.content[4:8] == b"ftyp"
    assert "cookie" not in {k.lower() for k in ranged.request.headers}


def test_image_to_video_multipart_and_data_uri(videos: Deployment, sent: list[dict]) -> None:
    client = videos.client()
    before = _charged(videos, "video")
    video = client.videos.create(prompt="make it move", input_reference=("ref.png", png(16, 16), "image/png"),
                                 seconds="6", size="480x720")
    assert video.status == "completed", video.error
    body = sent[-1]
    config = body["responseMetadata"]["modelConfigOverride"]["modelMap"]["videoGenModelConfig"]
    assert config["parentPostId"] and config["aspectRatio"] == "2:3" and body["fileAttachments"]
    assert body["message"].startswith(videos.sim.assets_url) and body["message"].endswith("make it move --mode=custom")
    assert _is_mp4(client.videos.download_content(video.id).read())

    response = _raw(videos, "POST", "/v1/videos", json={
        "prompt": "zoom out", "input_reference": data_uri(png(12, 12)), "seconds": 4})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert _charged(videos, "video") == before + 2


def test_moderated_generation_is_a_failed_job(videos: Deployment) -> None:
    client = videos.client()
    before = _charged(videos, "video")
    video = client.videos.create(prompt="something #moderated", seconds="6")
    assert video.status == "failed"
    assert video.error is not None and video.error.code == "content_policy_violation"
    assert _charged(videos, "video") == before + 1  # upstream accepted (and charged) it
    assert client.videos.retrieve(video.id).status == "failed"
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content(video.id)


def test_stream_error_or_dropped_connection_is_a_failed_job(videos: Deployment) -> None:
    for marker in ("#error", "#disconnect"):
        video = videos.client().videos.create(prompt=f"a storm {marker}", seconds="6")
        assert video.status == "failed" and video.error is not None and video.error.message, marker
        assert video.completed_at is None


def test_bad_input_is_refused_before_upstream(videos: Deployment) -> None:
    client = videos.client()
    calls = _video_calls(videos)
    with pytest.raises(openai.BadRequestError, match="seconds"):
        client.videos.create(prompt="x", seconds="31")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="size"):
        client.videos.create(prompt="x", size="1792x1024")
    with pytest.raises(openai.BadRequestError, match="prompt"):
        client.videos.create(prompt="  ")
    with pytest.raises(openai.NotFoundError):
        client.videos.create(prompt="x", model="no-such-video-model")
    response = _raw(videos, "POST", "/v1/videos", json={"prompt": "x", "quality": "high"})
    assert response.status_code == 400 and "quality" in response.text
    assert _video_calls(videos) == calls  # nothing was sent

    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_" + "0" * 32)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("nope")
    done = client.videos.create(prompt="a kite", seconds="2")
    assert done.status == "completed"
    assert _raw(videos, "GET", f"/v1/videos/{done.id}/content?variant=spritesheet").status_code == 400
    assert _raw(videos, "GET", f"/v1/videos/{done.id}/content?variant=poster").status_code == 400
    assert _raw(videos, "GET", "/v1/videos/video_" + "1" * 32 + "/content").status_code == 404
    assert httpx.get(videos.url + f"/v1/videos/{done.id}").status_code == 401  # the API needs a key


def test_720p_on_basic_is_480p_plus_upscale(
    deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory, sent: list[dict]
) -> None:
    videos = deploy(data_dir=tmp_path_factory.mktemp("basic-media"))
    videos.add_accounts(1, tier="basic")
    before = (_charged(videos, "video"), _charged(videos, "video720p"))
    calls = _video_calls(videos)
    upscaled = len(videos.sim.state.requests(path="/rest/media/video/upscale"))
    video = videos.client().videos.create(prompt="hd please", size="720x1280", seconds="6")
    assert video.status == "completed", video.error
    assert video.size == "720x1280"
    # quota_info says video720p: null (Basic has no such product), so no 720p call went upstream (it would
    # be a 403): one 480p call on the `video` product, then its upscale
    assert _video_calls(videos) == calls + 1
    assert sent[-1]["mediaGenInput"]["textToVideo"]["resolutionName"] == "480p"
    assert len(videos.sim.state.requests(path="/rest/media/video/upscale")) == upscaled + 1
    assert (_charged(videos, "video"), _charged(videos, "video720p")) == (before[0] + 1, before[1])
    data = videos.client().videos.download_content(video.id).read()
    assert _is_mp4(data) and len(data) == 2 * videos.sim.state.config.video_bytes  # the HD file, not the 480p one


def test_720p_on_super_charges_video720p(videos: Deployment) -> None:
    before = _charged(videos, "video720p")
    video = videos.client().videos.create(prompt="hd please", size="1280x720", seconds="6")
    assert video.status == "completed", video.error
    assert _charged(videos, "video720p") == before + 1


def test_list_and_delete(videos: Deployment) -> None:
    client = videos.client()
    first = client.videos.create(prompt="one", seconds="1")
    second = client.videos.create(prompt="two", seconds="1")
    page = client.videos.list(limit=1)
    assert [v.id for v in page.data] == [second.id] and page.has_more
    after = client.videos.list(limit=1, after=second.id)
    assert [v.id for v in after.data] == [first.id]
    ids = [v.id for v in client.videos.list(limit=100).data]
    assert ids.index(second.id) < ids.index(first.id)

    media = _raw(videos, "GET", f"/v1/videos/{first.id}/content", follow_redirects=False)
    assert media.status_code == 200, media.text
    deleted = client.videos.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(first.id)
    assert first.id not in [v.id for v in client.videos.list(limit=100).data]


def test_poll_mode_job_moves_between_instances(
    deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = {"store_prefix": f"e2e-{uuid.uuid4().hex[:10]}:", "data_dir": tmp_path_factory.mktemp("shared-media"),
              "video_drive": "poll"}
    one = deploy(**shared)
    two = deploy(**shared)
    one.add_accounts(1, tier="basic")
    before = _charged(one, "video")
    calls = _video_calls(one)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = one.client().videos.create(prompt="a lantern in fog", seconds="6",
                                             input_reference=("r.png", png(10, 10), "image/png"))
        assert created.status == "queued" and created.progress == 0
        assert _video_calls(one) == calls  # nothing sent yet: the first poll drives it
        polled = two.client().videos.retrieve(created.id)  # the other instance claims and drives it
        assert polled.status == "completed", polled.error
        assert one.client().videos.retrieve(created.id).status == "completed"
        data = one.client().videos.download_content(created.id).read()
    assert _is_mp4(data)
    assert _charged(one, "video") == before + 1
    assert _video_calls(one) == calls + 1


def test_a_file_that_is_not_an_mp4_is_a_failed_job(videos: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator import media

    monkeypatch.setattr(media, "mp4", lambda size=0: b"<html>not a video</html>" * 10)
    before = _charged(videos, "video")
    video = videos.client().videos.create(prompt="a broken file", seconds="6")
    assert video.status == "failed" and video.error is not None and "MP4" in video.error.message
    assert _charged(videos, "video") == before + 1  # accepted upstream: charged all the same


def test_a_job_whose_driver_died_fails_after_its_deadline(
    deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory
) -> None:
    import redis

    deployment = deploy(data_dir=tmp_path_factory.mktemp("stale-media"), video_drive="poll")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = deployment.client().videos.create(prompt="never finished", seconds="6")
        key = deployment.settings.store_prefix + "video:" + created.id
        client = redis.Redis.from_url(deployment.settings.redis_url)
        client.hset(key, mapping={"status": "in_progress", "deadline": 1.0})  # as a frozen driver leaves it
        client.close()
        video = deployment.client().videos.retrieve(created.id)
    assert video.status == "failed" and video.error is not None and video.error.code == "interrupted"


def test_store_commands_per_job(deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Client-side (billed) store commands: a whole inline job, then one poll and one download."""
    from api._app import create_app
    from tests.support.asgi import ThreadedServer

    base = deploy(data_dir=tmp_path_factory.mktemp("count-media"))
    base.add_accounts(1, tier="super")
    app = create_app(base.settings)  # a second instance on the same store, whose counter we can read
    server = ThreadedServer(app).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
        client.videos.create(prompt="warm up", seconds="6")  # the first lease refreshes quota
        store = app.state.gateway._gateway.store
        start = store.commands_sent
        video = client.videos.create(prompt="count me", seconds="6")
        created = store.commands_sent - start
        client.videos.retrieve(video.id)
        polled = store.commands_sent - start - created
        client.videos.download_content(video.id).read()
        downloaded = store.commands_sent - start - created - polled
    finally:
        server.stop()
    print(f"store commands: job {created}, poll {polled}, download {downloaded}")
    assert video.status == "completed"
    assert created <= 10 and polled == 1 and downloaded <= 2  # the job's request-log entry is one of the 10


def test_sdk_create_and_poll_in_both_modes(
    videos: Deployment, deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory
) -> None:
    polled = deploy(data_dir=tmp_path_factory.mktemp("poll-media"), video_drive="poll")
    polled.add_accounts(1, tier="super")
    for deployment in (videos, polled):
        video = deployment.client().videos.create_and_poll(prompt="a slow sunrise", seconds="4", poll_interval_ms=50)
        assert video.status == "completed", video.error
        assert _is_mp4(deployment.client().videos.download_content(video.id).read())


def test_poll_mode_progress_is_seen_by_another_instance(
    deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory, sim
) -> None:
    import threading
    import time

    shared = {"store_prefix": f"e2e-{uuid.uuid4().hex[:10]}:", "data_dir": tmp_path_factory.mktemp("progress-media"),
              "video_drive": "poll"}
    driver_side, watcher = deploy(**shared), deploy(**shared)
    driver_side.add_accounts(1, tier="super")
    sim.state.config.video_duration = 2.0  # progress lines 0.2 s apart
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calls = _video_calls(driver_side)
            created = driver_side.client().videos.create(prompt="a slow tide", seconds="6")
            results: list[object] = []
            thread = threading.Thread(target=lambda: results.append(driver_side.client().videos.retrieve(created.id)))
            thread.start()
            seen: list[tuple[str, int]] = []
            deadline = time.monotonic() + 20
            while thread.is_alive() and time.monotonic() < deadline:
                video = watcher.client().videos.retrieve(created.id)  # never a second driver
                seen.append((video.status, video.progress))
                time.sleep(0.1)
            thread.join(20)
    finally:
        sim.state.config.video_duration = 0.0
    assert results and results[0].status == "completed"  # type: ignore[attr-defined]
    in_progress = [p for s, p in seen if s == "in_progress"]
    assert in_progress and max(in_progress) >= 25 and all(0 <= p < 100 for p in in_progress)
    assert all(s in ("in_progress", "completed") for s, _ in seen)
    assert _video_calls(driver_side) == calls + 1  # one driver, one upstream call


def test_a_deleted_queued_job_is_never_driven(
    deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory
) -> None:
    deployment = deploy(data_dir=tmp_path_factory.mktemp("deleted-media"), video_drive="poll")
    deployment.add_accounts(1, tier="super")
    calls = _video_calls(deployment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = deployment.client()
        created = client.videos.create(prompt="changed my mind", seconds="6",
                                       input_reference=("r.png", png(9, 9), "image/png"))
        assert client.videos.delete(created.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(created.id)
    assert _video_calls(deployment) == calls
