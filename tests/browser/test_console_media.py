"""Media in the console, in a real Chromium: the playground's image edit, a video in the media gallery, and the
dashboard's 30-day chart. Console errors, failed requests and unexpected HTTP errors fail a test (conftest.py)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import API_KEY, Console, Gateway, expect, plays
from tests.e2e.media import png

V1 = {"Authorization": f"Bearer {API_KEY}"}
JPEG, PNG = b"\xff\xd8\xff", b"\x89PNG"


def _wait_for(what: str, probe: Any, timeout: float = 30.0) -> Any:
    """Poll ``probe()`` (a gateway call, outside the page) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _fetch_image(url: str) -> bytes:
    response = httpx.get(url, timeout=30, follow_redirects=True)  # no cookies, no key: links are capabilities
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith("image/"), response.headers
    assert response.content.startswith((JPEG, PNG)), response.content[:8]
    return response.content


# ---- playground: image edit --------------------------------------------------------------------------------------


def test_playground_image_edit_shows_the_edited_image_as_a_media_link(console, gateway: Gateway,
                                                                      tmp_path: Path) -> None:
    gateway.import_accounts(1)
    source = tmp_path / "source.png"
    source.write_bytes(png(16, 16, (20, 120, 220)))
    uploads = len(gateway.sim.requests(path="/http/upload-file-v2/direct"))
    c: Console = console()
    c.login()
    c.go("playground")
    page = c.page
    page.get_by_role("tab", name="Images").click()
    page.get_by_label("Mode", exact=True).select_option("edit")
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile("edit"))  # the edit models replace the others
    page.get_by_label("Source images").set_input_files(str(source))
    page.get_by_label("Prompt").fill("paint it like a stained glass window")
    with page.expect_response(lambda r: r.url.endswith("/v1/images/edits") and r.request.method == "POST") as edit:
        page.get_by_role("button", name="Edit", exact=True).click()
    assert edit.value.status == 200, edit.value.text()
    page.get_by_text(re.compile("^Took ")).or_(page.locator(".error-box")).first.wait_for()
    assert not page.locator(".error-box").count(), page.locator(".error-box").inner_text()
    answered = edit.value.json()["data"]
    slots = page.locator(".image-grid .slot")
    expect(slots).to_have_count(len(answered))
    expect(page.locator(".image-grid .slot.pending")).to_have_count(0)
    assert answered
    for i, item in enumerate(answered):
        figure = slots.nth(i)
        img = figure.locator("img")
        src = img.get_attribute("src") or ""
        assert src == item["url"] and src.startswith(gateway.url + "/media/"), src
        assert figure.get_by_role("link", name="Download").get_attribute("href") == src
        expect(img).to_have_js_property("complete", True)
        assert img.evaluate("img => img.naturalWidth") > 0  # the browser decoded it
        _fetch_image(src)
    # It was an edit of the uploaded file, not a generation: the simulator received the source image.
    assert len(gateway.sim.requests(path="/http/upload-file-v2/direct")) == uploads + 1
    c.shot("playground-image-edit")


# ---- media page: a video tile --------------------------------------------------------------------------------------


def test_media_video_tile_loads_its_clip_and_poster_then_delete_removes_it(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)
    prompt = f"a paper lantern drifting {uuid.uuid4().hex[:6]}"
    created = httpx.post(gateway.url + "/v1/videos", headers=V1, timeout=60,
                         json={"prompt": prompt, "seconds": "2", "size": "480x480"})
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]

    def finished() -> dict[str, Any] | None:
        job = httpx.get(f"{gateway.url}/v1/videos/{job_id}", headers=V1, timeout=30).json()
        return job if job["status"] not in ("queued", "in_progress") else None

    assert _wait_for("the video job", finished, 60)["status"] == "completed"
    listed = [e for e in gateway.admin("GET", "/admin/media", params={"kind": "video", "limit": 100}).json()["data"]
              if e["prompt"] == prompt]
    assert len(listed) == 1, listed
    entry = listed[0]

    c: Console = console()
    c.login()
    c.go("media")
    page = c.page
    tile = page.locator(".tile", has=page.locator("video"), has_text=prompt)
    expect(tile).to_have_count(1)
    video = tile.locator("video")
    src = video.get_attribute("src") or ""
    poster = video.get_attribute("poster") or ""
    assert src == entry["url"] and re.fullmatch(re.escape(gateway.url) + r"/media/[^/]+\.mp4", src), src
    assert poster == entry["poster_url"] and poster.startswith(gateway.url + "/media/"), poster
    expect(video).to_have_attribute("aria-label", prompt)
    expect(page.locator(f'.tile img[src="{poster}"]')).to_have_count(0)  # the poster is this tile's, not one of its own
    assert tile.get_by_role("link", name="Download").get_attribute("href") == src
    # The poster is an image the browser decodes (what the tile shows before the clip is played).
    assert page.evaluate("""(url) => new Promise((resolve) => {
        const img = new Image(); img.onload = () => resolve(img.naturalWidth); img.onerror = () => resolve(0); img.src = url;
    })""", poster) > 0
    _fetch_image(poster)
    # The browser's own media request for the clip gets the MP4 (preload="none": nothing is fetched until asked),
    # and the tile plays it (the simulator's clip is real H.264, as grok.com's are).
    with page.expect_response(lambda r: r.url == src) as clip:
        assert plays(video) == (96, 160)
    assert clip.value.status in (200, 206), clip.value.status
    assert clip.value.headers["content-type"] == "video/mp4"
    plain = httpx.get(src, timeout=30)  # no cookies, no key
    assert plain.status_code == 200 and plain.content[4:8] == b"ftyp" and len(plain.content) == entry["bytes"]
    c.shot("media-video")

    tile.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Delete this file?").wait_for()
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/admin/media/" in r.url) as deleted:
        dialog.get_by_role("button", name="Delete").click()
    assert deleted.value.status == 200
    expect(tile).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("Deleted")
    assert httpx.get(src, timeout=30).status_code == 404
    assert httpx.get(poster, timeout=30).status_code == 404  # it went with its video
    remaining = gateway.admin("GET", "/admin/media", params={"kind": "video", "limit": 100}).json()["data"]
    assert entry["id"] not in {e["id"] for e in remaining}
    page.reload()  # the gallery as the gateway now lists it
    page.locator("main h1").wait_for()
    expect(page.locator(".tile", has=page.locator("video"), has_text=prompt)).to_have_count(0)


