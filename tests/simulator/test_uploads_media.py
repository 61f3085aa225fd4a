"""Uploads (legacy JSON and v2 multipart), the assets host, imagine-public and the media REST endpoints."""

from __future__ import annotations

import base64
import struct
import zlib

import httpx

from simulator.media import jpeg
from tests.simulator.helpers import NEW, TOKEN, chat, cookies, find, payloads


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_legacy_upload_and_fetch(client: httpx.Client, sim, account) -> None:
    data = png(4, 4)
    response = client.post("/rest/app-chat/upload-file", json={
        "fileName": "image.png", "fileMimeType": "image/png", "content": base64.b64encode(data).decode()})
    assert response.status_code == 200
    body = response.json()
    assert body["fileUri"] == f"users/{account.user_id}/{body['fileMetadataId']}/content"
    fetched = client.get(f"{sim.assets_url}/{body['fileUri']}")
    assert fetched.content == data and fetched.headers["content-type"] == "image/png"
    # Without cookies, or with another account's cookies: 403 HTML, as on assets.grok.com.
    anonymous = httpx.get(f"{sim.assets_url}/{body['fileUri']}")
    assert anonymous.status_code == 403 and anonymous.headers["content-type"].startswith("text/html")
    sim.state.add_account("other")
    assert httpx.get(f"{sim.assets_url}/{body['fileUri']}", headers={"cookie": cookies("other")}).status_code == 403
    assert client.get(f"{sim.assets_url}/users/{account.user_id}/missing/content").status_code == 404

    # The attachment id is usable in a chat and recorded on the turn.
    lines = chat(client, "describe it", fileAttachments=[body["fileMetadataId"]])
    assert find(lines, "userResponse")["fileAttachments"] == [body["fileMetadataId"]]
    conv = sim.state.conversations[lines[0]["result"]["conversation"]["conversationId"]]
    assert conv.turns[0].file_attachments == [body["fileMetadataId"]]


def test_legacy_upload_accepts_text_plain_body(client: httpx.Client) -> None:
    content = base64.b64encode(b"hello").decode()
    response = client.post("/rest/app-chat/upload-file", headers={"content-type": "text/plain;charset=UTF-8"},
                           content=f'{{"fileName":"a.txt","fileMimeType":"text/plain","content":"{content}"}}')
    assert response.status_code == 200 and response.json()["fileMimeType"] == "text/plain"


def test_v2_multipart_upload(client: httpx.Client, sim) -> None:
    data = jpeg(16, 16)
    response = client.post("/http/upload-file-v2/direct", files={"file": ("照片.jpg", data, "image/jpeg")},
                           data={"file_source": "IMAGINE_SELF_UPLOAD_FILE_SOURCE"})
    assert response.status_code == 200
    meta = response.json()["fileMetadata"]
    assert set(response.json()) == {"uploadId", "fileMetadata"}
    assert client.get(f"{sim.assets_url}/{meta['fileUri']}").content == data
    assert sim.state.files[meta["fileMetadataId"]].name == "照片.jpg"


def test_upload_rejections(client: httpx.Client, sim) -> None:
    tiny = base64.b64encode(png(1, 1)).decode()
    assert client.post("/rest/app-chat/upload-file", json={
        "fileName": "p.png", "fileMimeType": "image/png", "content": tiny}).status_code == 400
    assert client.post("/http/upload-file-v2/direct",
                       files={"file": ("p.jpg", jpeg(1, 1), "image/jpeg")}).status_code == 400
    sim.config.max_upload_bytes = 1000
    big = client.post("/rest/app-chat/upload-file", json={
        "fileName": "b.bin", "fileMimeType": "application/pdf", "content": base64.b64encode(b"x" * 2000).decode()})
    assert big.status_code == 413 and big.json() == {"error": {"code": 8, "message": "payload too large"}}
    assert client.post("/http/upload-file-v2/direct",
                       files={"file": ("b.bin", b"x" * 2000, "application/pdf")}).status_code == 413
    assert httpx.post(sim.base_url + "/http/upload-file-v2/direct",
                      files={"file": ("a.txt", b"hi", "text/plain")}).status_code == 401


