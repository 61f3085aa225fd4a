"""Media REST (§8.2, §8.3): posts, share links, video upscale."""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from simulator import gates, media
from simulator.chat import read_json
from simulator.responses import invalid_argument, json_response, not_found
from simulator.rest import milli_time
from simulator.state import Asset, SimState


def _sim(request: Request) -> SimState:
    return request.app.state.sim


def _str(body: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


async def create_post(request: Request) -> Response:
    """Accepts camelCase (2026) and snake_case (2025) keys."""
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    body = await read_json(request)
    if body is None:
        return json_response(invalid_argument("Invalid JSON body"), 400)
    media_type = _str(body, "mediaType", "media_type")
    if media_type not in ("MEDIA_POST_TYPE_IMAGE", "MEDIA_POST_TYPE_VIDEO"):
        return json_response(invalid_argument("Invalid media type"), 400)
    media_url, prompt = _str(body, "mediaUrl", "media_url"), _str(body, "prompt")
    if media_type == "MEDIA_POST_TYPE_IMAGE" and not media_url:
        return json_response(invalid_argument("mediaUrl is required"), 400)
    post = state.create_post(account.user_id, media_type, media_url, prompt)
    return json_response({"post": {
        "id": post.id,
        "userId": post.owner_uid,
        "createTime": milli_time(post.created),
        "prompt": post.prompt,
        "mediaType": post.media_type,
        "mediaUrl": post.media_url,
        "mimeType": "image/jpeg" if media_type == "MEDIA_POST_TYPE_IMAGE" else "video/mp4",
        "videos": [],
        "resolution": {"width": 720, "height": 1280},
    }})


async def create_link(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    post_id = _str(await read_json(request) or {}, "postId")
    video = state.videos.get(post_id) or next(
        (v for v in list(state.videos.values()) if v.post_id == post_id), None
    )
    if video is not None and video.owner_uid == account.user_id:
        video.shared = True
        source = state.asset(video.url)
        if source is not None:
            state.put_public(f"imagine-public/share-videos/{video.id}.mp4", source)
        base = str(request.base_url).rstrip("/")
        return json_response({"shareLink": f"{base}/__imagine-public/imagine-public/share-videos/{video.id}.mp4?cache=1"})
    post = state.posts.get(post_id)
    if post is not None and post.owner_uid == account.user_id:
        return json_response({"shareLink": f"https://grok.com/imagine/post/{post.id}"})
    return not_found()


async def upscale(request: Request) -> Response:
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    video = state.videos.get(_str(await read_json(request) or {}, "videoId"))
    if video is None or video.owner_uid != account.user_id:
        return not_found()
    if video.hd_url is None:
        video.hd_url = video.url.replace("generated_video.mp4", "generated_video_hd.mp4")
        size = state.config.video_bytes * 2
        state.put_asset(video.hd_url, Asset(account.user_id, "video/mp4", factory=partial(media.mp4, size)))
    base = str(request.base_url).rstrip("/")
    return json_response({"hdMediaUrl": f"{base}/__assets/{video.hd_url}"})
