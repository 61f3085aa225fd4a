"""Admin media routes (docs/admin-api.md "Media") over real HTTP, on the local backend and a real S3 API (moto):
cursor pages newest first, the kind filter, totals, delete (object and record), and one cleanup run."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Deployment
from tests.e2e.test_media import moto_s3, put, s3_settings  # noqa: F401  (moto_s3 is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Videos API deprecated


@pytest.fixture(params=["local", "s3"])
def media_gw(request: pytest.FixtureRequest, deploy: Callable[..., Deployment], tmp_path) -> Deployment:
    extra = {"media_retention_days": 2 / 86400}  # two seconds: cleanup has something to do in a test
    if request.param == "s3":
        deployment = deploy(**s3_settings(request.getfixturevalue("moto_s3")), **extra)
    else:
        deployment = deploy(media_backend="local", data_dir=tmp_path, **extra)
    deployment.add_accounts(1, tier="super")
    return deployment


def test_list_filter_delete_and_cleanup(media_gw: Deployment) -> None:
    gw = media_gw
    images = [put(gw.settings, bytes([i]) * 1000, "image/jpeg") for i in range(3)]
    video = gw.client().videos.create(prompt="a tiny clip", seconds="2")  # a video and its poster
    assert video.status == "completed"

    assert gw.admin("GET", "/admin/media").status_code == 200
    assert httpx.get(gw.url + "/admin/media").status_code == 401  # admin only

    pages, cursor = [], None
    while True:
        body = gw.admin("GET", "/admin/media", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    listed = [entry for page in pages for entry in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert len({e["id"] for e in listed}) == 5 and body["count"] == 5
    assert body["bytes"] == sum(e["bytes"] for e in listed)
    created = [e["created_at"] for e in listed]
    assert created == sorted(created, reverse=True)  # newest first
    clip = listed[0]
    assert clip["kind"] == "video" and clip["mime"] == "video/mp4" and clip["poster_url"]
    data = httpx.get(clip["url"], follow_redirects=True).content
    assert data[4:8] == b"ftyp" and len(data) == clip["bytes"]
    assert httpx.get(clip["poster_url"], follow_redirects=True).content[:3] == b"\xff\xd8\xff"

    videos = gw.admin("GET", "/admin/media", params={"kind": "video"}).json()
    assert [e["id"] for e in videos["data"]] == [clip["id"]] and videos["count"] == 1
    assert videos["bytes"] == clip["bytes"]
    assert gw.admin("GET", "/admin/media", params={"kind": "audio"}).status_code == 400
    bad = gw.admin("GET", "/admin/media", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"

    gone = images[0]
    deleted = gw.admin("DELETE", f"/admin/media/{gone.id}")
    assert deleted.status_code == 200 and deleted.json() == {"id": gone.id, "deleted": True}
    assert httpx.get(f"{gw.url}/media/{gone.id}.jpg").status_code == 404
    assert gw.admin("DELETE", f"/admin/media/{gone.id}").status_code == 404
    after = gw.admin("GET", "/admin/media").json()
    assert after["count"] == 4 and gone.id not in {e["id"] for e in after["data"]}
    # A video goes with its poster (the poster is its picture, never shown alone).
    poster_id = clip["poster_url"].rsplit("/", 1)[-1].partition(".")[0]
    assert gw.admin("DELETE", f"/admin/media/{clip['id']}").json() == {"id": clip["id"], "deleted": True}
    assert httpx.get(clip["poster_url"], follow_redirects=True).status_code == 404
    after = gw.admin("GET", "/admin/media").json()
    assert after["count"] == 2 and {clip["id"], poster_id}.isdisjoint(e["id"] for e in after["data"])
    assert after["bytes"] == sum(e["bytes"] for e in after["data"])

    time.sleep(2.1)  # everything is past MEDIA_RETENTION_DAYS now
    result = gw.admin("POST", "/admin/media/cleanup")
    assert result.status_code == 200 and result.json()["deleted"] == 2, result.text
    assert result.json()["freed_bytes"] == after["bytes"]
    empty = gw.admin("GET", "/admin/media").json()
    assert empty == {"data": [], "next_cursor": None, "count": 0, "bytes": 0}
    assert httpx.get(clip["url"], follow_redirects=True).status_code == 404