def test_range_requests(client: httpx.Client, sim, account) -> None:
    uri = client.post("/http/upload-file-v2/direct", files={"file": ("d.bin", bytes(range(256)), "text/plain")}
                      ).json()["fileMetadata"]["fileUri"]
    url = f"{sim.assets_url}/{uri}"
    assert client.get(url, headers={"range": "bytes=10-19"}).content == bytes(range(10, 20))
    assert client.get(url, headers={"range": "bytes=250-"}).content == bytes(range(250, 256))
    tail = client.get(url, headers={"range": "bytes=-4"})
    assert tail.status_code == 206 and tail.headers["content-range"] == "bytes 252-255/256"
    assert client.get(url, headers={"range": "bytes=300-400"}).status_code == 416


def test_media_posts_links_and_upscale(client: httpx.Client, sim) -> None:
    post = client.post("/rest/media/post/create", json={"mediaType": "MEDIA_POST_TYPE_VIDEO", "prompt": "a cat"})
    assert post.status_code == 200 and post.json()["post"]["id"]
    legacy = client.post("/rest/media/post/create", json={"media_type": "MEDIA_POST_TYPE_IMAGE",
                                                          "media_url": "https://assets.grok.com/users/u/f/content"})
    assert legacy.json()["post"]["mediaUrl"].endswith("/content")
    post_id = post.json()["post"]["id"]

    video_body = {"modelName": "grok-3", "modelMode": "MODEL_MODE_FAST", "toolOverrides": {"videoGen": True},
                  "responseMetadata": {"modelConfigOverride": {"modelMap": {"videoGenModelConfig": {
                      "aspectRatio": "3:2", "parentPostId": post_id, "resolutionName": "480p", "videoLength": 6}}}}}
    lines = chat(client, "a cat --mode=custom", **video_body)
    video = [p["streamingVideoGenerationResponse"] for p in payloads(lines) if "streamingVideoGenerationResponse" in p]
    assert video[0]["parentPostId"] == post_id
    video_id = video[-1]["videoId"]

    bogus = dict(video_body, responseMetadata={"modelConfigOverride": {"modelMap": {"videoGenModelConfig": {
        "parentPostId": "no-such-post"}}}})
    rejected = client.post(NEW, json={"message": "x", **bogus})
    assert rejected.status_code == 400 and "Invalid source post id" in rejected.text

    upscale = client.post("/rest/media/video/upscale", json={"videoId": video_id})
    hd_url = upscale.json()["hdMediaUrl"]
    assert hd_url.startswith(sim.assets_url) and client.get(hd_url).headers["content-type"] == "video/mp4"
    assert client.post("/rest/media/video/upscale", json={"videoId": "nope"}).status_code == 404

    link = client.post("/rest/media/post/create-link",
                       json={"postId": video_id, "source": "post-page", "platform": "web"}).json()["shareLink"]
    public = httpx.get(link)  # imagine-public needs no cookies
    assert public.status_code == 200 and public.headers["content-type"] == "video/mp4"


def test_asset_listing_and_delete(client: httpx.Client, sim) -> None:
    file_id = client.post("/http/upload-file-v2/direct", files={"file": ("a.txt", b"hi", "text/plain")}
                          ).json()["fileMetadata"]["fileMetadataId"]
    assets = client.get("/rest/assets", params={"pageSize": 50}).json()["assets"]
    assert [a["assetId"] for a in assets] == [file_id]
    assert client.delete(f"/rest/assets-metadata/{file_id}").status_code == 200
    assert client.get("/rest/assets").json()["assets"] == []
    assert TOKEN in sim.state.accounts
