"""Scripted responses: turn a ``Plan`` into the ``Script`` of one assistant turn.

Every text is a deterministic function of the prompt (see ``text.py``, ``agent.py``) or a scripted reply; only
ids are random. Media the script mentions is registered on the assets host before the first byte is sent.
"""

from __future__ import annotations

import json
import random
import uuid
from functools import partial
from typing import Any

from simulator import media
from simulator.chat_request import ChatRequest, TurnContext
from simulator.rules import USAGE_LIMIT_MESSAGE, Plan, RuleTable, plan_to_dict
from simulator.state import Asset, SimState, Video
from simulator.steps import (
    Abort,
    Card,
    EmptyToken,
    End,
    Final,
    ImageDimensions,
    ImageProgress,
    ProgressReport,
    RenderTag,
    Script,
    Stall,
    Step,
    StreamError,
    Thought,
    Token,
    ToolCard,
    ToolResult,
    VideoProgress,
)
from simulator.text import echo_subject, lorem_answer, make_title, plain_answer, slug, tokenize

__all__ = ["Plan", "RuleTable", "build_script", "plan_to_dict"]

FOLLOW_UPS = ("Tell me more", "Give me an example", "Summarize that in one sentence")
HEAVY_AGENTS = ("Grok", "Harper", "Benjamin", "Lucas")
VIDEO_PROGRESS = (1, 5, 13, 22, 29, 38, 46, 57, 95, 100)
IMAGE_SIZE = (832, 1248)
PREVIEW_SIZE = (208, 312)
_CARD_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _card_id() -> str:
    return "".join(random.choices(_CARD_ID_ALPHABET, k=5))


def _answer_text(plan: Plan, message: str) -> str:
    if plan.text is not None:
        return plan.text
    if plan.long is not None:
        return lorem_answer(plan.long)
    return plain_answer(message)


