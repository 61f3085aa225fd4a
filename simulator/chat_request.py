"""Lenient parsing of chat request bodies (every dialect D0–D5) into one ``ChatRequest``, and ``TurnContext``,
the ids and facts shared by the script builder and the renderers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from simulator.modes import resolve_mode

_MODE_FLAG_RE = re.compile(r"--mode=([\w-]+)")
_URL_RE = re.compile(r"https?://\S+")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(slots=True)
class ChatRequest:
    message: str
    mode: str
    temporary: bool
    file_attachments: list[str]
    send_final_metadata: bool
    disable_follow_ups: bool
    image_count: int
    parent_response_id: str | None
    media: str | None  # None | "video" | "image_edit"
    media_quota: str | None  # Imagine product charged instead of the chat mode
    parent_post_id: str | None
    video: dict[str, Any] = field(default_factory=dict)  # aspectRatio, resolutionName, videoLength, mode, ...
    media_gen_input: dict[str, Any] | None = None

    @property
    def quota_key(self) -> str:
        return self.media_quota or self.mode

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ChatRequest:
        message = body.get("message")
        message = message if isinstance(message, str) else ""
        model_name = body.get("modelName") if isinstance(body.get("modelName"), str) else ""
        tools = _dict(body.get("toolOverrides"))
        model_map = _dict(_dict(_dict(body.get("responseMetadata")).get("modelConfigOverride")).get("modelMap"))
        gen_input = body.get("mediaGenInput") if isinstance(body.get("mediaGenInput"), dict) else None
        video_cfg = _dict(model_map.get("videoGenModelConfig"))
        edit_cfg = _dict(model_map.get("imageEditModelConfig"))
        text_to_video = _dict((gen_input or {}).get("textToVideo") or (gen_input or {}).get("imageToVideo"))

        media: str | None = None
        media_quota: str | None = None
        video: dict[str, Any] = {}
        if (
            model_name == "imagine-video-gen"
            or tools.get("videoGen") is True
            or video_cfg
            or text_to_video
        ):
            media = "video"
            resolution = text_to_video.get("resolutionName") or video_cfg.get("resolutionName")
            if model_name == "imagine-video-gen" or text_to_video:
                resolution = resolution or "720p"  # D4/D5 default
                media_quota = "video720p" if resolution == "720p" else "video"
            elif video_cfg.get("isVideoExtension") is True:  # D2 extension round: charged on the video product
                media_quota = "video720p" if resolution == "720p" else "video"
            flag = _MODE_FLAG_RE.search(message)
            url = _URL_RE.search(message)
            refs = _str_list(video_cfg.get("imageReferences"))
            video = {
                "aspectRatio": text_to_video.get("aspectRatio") or video_cfg.get("aspectRatio") or "2:3",
                "resolutionName": resolution or "480p",
                "videoLength": text_to_video.get("duration") or video_cfg.get("videoLength") or 6,
                "mode": text_to_video.get("mode") or (flag.group(1) if flag else "custom"),
                "imageReference": (url.group(0) if url else "") or (refs[0] if refs else ""),
                "prompt": text_to_video.get("prompt") or _MODE_FLAG_RE.sub("", _URL_RE.sub("", message)).strip(),
            }
            if video_cfg.get("isVideoExtension") is True:
                video["extendPostId"] = video_cfg.get("extendPostId") or ""
                video["videoExtensionStartTime"] = video_cfg.get("videoExtensionStartTime") or 0
        elif model_name == "imagine-image-edit" or "imageToImage" in (gen_input or {}) or edit_cfg:
            media = "image_edit"
            media_quota = "imageEdit"

        parent_post = video_cfg.get("parentPostId") or edit_cfg.get("parentPostId")
        parent = body.get("parentResponseId") or body.get("responseId")
        count = body.get("imageGenerationCount")
        return cls(
            message=message,
            mode="fast" if media and not body.get("modeId") and not body.get("modelMode") else resolve_mode(body),
            temporary=bool(body.get("temporary", False)),
            file_attachments=_str_list(body.get("fileAttachments")),
            send_final_metadata=bool(body.get("sendFinalMetadata", False)),
            disable_follow_ups=bool(body.get("disableTextFollowUps", False)),
            image_count=count if isinstance(count, int) and 1 <= count <= 4 else 2,
            parent_response_id=parent if isinstance(parent, str) and parent else None,
            media=media,
            media_quota=media_quota,
            parent_post_id=parent_post if isinstance(parent_post, str) and parent_post else None,
            video=video,
            media_gen_input=gen_input,
        )


def trace_id_from(traceparent: str | None) -> str:
    """``request_trace_id`` echoes the W3C traceparent trace-id; otherwise 32 random hex chars."""
    if traceparent:
        match = _TRACEPARENT_RE.match(traceparent.strip().lower())
        if match:
            return match.group(1)
    return secrets.token_hex(16)


@dataclass(slots=True)
class TurnContext:
    user_id: str
    mode: str
    message: str
    conversation_id: str
    conversation_created: float
    user_response_id: str
    assistant_response_id: str
    parent_response_id: str | None  # continue turns: the parent given by the client
    trace_id: str
    new_conversation: bool
    temporary: bool = True
    file_attachments: list[str] = field(default_factory=list)
    send_final_metadata: bool = False
    disable_follow_ups: bool = False
    image_count: int = 2
    media_gen_input: dict[str, Any] | None = None
    created: float = 0.0  # when the user turn was received