# ---- dashboard: the 30-day chart ---------------------------------------------------------------------------------

CHART_W, CHART_H, PAD_L, PAD_R, PAD_T, PAD_B = 600, 180, 48, 8, 12, 26  # charts.js


def test_dashboard_30_day_chart_shows_todays_requests(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)

    def stats_30d() -> dict[str, Any]:
        response = gateway.admin("GET", "/admin/stats", params={"range": "30d"})
        assert response.status_code == 200, response.text
        return response.json()

    before = stats_30d()["totals"]["requests"]
    sent = 3
    for i in range(sent):
        answer = httpx.post(gateway.url + "/v1/chat/completions", headers=V1, timeout=60,
                            json={"model": "grok-4.5-fast", "messages": [{"role": "user", "content": f"hi {i}"}]})
        assert answer.status_code == 200, answer.text
    _wait_for("the requests in the ledger", lambda: stats_30d()["totals"]["requests"] >= before + sent)

    # West of UTC: the daily buckets are UTC days, and each must be labelled with its own date.
    c: Console = console(timezone_id="America/Los_Angeles")
    c.login()
    page = c.page
    page.locator("main h1", has_text="Dashboard").wait_for()
    chart = page.get_by_role("img", name=re.compile(r"^Requests: "))
    expect(chart).to_have_count(1)  # the 24-hour view first
    with page.expect_response(lambda r: "/admin/stats?range=30d" in r.url) as response:
        page.get_by_label("Range").select_option("30d")
    assert response.value.status == 200
    stats = response.value.json()
    buckets = stats["buckets"]
    today = int(time.time() // 86400) * 86400
    assert stats["range"] == "30d" and len(buckets) == 30 and buckets[-1]["t"] == today
    assert buckets[-1]["requests"] >= sent
    total, failed = stats["totals"]["requests"], stats["totals"]["failed"]
    assert total == sum(b["requests"] for b in buckets) >= before + sent

    # The chart is redrawn with daily ticks: the last is today's date (UTC), not the hour of a 24-hour chart.
    day = time.gmtime(today)
    axis = chart.locator("text.axis")
    expect(axis.last).to_have_text(f"{day.tm_mon}/{day.tm_mday}")
    first_day = time.gmtime(buckets[0]["t"])
    expect(axis.nth(3)).to_have_text(f"{first_day.tm_mon}/{first_day.tm_mday}")  # after the three grid labels
    expect(chart).to_have_attribute("aria-label", f"Requests: Requests: {total:,}, Failed: {failed:,}")
    # One point a day, and today's is above the baseline, where its count puts it.
    points = [tuple(map(float, p.split(","))) for p in (chart.locator("polyline.s1").get_attribute("points") or "").split()]
    assert len(points) == 30
    top = max(4, *(max(b["requests"], b["failed"]) for b in buckets))
    baseline = CHART_H - PAD_B
    expected_y = baseline - (CHART_H - PAD_T - PAD_B) * buckets[-1]["requests"] / top
    assert points[-1][0] == CHART_W - PAD_R and abs(points[-1][1] - expected_y) < 0.11, (points[-1], expected_y)
    assert points[-1][1] < baseline
    # The traffic card says the same total, and so does the gateway.
    card = page.locator("section[aria-label='Traffic'] .card.stat", has_text="Requests")
    expect(card.locator(".stat-value")).to_have_text(f"{total:,}")
    assert stats_30d()["totals"]["requests"] == total
    c.shot("dashboard-30d")
