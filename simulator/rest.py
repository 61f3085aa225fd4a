"""Render a ``Script`` as grok.com's REST NDJSON stream (§4).

Lines are pre-encoded before streaming starts so the send loop does no JSON work per token; only the
``modelResponse`` line is built at send time (its ``createTime`` is when generation finished). JSON is written
the way the real service writes it: compact, UTF-8 literal, ``<``/``>``/``&`` escaped Go-style.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from simulator.chat_request import TurnContext
from simulator.modes import MODEL_HASHES, MODEL_LABELS, MODEL_MODE_NAMES
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
    StreamError,
    Thought,
    Token,
    ToolCard,
    ToolResult,
    VideoProgress,
)

Payload = bytes | Callable[[], bytes] | Stall | Abort | End
Item = tuple[str, Payload]  # (delay knob, payload)

_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
TOOL_CARD_KEYS = {
    "web_search": "webSearch",
    "x_search": "xSearch",
    "code_execution": "codeExecution",
    "browse_page": "browsePage",
    "search_images": "searchImages",
    "chatroom_send": "chatroomSend",
}
_EMPTY_LISTS = ("webSearchResults", "xpostIds", "xposts", "generatedImageUrls", "imageAttachments")


def dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_GO_ESCAPES) if ("<" in text or ">" in text or "&" in text) else text


def dumps_str(value: str) -> str:
    """``dumps`` for a plain string via the C string encoder (the per-token hot path)."""
    text = encode_basestring(value)
    return text.translate(_GO_ESCAPES) if ("<" in text or ">" in text or "&" in text) else text


def micro_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def milli_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tool_card_xml(card_id: str, tool: str, args: dict[str, Any]) -> str:
    return (
        "<xai:tool_usage_card>\n"
        f"  <xai:tool_usage_card_id>{card_id}</xai:tool_usage_card_id>\n"
        f"  <xai:tool_name>{tool}</xai:tool_name>\n"
        f"  <xai:tool_args><![CDATA[{json.dumps(args, ensure_ascii=False, separators=(',', ':'))}]]></xai:tool_args>\n"
        "</xai:tool_usage_card>"
    )


def _effort(script: Script | None, mode: str) -> str:
    return "HIGH" if (script is not None and script.thinking) or mode in ("expert", "heavy") else "LOW"


def message_object(
    *,
    response_id: str,
    message: str,
    sender: str,
    create_time: float,
    parent_response_id: str | None,
    file_attachments: list[str],
    model: str,
    metadata: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full userResponse / modelResponse key set in captured order (§4.5)."""
    extra = extra or {}
    obj: dict[str, Any] = {"responseId": response_id, "message": message, "sender": sender,
                           "createTime": milli_time(create_time)}
    if parent_response_id is not None:
        obj["parentResponseId"] = parent_response_id
    obj.update(manual=False, partial=False, shared=False, query="", queryType="")
    for key in _EMPTY_LISTS:
        obj[key] = extra.get(key, [])
    obj["fileAttachments"] = file_attachments
    obj["cardAttachmentsJson"] = extra.get("cardAttachmentsJson", [])
    obj.update(fileUris=[], fileAttachmentsMetadata=[], isControl=False, steps=[], imageEditUris=[],
               mediaTypes=[], webpageUrls=[])
    obj["metadata"] = metadata
    if "mediaGenInput" in extra:
        obj["mediaGenInput"] = extra["mediaGenInput"]
    if "uiLayout" in extra:
        obj["uiLayout"] = extra["uiLayout"]
    obj.update(citedWebSearchResults=extra.get("citedWebSearchResults", []), toolResponses=[], model=model)
    if "requestMetadata" in extra:
        obj["requestMetadata"] = extra["requestMetadata"]
    obj.update(ragResults=[], citedRagResults=[], searchProductResults=[], connectorSearchResults=[],
               collectionSearchResults=[], highlightsStories=[], streamErrors=[])
    return obj


def conversation_object(ctx: TurnContext) -> dict[str, Any]:
    return {
        "conversationId": ctx.conversation_id,
        "title": "New conversation",
        "starred": False,
        "createTime": micro_time(ctx.conversation_created),
        "modifyTime": micro_time(ctx.conversation_created + 0.000911),
        "systemPromptName": "",
        "temporary": ctx.temporary,
        "mediaTypes": [],
        "workspaces": [],
        "taskResult": None,
    }