def _with_modifiers(answer: list[Step], plan: Plan) -> tuple[list[Step], bool]:
    """Insert stall / error / disconnect / truncate after half the answer. Returns (steps, finishes)."""
    cut = max(1, len(answer) // 2) if answer else 0
    head, tail = answer[:cut], answer[cut:]
    middle: list[Step] = []
    if plan.stall > 0:
        middle.append(Stall(plan.stall))
    if plan.warning:
        middle.append(StreamError(plan.warning, "STREAM_ERROR_SEVERITY_WARNING"))
    if plan.error:
        return [*head, *middle, StreamError(plan.error, "STREAM_ERROR_SEVERITY_FATAL")], False
    if plan.disconnect:
        return [*head, *middle, Abort()], False
    if plan.truncate:
        return [*head, *middle, End()], False
    return [*head, *middle, *tail], True


def _final(plan: Plan, ctx: TurnContext, message: str, **extra: Any) -> Final:
    return Final(
        message="" if plan.empty_final else message,
        title=plan.title or make_title(ctx.message),
        follow_ups=list(FOLLOW_UPS),
        **extra,
    )


def _finish(plan: Plan, ctx: TurnContext, prefix: list[Step], answer: list[Step], **extra: Any) -> Script:
    steps, finishes = _with_modifiers(answer, plan)
    text = "".join(s.text for s in answer if isinstance(s, Token | RenderTag))
    return Script([*prefix, *steps], _final(plan, ctx, text, **extra) if finishes else None)


def _tokens(text: str) -> list[Step]:
    return [Token(t) for t in tokenize(text)]


def _thoughts(text: str, step_id: int, rollout_id: str | None = None) -> list[Step]:
    return [Thought(t, "summary", step_id, rollout_id) for t in tokenize(text)]


# -- builders --------------------------------------------------------------------------------------------------


def _plain(plan: Plan, ctx: TurnContext) -> Script:
    return _finish(plan, ctx, [], _tokens(_answer_text(plan, ctx.message)))


def _reasoning(plan: Plan, ctx: TurnContext) -> Script:
    subject = echo_subject(ctx.message) or "nothing"
    thinking: list[Step] = [
        Thought("Thinking about your request", "header", 0),
        *_thoughts(f"The user said: {subject}.", 0),
        Thought("Composing the answer", "header", 1),
        *_thoughts("Replying with a short echo.", 1),
    ] if plan.thinking is None else [
        Thought("Thinking about your request", "header", 0),
        *_thoughts(plan.thinking, 0),
    ]
    script = _finish(plan, ctx, thinking, _tokens(_answer_text(plan, ctx.message)))
    script.thinking = True
    return script


def _heavy_agents(plan: Plan, ctx: TurnContext) -> Script:
    subject = echo_subject(ctx.message) or "nothing"
    prefix: list[Step] = []
    for step, agent in enumerate(HEAVY_AGENTS):
        prefix.append(Thought(f"{agent} is thinking", "header", step, agent))
        prefix.extend(_thoughts(f"Considering: {subject}.", step, agent))
        prefix.append(
            ToolCard(str(uuid.uuid4()), "chatroom_send", {"message": f"{agent} agrees.", "to": "All"}, step, agent)
        )
    script = _finish(plan, ctx, prefix, _tokens(_answer_text(plan, ctx.message)))
    script.thinking = True
    script.rollout_ids = list(HEAVY_AGENTS)
    return script


def _search(plan: Plan, ctx: TurnContext) -> Script:
    subject = echo_subject(ctx.message) or "nothing"
    card_id = str(uuid.uuid4())
    results = [
        {
            "url": f"https://www.example.org/{slug(subject)}-{i}",
            "title": f"{subject} - result {i}",
            "preview": f"Preview {i} about {subject}.",
        }
        for i in (1, 2, 3)
    ]
    cite = {"id": _card_id(), "type": "render_inline_citation", "cardType": "citation", "url": results[0]["url"]}
    tag = (
        f'<grok:render card_id="{cite["id"]}" card_type="citation" type="render_inline_citation">'
        '<argument name="citation_id">0</argument></grok:render>'
    )
    prefix: list[Step] = [
        Thought("Thinking about your request", "header", 0),
        ToolCard(card_id, "web_search", {"query": subject, "num_results": "5"}, 0),
        ToolResult(card_id, results, 0),
        Card(cite),
    ]
    if plan.text is not None or plan.long is not None:
        answer = _tokens(_answer_text(plan, ctx.message))
    else:
        answer = [*_tokens(f"Here is what I found about {subject}"), RenderTag(tag, cite), Token(".")]
    return _finish(
        plan, ctx, prefix, answer, web_search_results=results, card_attachments_json=[_json(cite)]
    )


def _image(plan: Plan, ctx: TurnContext, state: SimState) -> Script:
    """Both in-chat image forms: ``streamingImageGenerationResponse`` progress and ``render_file`` cards."""
    subject = echo_subject(ctx.message) or "an image"
    count = plan.images if plan.images != 2 else ctx.image_count
    images = []
    for index in range(count):
        image_id = str(uuid.uuid4())
        base = f"users/{ctx.user_id}/generated/{image_id}"
        _register_image(state, ctx.user_id, f"{base}-part-0/image.jpg", image_id, PREVIEW_SIZE)
        _register_image(state, ctx.user_id, f"{base}/image.jpg", image_id, IMAGE_SIZE)
        images.append((index, image_id, _card_id(), base))

    steps: list[Step] = [ImageDimensions(*IMAGE_SIZE)]
    tags: list[Step] = []
    for _, image_id, card_id, _ in images:
        empty = {"id": card_id, "type": "render_file", "cardType": "generated_image_card", "image_chunk": None}
        tag = (
            f'<grok:render card_id="{card_id}" card_type="generated_image_card" type="render_file">'
            f'<argument name="file_path">/home/workdir/artifacts/imagine_images/{image_id}.jpg</argument>'
            "</grok:render>"
        )
        steps.append(Card(empty))
        tags.append(RenderTag(tag, empty))
    steps.extend(ImageProgress(iid, f"{base}-part-0/image.jpg", 50, i) for i, iid, _, base in images)
    steps.extend(ImageProgress(iid, f"{base}/image.jpg", 100, i, plan.moderated) for i, iid, _, base in images)
    cards = []
    for index, image_id, card_id, base in images:
        card = {
            "id": card_id,
            "type": "render_file",
            "cardType": "generated_image_card",
            "image_chunk": {
                "imageUuid": image_id,
                "imageUrl": f"{base}/image.jpg",
                "progress": 100,
                "moderated": plan.moderated,
                "seq": 0,
                "imageIndex": index,
                "imageTitle": subject[:60],
                "imageModel": "imagine",
                "imagePrompt": {"prompt": subject, "upsampledPrompt": f"{subject}, highly detailed"},
            },
        }
        steps.append(Card(card))
        cards.append(_json(card))
    answer = [*tags, *_tokens(f"I generated images with the prompt: '{subject}'")]
    urls = [f"{base}/image.jpg" for *_, base in images]
    return _finish(plan, ctx, steps, answer, generated_image_urls=urls, card_attachments_json=cards)


def _image_edit(plan: Plan, ctx: TurnContext, state: SimState) -> Script:
    image_id = str(uuid.uuid4())
    base = f"users/{ctx.user_id}/generated/{image_id}"
    _register_image(state, ctx.user_id, f"{base}-part-0/image.jpg", image_id, PREVIEW_SIZE)
    _register_image(state, ctx.user_id, f"{base}/image.jpg", image_id, IMAGE_SIZE)
    steps: list[Step] = [
        ProgressReport(
            {
                "category": "PROGRESS_REPORT_CATEGORY_ATTACHMENTS_PREPROCESSING",
                "state": "PROGRESS_REPORT_STATUS_PENDING",
                "message": "Started pre-processing attachments",
            }
        ),
        ImageDimensions(*IMAGE_SIZE),
        ImageProgress(image_id, f"{base}-part-0/image.jpg", 50, 0),
        ImageProgress(image_id, f"{base}/image.jpg", 100, 0, plan.moderated),
    ]
    return _finish(plan, ctx, steps, _tokens("I edited the image"), generated_image_urls=[f"{base}/image.jpg"])


_VIDEO_SIZES = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
}


