"""The ``mgw`` chat WebSocket (§10): Realtime-style events over ``/ws/mgw/?uid=<user uuid>``.

Handshake: the REST gates plus the ``x-userid`` cookie, which must equal ``?uid`` and the account's user id. A
refused handshake is an HTTP denial response (401 JSON, 403 challenge HTML, 403 blocked JSON), like a
Cloudflare-fronted upgrade. Problems after the upgrade (quota, anti-bot, bad parent, ...) are ``error`` events and
the socket stays open. Quota, concurrency and the ledger are shared with REST.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from simulator import gates
from simulator.chat_request import ChatRequest, trace_id_from
from simulator.modes import THINKING_MODES
from simulator.state import Account, Admission, Conversation, SimState
from simulator.steps import (
    Abort,
    Card,
    End,
    RenderTag,
    Stall,
    StreamError,
    Thought,
    Token,
    ToolCard,
    ToolResult,
    VideoProgress,
)
from simulator.stream import delay_for
from simulator.turns import PreparedTurn, Refusal, prepare_turn

CH_ANSWER = "CHANNEL_ASSISTANT_RESPONSE"
CH_HEADER = "CHANNEL_ASSISTANT_NOTETAKER_HEADER"
CH_SUMMARY = "CHANNEL_ASSISTANT_NOTETAKER_SUMMARY"
CH_ANALYSIS = "CHANNEL_ANALYSIS"

_REFUSALS = {
    "quota_exhausted": ("rate_limit_exceeded", "Too many requests"),
    "concurrency": ("rate_limit_exceeded", "Too many requests"),
    "not_found": ("not_found", "Conversation not found"),
    "invalid_parent": ("invalid_argument", "Invalid parent response id"),
    "invalid_post": ("invalid_argument", "Invalid source post id"),
}

Outgoing = tuple[str, "str | Callable[[], str] | Stall | Abort | End"]


async def endpoint(ws: WebSocket) -> None:
    state: SimState = ws.app.state.sim
    account = gates.check(state, ws.headers, require_userid=True)
    if isinstance(account, gates.Account) and ws.query_params.get("uid") != account.user_id:
        state.record_rejection(account, "unauthenticated")
        account = gates.GateFailure("unauthenticated", account)
    if isinstance(account, gates.GateFailure):
        await ws.send_denial_response(account.response(ws.url.path))
        return
    await ws.accept()
    await MgwSession(ws, state, account).run()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class MgwSession:
    def __init__(self, ws: WebSocket, state: SimState, account: Account) -> None:
        self.ws = ws
        self.state = state
        self.account = account
        self.conv: Conversation | None = None
        self.mode = "auto"
        self.x_grok: dict[str, Any] = {}
        self.pending: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self._prefix = secrets.token_hex(6)
        self._counter = 0
        self._send_lock = asyncio.Lock()

    # -- framing ---------------------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> str:
        self._counter += 1
        event = {"type": kind, "event_id": f"event_{self._prefix}{self._counter:05d}", **fields}
        frame = {"session_id": self.conv.id, "event": event} if self.conv else {"event": event}
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self.ws.send_text(text)

    async def error(self, code: str, message: str, client_event_id: str = "") -> None:
        fields: dict[str, Any] = {"error": {"code": code, "message": message}}
        if client_event_id:
            fields["client_event_id"] = client_event_id
        await self.send(self.event("error", **fields))

    # -- receive loop ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                raw = await self.ws.receive_text()
                try:
                    frame = json.loads(raw)
                    event = frame["event"]
                    kind = event["type"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    await self.error("invalid_request", "Malformed event")
                    continue
                await self.handle(kind, event, frame)
        except WebSocketDisconnect:
            pass
        finally:
            if self.task is not None and not self.task.done():
                self.task.cancel()

    async def handle(self, kind: str, event: dict[str, Any], frame: dict[str, Any]) -> None:
        event_id = _text(event.get("event_id"))
        if kind == "ping":
            await self.send(self.event("pong", client_event_id=event_id))
        elif kind == "session.create":
            await self.create_session(event, frame, event_id)
        elif kind == "conversation.item.create":
            if self.conv is None:
                await self.error("invalid_state", "Create a session first", event_id)
                return
            self.pending = event
        elif kind == "response.create":
            await self.create_response(event_id)
        elif kind == "response.cancel" and self.task is not None and not self.task.done():
            self.task.cancel()
        # Other custom methods (session.update, castle tokens, ...) are accepted silently.

    async def create_session(self, event: dict[str, Any], frame: dict[str, Any], event_id: str) -> None:
        session = event.get("session") if isinstance(event.get("session"), dict) else {}
        self.x_grok = session.get("x_grok") if isinstance(session.get("x_grok"), dict) else {}
        model = _text(session.get("model")).lower()
        self.mode = model if model in ("auto", "fast", "expert", "heavy") else "auto"
        existing = _text(self.x_grok.get("conversation_id")) or _text(frame.get("session_id"))
        if existing and self.x_grok.get("load_existing", bool(self.x_grok.get("conversation_id"))):
            conv = self.state.find_conversation(existing, self.account)
            if conv is None:
                self.state.record_rejection(self.account, "not_found")
                await self.error("not_found", "Conversation not found", event_id)
                return
            self.conv, attach_mode = conv, "existing"
        else:
            self.conv = self.state.create_conversation(
                self.account, temporary=bool(self.x_grok.get("is_temporary", False))
            )
            attach_mode = "new"
        await self.send(self.event("session.created", client_event_id=event_id,
                                   session={**session, "id": self.conv.id}))
        await self.send(self.event("conversation.attached",
                                   conversation={"id": self.conv.id, "object": "realtime.conversation"},
                                   mode=attach_mode))

    def _chat_request(self, item_event: dict[str, Any]) -> ChatRequest:
        item = item_event.get("item") if isinstance(item_event.get("item"), dict) else {}
        x_grok = item.get("x_grok") if isinstance(item.get("x_grok"), dict) else {}
        texts, files = [], []
        for chunk in x_grok.get("input_chunks") or []:
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("text"), dict):
                texts.append(_text(chunk["text"].get("text")))
            file_id = (((chunk.get("mention") or {}).get("target") or {}).get("file_mention") or {}).get("file_id")
            if isinstance(file_id, str):
                files.append(file_id)
        for part in item.get("content") or []:  # plain Realtime-style content, accepted leniently
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        for key in ("file_attachment_ids",):
            for source in (item_event, item):
                files.extend(f for f in source.get(key) or [] if isinstance(f, str) and f not in files)
        parent = _text(item_event.get("parent_response_id")) or _text(item.get("parent_response_id"))
        count = self.x_grok.get("image_generation_count")
        return ChatRequest(
            message="".join(texts),
            mode=self.mode,
            temporary=self.conv.temporary if self.conv else True,
            file_attachments=files,
            send_final_metadata=True,
            disable_follow_ups=bool(self.x_grok.get("disable_text_follow_ups", False)),
            image_count=count if isinstance(count, int) and 1 <= count <= 4 else 2,
            parent_response_id=parent or None,
            media=None,
            media_quota=None,
            parent_post_id=None,
        )

    async def create_response(self, event_id: str) -> None:
        if self.conv is None or self.pending is None:
            await self.error("invalid_state", "No user message to respond to", event_id)
            return
        if self.task is not None and not self.task.done():
            await self.error("invalid_state", "A response is already in progress", event_id)
            return
        if self.state.config.mgw_anti_bot:
            self.state.record_rejection(self.account, "anti_bot")
            await self.error("anti_bot", "anti-bot rejected", event_id)
            return
        req = self._chat_request(self.pending)
        self.pending = None
        outcome = prepare_turn(
            self.state, self.account, req, conversation_id=None, conversation=self.conv,
            trace_id=trace_id_from(None), transport="mgw", path=self.ws.url.path,
        )
        if isinstance(outcome, Refusal):
            if outcome.reason == "mode_unavailable":
                code, message = "permission_denied", f"Mode {outcome.mode} is not available on your subscription"
            else:
                code, message = _REFUSALS.get(outcome.reason, ("invalid_request", "Request rejected"))
            await self.error(code, message, event_id)
            return
        self.task = asyncio.create_task(self._stream(outcome))

    async def _stream(self, turn: PreparedTurn) -> None:
        admission: Admission = turn.admission
        try:
            for kind, payload in render(self, turn):
                delay = delay_for(kind, self.state.config)
                if delay > 0:
                    await asyncio.sleep(delay)
                if isinstance(payload, Stall):
                    await asyncio.sleep(payload.seconds)
                elif isinstance(payload, Abort):
                    await self.ws.close(1011)
                    return
                elif isinstance(payload, End):
                    return
                else:
                    await self.send(payload() if callable(payload) else payload)
        except asyncio.CancelledError:
            pass
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-stream
        finally:
            admission.release()


def render(session: MgwSession, turn: PreparedTurn) -> list[Outgoing]:
    """The §10 event sequence for one turn (``response.chunk`` per step)."""
    ctx, script = turn.ctx, turn.script
    rid, uid = ctx.assistant_response_id, ctx.user_response_id
    ev = session.event
    out: list[Outgoing] = [
        ("none", ev("conversation.queue.updated", queue={"pending": 0})),
        ("none", ev("conversation.item.added", previous_item_id=ctx.parent_response_id, item={
            "id": uid, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": ctx.message}]})),
        ("none", ev("response.created", response={"id": rid, "status": "in_progress",
                                                  "output_modalities": ["text"]})),
        ("none", ev("response.output_item.added", response_id=rid, output_index=0, item={
            "id": rid, "type": "message", "role": "assistant", "status": "in_progress", "content": []})),
        ("none", ev("response.content_part.added", response_id=rid, item_id=rid, output_index=0,
                    content_index=0, part={"type": "text", "text": ""})),
    ]
    effort = "HIGH" if script.thinking or ctx.mode in THINKING_MODES else "LOW"
    out.append(("first", _chunk(ev, rid, 0, ui_layout={
        "reasoning_ui_layout": "SPLIT", "effort": effort, "steer_model_id": "grok-4"})))
    answer_step = max((s.step_id for s in script.steps if isinstance(s, Thought)), default=-1) + 1
    text_parts: list[str] = []
    summary: list[str] = []
    summary_step = 0

    def flush_summary() -> None:
        if summary:
            out.append(("none", _chunk(ev, rid, summary_step, text={"text": "".join(summary),
                                                                    "channel": CH_SUMMARY})))
            summary.clear()

    for step in script.steps:
        if not (isinstance(step, Thought) and step.tag == "summary"):
            flush_summary()
        if isinstance(step, Token):
            text_parts.append(step.text)
            out.append((step.delay, _chunk(ev, rid, answer_step, text={"text": step.text, "channel": CH_ANSWER})))
        elif isinstance(step, Thought):
            channel = CH_HEADER if step.tag == "header" else CH_ANALYSIS
            out.append((step.delay, _chunk(ev, rid, step.step_id, text={"text": step.text, "channel": channel})))
            if step.tag == "summary":
                summary.append(step.text)
                summary_step = step.step_id
        elif isinstance(step, RenderTag):
            out.append((step.delay, _card_chunk(ev, rid, answer_step, step.card)))
        elif isinstance(step, ToolCard):
            out.append((step.delay, _chunk(ev, rid, step.step_id, tool_usage_card={
                "tool_usage_card_id": step.card_id, step.tool: {"args": step.args}})))
        elif isinstance(step, ToolResult):
            pages = [{"url": r["url"], "title": r["title"], "snippet": r["preview"]} for r in step.results]
            out.append((step.delay, _chunk(ev, rid, step.step_id, tool_result={
                "tool_call_id": step.card_id, "web_search": {"webpages": pages}})))
        elif isinstance(step, Card) and step.data.get("image_chunk"):
            out.append((step.delay, _card_chunk(ev, rid, answer_step, step.data)))
        elif isinstance(step, VideoProgress):
            out.append((step.delay, ev("response.grok.output", response_id=rid, output={"progress_report": {
                "video_id": step.data["videoId"], "progress": step.data["progress"],
                "video_url": step.data.get("videoUrl", "")}})))
        elif isinstance(step, StreamError):
            if step.severity and "FATAL" not in step.severity:
                continue  # mgw's error event always ends the turn; a non-fatal warning has no mgw form
            out.append(("none", ev("error", error={"code": step.code, "message": step.message})))
            return out
        elif isinstance(step, Stall | Abort | End):
            out.append(("none", step))
    flush_summary()
    final = script.final
    if final is None:
        return out
    text = "" if final.message == "" else "".join(text_parts)
    out += [
        ("none", ev("response.output_text.done", response_id=rid, item_id=rid, output_index=0, content_index=0,
                    text=text)),
        ("none", ev("response.content_part.done", response_id=rid, item_id=rid, output_index=0, content_index=0,
                    part={"type": "text", "text": text})),
        ("none", ev("response.output_item.done", response_id=rid, output_index=0, item={
            "id": rid, "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "text", "text": text}]})),
        ("none", ev("response.done", response={"id": rid, "status": "completed", "usage": {}})),
        ("none", ev("response.persisted", response_id=rid, status="ok")),
    ]
    if ctx.new_conversation:
        out.append(("none", ev("conversation.title.updated", title=final.title)))
    if not ctx.disable_follow_ups:
        out.append(("none", _chunk(ev, rid, answer_step, follow_up_suggestions={"suggestions": [
            {"label": label, "tool_overrides": {"image_gen": False}} for label in final.follow_ups]})))
    return out


def _chunk(ev: Callable[..., str], rid: str, step_id: int, **payload: Any) -> str:
    return ev("response.chunk", response_id=rid, chunk={"metadata": {"step_id": step_id}, **payload})


def _card_chunk(ev: Callable[..., str], rid: str, step_id: int, card: dict[str, Any]) -> str:
    if card.get("type") == "render_inline_citation":
        return _chunk(ev, rid, step_id, render_citation={
            "id": card["id"], "kind": "CITATION_KIND_WEB_PAGE", "url": card.get("url", ""), "citation_id": 0})
    return _chunk(ev, rid, step_id, card_attachment={
        "json_data": json.dumps(card, ensure_ascii=False, separators=(",", ":"))})

