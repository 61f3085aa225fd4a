"""The Imagine WebSocket ``/ws/imagine/listen`` (§9): reset + request frames in, progressive base64 JPEG frames out.

Per generation: ``json start_stage`` → ``image`` frames of ~6 KB, ~40 KB and ~120 KB (so size-based gateways
classify them as preview / medium / final) → ``json completed``; jobs interleave stage by stage. Each request
charges one unit of ``image`` (or ``imagePro`` with ``enable_pro``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from functools import lru_cache
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from simulator import gates, media
from simulator.rules import DEFAULT_ERROR
from simulator.state import Account, Asset, Rejection, SimState

_SIZES = {
    "1:1": (1024, 1024), "16:9": (1376, 768), "9:16": (768, 1376), "4:3": (1184, 880), "3:4": (880, 1184),
    "3:2": (1248, 832), "2:3": (832, 1248), "2:1": (1440, 720), "1:2": (720, 1440), "19.5:9": (1536, 704),
    "9:19.5": (704, 1536), "20:9": (1536, 688), "9:20": (688, 1536),
}
# (percentage, scale divisor, minimum bytes) of the three progressive image frames.
_STAGES = ((33.0, 4, 6_000), (66.0, 2, 40_000), (100.0, 1, 120_000))


@lru_cache(maxsize=128)
def _blob(color: tuple[int, int, int], width: int, height: int, min_size: int) -> str:
    return base64.b64encode(media.jpeg(width, height, color, min_size)).decode()


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


async def endpoint(ws: WebSocket) -> None:
    state: SimState = ws.app.state.sim
    account = gates.check(state, ws.headers)
    if isinstance(account, gates.GateFailure):
        await ws.send_denial_response(account.response(ws.url.path))
        return
    await ws.accept()
    scheme = "https" if ws.url.scheme == "wss" else "http"
    session = ImagineSession(ws, state, account, f"{scheme}://{ws.url.netloc}/__imagine-public")
    await session.run()


class ImagineSession:
    def __init__(self, ws: WebSocket, state: SimState, account: Account, public_base: str) -> None:
        self.ws = ws
        self.state = state
        self.account = account
        self.public_base = public_base
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            await self.ws.send_text(_dumps({"type": "session", "conversation_id": str(uuid.uuid4())}))
            while True:
                try:
                    frame = json.loads(await self.ws.receive_text())
                    content = frame["item"]["content"][0]
                except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                    await self.ws.send_text(_dumps({"type": "error", "err_code": "invalid_request",
                                                    "err_msg": "Malformed frame"}))
                    continue
                if content.get("type") in ("input_text", "input_scroll"):
                    if self.task is not None and not self.task.done():
                        self.task.cancel()  # a new prompt replaces the running one, as in the UI
                    self.task = asyncio.create_task(self.generate(content))
        except WebSocketDisconnect:
            pass
        finally:
            if self.task is not None and not self.task.done():
                self.task.cancel()

    async def generate(self, content: dict[str, Any]) -> None:
        state = self.state
        props = content.get("properties") if isinstance(content.get("properties"), dict) else {}
        prompt = content.get("text") if isinstance(content.get("text"), str) else ""
        request_id = content.get("requestId") or str(uuid.uuid4())
        quota = "imagePro" if props.get("enable_pro") else "image"
        admission = state.admit(self.account, quota, 1, self.ws.url.path)
        if isinstance(admission, Rejection):
            code = "permission_denied" if admission.reason == "mode_unavailable" else "rate_limit_exceeded"
            await self._send({"type": "error", "err_code": code, "err_msg": "Too many requests"
                              if code == "rate_limit_exceeded" else "Image generation is not available"})
            return
        try:
            plan = state.rules.plan(prompt)
            if plan.error:
                await self._send({"type": "error", "err_code": "internal_error", "err_msg": DEFAULT_ERROR})
                return
            await self._stream(prompt, request_id, props, plan.moderated, plan.blocked)
        except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            admission.release()

    async def _stream(
        self, prompt: str, request_id: str, props: dict[str, Any], moderated: bool, blocked: bool
    ) -> None:
        config = self.state.config
        count = props.get("num_generations")
        count = count if isinstance(count, int) and 1 <= count <= 16 else config.imagine_default_generations
        width, height = _SIZES.get(str(props.get("aspect_ratio", "1:1")), (1024, 1024))
        jobs = []
        for order in range(count):
            job_id = str(uuid.uuid4())
            color = media.color_for(job_id)
            url = f"{self.public_base}/imagine-public/images/{job_id}.jpg"
            if not moderated and not blocked:
                self.state.put_public(f"imagine-public/images/{job_id}.jpg",
                                      Asset(None, "image/jpeg", factory=lambda c=color: media.jpeg(
                                          width, height, c, _STAGES[-1][2])))
            jobs.append((order, job_id, color, url))
        full_prompt = f"{prompt}, highly detailed, natural lighting"
        step = config.imagine_latency / (len(_STAGES) + 1)

        for order, job_id, _, _ in jobs:
            await self._send({
                "type": "json", "current_status": "start_stage", "percentage_complete": 0.0, "job_id": job_id,
                "image_id": job_id, "request_id": request_id, "order": order, "width": width, "height": height,
                "prompt": prompt, "full_prompt": full_prompt, "section_id": 0,
            })
        stages = _STAGES[:1] if moderated else _STAGES[:2] if blocked else _STAGES
        for percentage, divisor, min_size in stages:
            if step > 0:
                await asyncio.sleep(step)
            w, h = max(width // divisor, 8), max(height // divisor, 8)
            for order, job_id, color, url in jobs:
                await self._send({
                    "type": "image", "url": url, "blob": _blob(color, w, h, min_size), "job_id": job_id,
                    "image_id": job_id, "percentage_complete": percentage, "width": width, "height": height,
                    "order": order, "side_by_side_index": order,
                })
        if blocked:
            return  # previews, then silence: gateways must time out
        if step > 0:
            await asyncio.sleep(step)
        for order, job_id, _, url in jobs:
            done: dict[str, Any] = {"type": "json", "current_status": "completed", "percentage_complete": 100.0,
                                    "job_id": job_id, "image_id": job_id, "order": order, "moderated": moderated}
            if not moderated:
                done["url"] = url
            await self._send(done)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(_dumps(frame))