def user_response_object(ctx: TurnContext) -> dict[str, Any]:
    extra = {"mediaGenInput": ctx.media_gen_input} if ctx.media_gen_input else None
    return message_object(
        response_id=ctx.user_response_id,
        message=ctx.message,
        sender="human",
        create_time=ctx.created,
        parent_response_id=ctx.parent_response_id,
        file_attachments=ctx.file_attachments,
        model=MODEL_LABELS[ctx.mode],
        metadata={},
        extra=extra,
    )


def ui_layout(script: Script | None, mode: str, split: bool) -> dict[str, Any]:
    effort = _effort(script, mode)
    layout: dict[str, Any] = {"reasoningUiLayout": "SPLIT" if split else "FUNCTION_CALL",
                              "willThinkLong": effort == "HIGH", "effort": effort}
    if split:
        layout["steerModelId"] = "grok-4"
    layout["rolloutIds"] = list(script.rollout_ids) if script is not None else []
    return layout


class RestRenderer:
    """Builds the line items of one response. ``flat`` = the continue endpoint (no ``response`` wrapper)."""

    def __init__(self, ctx: TurnContext, *, flat: bool, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.flat = flat
        self.clock = clock
        self._open = '{"result":{' if flat else '{"result":{"response":{'
        self._close = "}}\n" if flat else "}}}\n"
        rid = ctx.assistant_response_id
        self._rid = f',"responseId":"{rid}"'
        self._plain = f',"isThinking":false,"isSoftStop":false,"responseId":"{rid}"'
        self._final_tail = f',"isThinking":false,"isSoftStop":false,"messageTag":"final","responseId":"{rid}"'

    def _line(self, body: str) -> bytes:
        return (self._open + body + self._close).encode()

    def _field(self, key: str, value: Any) -> bytes:
        return self._line(f'"{key}":{dumps(value)}{self._plain}')

    def conversation_line(self) -> bytes:
        return ('{"result":{"conversation":' + dumps(conversation_object(self.ctx)) + "}}\n").encode()

    def user_line(self) -> bytes:
        uid = self.ctx.user_response_id
        return self._line(
            f'"userResponse":{dumps(user_response_object(self.ctx))}'
            f',"isThinking":false,"isSoftStop":false,"responseId":"{uid}"'
        )

    def title_line(self, title: str) -> bytes:
        return ('{"result":{"title":' + dumps({"newTitle": title}) + "}}\n").encode()

    def render(self, script: Script) -> list[Item]:
        ctx = self.ctx
        items: list[Item] = []
        if not self.flat:
            items.append(("none", self.conversation_line()))
        items.append(("user" if not self.flat else "none", self.user_line()))
        if not _is_usage_limit(script):
            items.append(("first", self._field("uiLayout", ui_layout(script, ctx.mode, True))))
            items.append(("none", self._field("llmInfo", {"modelHash": MODEL_HASHES[ctx.mode]})))
            items.append(("none", self._field("uiLayout", ui_layout(script, ctx.mode, False))))
        for step in script.steps:
            items.append((step.delay, self._step(step)))
        if script.final is not None:
            items.extend(self._finish(script, script.final))
        return items

    def error_only(self, error: dict[str, Any]) -> list[Item]:
        """A 200 stream whose only line is a bare error object (anti-bot preflight variant)."""
        return [("none", (dumps({"error": error}) + "\n").encode())]

    def _step(self, step: Any) -> Payload:
        if isinstance(step, Token | RenderTag):
            return self._line('"token":' + dumps_str(step.text) + self._final_tail)
        if isinstance(step, Thought):
            return self._line(
                f'"token":{dumps_str(step.text)},"isThinking":true,"isSoftStop":false,"messageTag":"{step.tag}"'
                f',"messageStepId":{step.step_id}{_rollout(step.rollout_id)}{self._rid}'
            )
        if isinstance(step, ToolCard):
            card = {"toolUsageCardId": step.card_id, TOOL_CARD_KEYS.get(step.tool, step.tool): {"args": step.args}}
            return self._line(
                f'"token":{dumps(tool_card_xml(step.card_id, step.tool, step.args))},"isThinking":true'
                f',"isSoftStop":false,"messageTag":"tool_usage_card","messageStepId":{step.step_id}'
                f'{_rollout(step.rollout_id)}{self._rid}'
                f',"toolUsageCardId":"{step.card_id}","toolUsageCard":{dumps(card)}'
            )
        if isinstance(step, ToolResult):
            return self._line(
                '"token":"","isThinking":true,"isSoftStop":false,"messageTag":"raw_function_result"'
                f',"messageStepId":{step.step_id},"toolUsageCardId":"{step.card_id}"'
                f',"webSearchResults":{dumps({"results": step.results})}{self._rid}'
            )
        if isinstance(step, Card):
            return self._field("cardAttachment", {"jsonData": dumps(step.data)})
        if isinstance(step, ImageDimensions):
            return self._field("imageDimensions", {"width": step.width, "height": step.height})
        if isinstance(step, ImageProgress):
            data: dict[str, Any] = {"imageId": step.image_id, "imageUrl": step.url, "progress": step.progress}
            if step.moderated is not None:
                data["moderated"] = step.moderated
            data["imageIndex"] = step.index
            return self._field("streamingImageGenerationResponse", data)
        if isinstance(step, ProgressReport):
            return self._field("progressReport", step.data)
        if isinstance(step, VideoProgress):
            return self._field("streamingVideoGenerationResponse", step.data)
        if isinstance(step, EmptyToken):
            return self._line('"token":""' + self._final_tail)
        if isinstance(step, StreamError):
            error: dict[str, Any] = {"message": step.message}
            if step.severity:
                error["severity"] = step.severity
            card = f',"cardAttachment":{dumps({"jsonData": dumps(step.card)})}' if step.card else ""
            return self._line(f'"error":{dumps(error)}{card}{self._plain}')
        if isinstance(step, Stall | Abort | End):
            return step
        raise TypeError(f"cannot render {step!r}")

    def _finish(self, script: Script, final: Final) -> list[Item]:
        ctx = self.ctx
        items: list[Item] = [("none", self._line(
            f'"token":"","isThinking":false,"isSoftStop":true{self._rid}'
        ))]
        if final.empty_token_after_soft_stop:
            items.append(("none", self._line('"token":""' + self._final_tail)))
        if ctx.send_final_metadata and not ctx.disable_follow_ups:
            items.append(("none", self._field("finalMetadata", {
                "followUpSuggestions": [
                    {"properties": {"messageType": "TEXT", "followUpType": "TANGENTIAL"}, "label": label,
                     "toolOverrides": {}}
                    for label in final.follow_ups
                ],
                "feedbackLabels": [],
                "toolsUsed": None,
                "disclaimer": "",
            })))
        items.append(("none", lambda: self._field("modelResponse", self.model_response(script, final))))
        if not self.flat:
            items.append(("none", self.title_line(final.title)))
        return items

    def model_response(self, script: Script, final: Final, finished: float | None = None) -> dict[str, Any]:
        ctx = self.ctx
        effort = _effort(script, ctx.mode)
        layout = ui_layout(script, ctx.mode, False)
        metadata = {
            "deepsearchPreset": "",
            "llm_info": {"modelHash": MODEL_HASHES[ctx.mode]},
            "request_metadata": {"effort": effort.lower(), "mode": ctx.mode, "model": MODEL_LABELS[ctx.mode]},
            "request_trace_id": ctx.trace_id,
            "ui_layout": {"effort": effort, "reasoningUiLayout": "FUNCTION_CALL",
                          "willThinkLong": layout["willThinkLong"]},
        }
        return message_object(
            response_id=ctx.assistant_response_id,
            message=final.message,
            sender="assistant",
            create_time=finished if finished is not None else self.clock(),
            parent_response_id=ctx.user_response_id,
            file_attachments=final.file_attachments,
            model="grok-3",
            metadata=metadata,
            extra={
                "webSearchResults": final.web_search_results,
                "generatedImageUrls": final.generated_image_urls,
                "cardAttachmentsJson": final.card_attachments_json,
                "uiLayout": layout,
                "requestMetadata": {"model": MODEL_LABELS[ctx.mode], "mode": MODEL_MODE_NAMES[ctx.mode],
                                    "effort": effort},
            },
        )


def _rollout(rollout_id: str | None) -> str:
    return f',"rolloutId":{dumps(rollout_id)}' if rollout_id else ""


def _is_usage_limit(script: Script) -> bool:
    return script.final is None and len(script.steps) == 1 and isinstance(script.steps[0], StreamError) \
        and script.steps[0].code == "usage_limit"