def _video(plan: Plan, ctx: TurnContext, state: SimState, req: ChatRequest | None) -> Script:
    """§4.8(d): three empty tokens, progress 1→100 each followed by an empty token, then the answer."""
    spec = dict(req.video) if req is not None else {}
    resolution = spec.get("resolutionName", "480p")
    w_ratio, h_ratio = _VIDEO_SIZES.get(spec.get("aspectRatio", "2:3"), (2, 3))
    short = 720 if resolution == "720p" else 480
    scale = short / min(w_ratio, h_ratio)
    width, height = round(w_ratio * scale / 2) * 2, round(h_ratio * scale / 2) * 2

    video_id = str(uuid.uuid4())
    post = state.create_post(ctx.user_id, "MEDIA_POST_TYPE_VIDEO", "", spec.get("prompt", ""))
    base = f"users/{ctx.user_id}/generated/{video_id}"
    video_url, thumb_url = f"{base}/generated_video.mp4", f"{base}/preview_image.jpg"
    size = state.config.video_bytes
    state.put_asset(video_url, Asset(ctx.user_id, "video/mp4", factory=partial(media.mp4, size)))
    _register_image(state, ctx.user_id, thumb_url, video_id, (width, height))
    length = float(spec.get("videoLength") or 6)
    extends = spec.get("extendPostId") or None
    if extends:  # D2 extension round: the stitched clip = the extended one up to the start time + this round
        length += float(spec.get("videoExtensionStartTime") or 0)
    state.add_video(Video(video_id, ctx.user_id, post.id, video_url, seconds=length, extends=extends))

    prompt = spec.get("prompt") or echo_subject(ctx.message)
    common_tail = {
        "audioUrls": [],
        "audioTranscripts": [],
        "videoPrompt": "",
        "imageReference": spec.get("imageReference", ""),
        "moderated": False,
        "mode": spec.get("mode", "custom"),
        "modelName": "imagine_w_1",
        "width": width,
        "height": height,
        "resolutionName": resolution,
    }
    steps: list[Step] = [EmptyToken(), EmptyToken(), EmptyToken()]
    for progress in VIDEO_PROGRESS:
        data: dict[str, Any] = {"videoId": video_id, "progress": progress, "videoPostId": post.id}
        if req is not None and req.parent_post_id:
            data["parentPostId"] = req.parent_post_id
        tail = dict(common_tail)
        if progress == 100:
            tail["moderated"] = plan.moderated
            if not plan.moderated:
                data.update(assetId=video_id, videoUrl=video_url, thumbnailImageUrl=thumb_url)
                tail["videoPrompt"] = f"{prompt}. Cinematic, smooth camera motion."
        steps.append(VideoProgress({**data, **tail}))
        steps.append(EmptyToken())
    steps.append(EmptyToken())
    script = _finish(
        plan, ctx, steps, _tokens("I generated a video"), file_attachments=[] if plan.moderated else [video_id]
    )
    if script.final is not None:
        script.final.empty_token_after_soft_stop = True
    return script


def usage_limit_script() -> Script:
    card = {"image_chunk": {"progress": 100, "systemErrCode": "rate_limit"}}
    return Script([StreamError(USAGE_LIMIT_MESSAGE, None, card, code="usage_limit")], None)


def build_script(plan: Plan, ctx: TurnContext, state: SimState, req: ChatRequest | None = None) -> Script:
    if plan.usage_limit:
        return usage_limit_script()
    if plan.kind == "reasoning":
        return _reasoning(plan, ctx)
    if plan.kind == "search":
        return _search(plan, ctx)
    if plan.kind == "image":
        return _image(plan, ctx, state)
    if plan.kind == "image_edit":
        return _image_edit(plan, ctx, state)
    if plan.kind == "video":
        return _video(plan, ctx, state, req)
    if plan.kind == "heavy_agents":
        return _heavy_agents(plan, ctx)
    return _plain(plan, ctx)


def _register_image(state: SimState, uid: str, path: str, key: str, size: tuple[int, int]) -> None:
    state.put_asset(path, Asset(uid, "image/jpeg", factory=partial(media.image_for, key, *size)))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
