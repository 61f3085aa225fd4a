"""Everything between an authenticated chat request and its script, shared by REST and mgw: conversation and
parent validation, media checks, quota admission, scenario choice, ids, and recording the turn."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from simulator.agent import agent_answer
from simulator.chat_request import ChatRequest, TurnContext
from simulator.rules import Plan
from simulator.scenarios import build_script
from simulator.state import Account, Admission, Conversation, Rejection, SimState, Turn
from simulator.steps import Script


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # not_found | invalid_parent | invalid_post | quota_exhausted | concurrency | mode_unavailable
    mode: str = ""


@dataclass(slots=True)
class PreparedTurn:
    ctx: TurnContext
    script: Script
    admission: Admission
    conversation: Conversation


def prepare_turn(
    state: SimState,
    account: Account,
    req: ChatRequest,
    *,
    conversation_id: str | None,
    conversation: Conversation | None = None,
    trace_id: str,
    transport: str,
    path: str,
) -> PreparedTurn | Refusal:
    """``conversation_id``: REST continue (validated); ``conversation``: an mgw session's own conversation."""
    conv: Conversation | None = conversation
    parent = req.parent_response_id
    if conv is None and conversation_id is not None:
        conv = state.find_conversation(conversation_id, account)
        if conv is None:
            return _refuse(state, account, "not_found")
    if conv is not None:
        # Accept the assistant id (browser) or the user-turn id (GO-2026-07 `responseId`) of this conversation.
        if parent is not None and parent not in conv.response_ids():
            return _refuse(state, account, "invalid_parent")
        if parent is None and conv.turns:
            parent = conv.turns[-1].assistant_response_id
    # a generated video is a post too (``post.videos[].id`` is the post's id): extension rounds name the clip
    if req.parent_post_id is not None and req.parent_post_id not in state.posts \
            and req.parent_post_id not in state.videos:
        return _refuse(state, account, "invalid_post")

    cost = 1 if req.media_quota else state.config.mode_costs.get(req.mode, 1)
    admission = state.admit(account, req.quota_key, cost, path)
    if isinstance(admission, Rejection):
        return Refusal(admission.reason, admission.mode)
    continuing = conversation_id is not None or bool(conv is not None and conv.turns)
    try:
        if conv is None:
            conv = state.create_conversation(account, temporary=req.temporary)
        now = state.clock.now()
        ctx = TurnContext(
            user_id=account.user_id,
            mode=req.mode,
            message=req.message,
            conversation_id=conv.id,
            conversation_created=conv.created,
            user_response_id=str(uuid.uuid4()),
            assistant_response_id=str(uuid.uuid4()),
            parent_response_id=parent if continuing else None,
            trace_id=trace_id,
            new_conversation=not continuing,
            temporary=conv.temporary,
            file_attachments=req.file_attachments,
            send_final_metadata=req.send_final_metadata,
            disable_follow_ups=req.disable_follow_ups,
            image_count=req.image_count,
            media_gen_input=req.media_gen_input,
            created=now,
        )
        plan = state.rules.plan(req.message, mode=req.mode, media=req.media)
        choose_text(state, account, req, plan)
        script = build_script(plan, ctx, state, req)
        answer = script.final.message if script.final is not None else ""
        if script.final is not None and ctx.new_conversation:
            conv.title = script.final.title
        state.add_turn(conv, Turn(ctx.user_response_id, ctx.assistant_response_id, ctx.parent_response_id,
                                  req.message, answer, req.mode, transport, req.file_attachments, now))
    except BaseException:
        admission.release()
        raise
    return PreparedTurn(ctx, script, admission, conv)


_MEDIA_KINDS = ("image", "video", "image_edit")


def choose_text(state: SimState, account: Account, req: ChatRequest, plan: Plan) -> None:
    """The answer text, most specific first: a scripted reply, a rule's text, the agent model, the echo.
    Only admitted text turns consume a reply: media turns (request shape or ``#image``/``#video``) keep their own."""
    if req.media is not None or plan.kind in _MEDIA_KINDS:
        return
    reply = state.take_reply(account)
    if reply is not None:
        plan.text, plan.long = reply.text, None
        if reply.thinking is not None:
            plan.thinking = reply.thinking
            plan.kind = "reasoning" if plan.kind == "plain" else plan.kind
        return
    if state.config.agent_model and plan.text is None and plan.long is None and not plan.ignore_format:
        plan.text = agent_answer(req.message, plan)


def _refuse(state: SimState, account: Account, reason: str) -> Refusal:
    state.record_rejection(account, reason)
    return Refusal(reason)
