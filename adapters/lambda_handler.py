"""AWS Lambda entry point: ``adapters.lambda_handler.handler``.

One handler serves both kinds of invocation the deployment sends it:

* HTTP events (API Gateway HTTP API v2, REST API v1, Function URLs, ALB) go through Mangum to the ASGI app;
* the EventBridge scheduled event runs one slice of the cron work (``core.cron.run_cron``);
* an asynchronous self-invocation ``{"grok2api": "video_job", "id": ...}`` (``VIDEO_DRIVE=async``,
  ``core/video_queue.py``) runs one queued video job, bounded by the time the invocation has left.

Mangum buffers: a ``stream: true`` chat answers with the whole SSE body at the end, and API Gateway cuts the
invocation at 30 s. For streaming, deploy the same app behind the Lambda Web Adapter (``deploy/lambda-streaming``).

Cold start: the app is built at import (cheap: the engine is built on the first request that needs it), and
Mangum's lifespan is off, because Mangum runs the ASGI lifespan around *every* invocation and the app's shutdown
would close the engine each time. Mangum drives every invocation on one event loop that lives as long as the
instance, so clients and connections opened by one request are reused by the next; the cron path runs on it too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from mangum import Mangum

from adapters.entry import ASGIApp, ConfigErrorApp, load_app
from core.cron import run_cron
from core.video_queue import is_video_job_event, run_queued

log = logging.getLogger("grok2api")

# Responses whose bodies travel as text; anything else (images, video) is base64-encoded by Mangum.
TEXT_MIME_TYPES = ["text/", "application/json", "application/x-ndjson", "application/javascript",
                   "application/xml", "application/problem+json"]

# Seconds kept back from the invocation's remaining time when sizing a cron slice.
CRON_MARGIN = 5.0
CRON_MAX_BUDGET = 250.0


class LambdaHandler:
    """``handler(event, context)`` for one ASGI app; the module-level ``handler`` wraps ``load_app()``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.asgi = Mangum(app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if is_scheduled_event(event):
            return self.run_scheduled(event, context)
        if is_video_job_event(event):
            return self.run_video_job(event, context)
        return self.asgi(event, context)

    def run_scheduled(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if isinstance(self.app, ConfigErrorApp):
            # Fail loudly: the invocation shows as an error in the function's metrics and logs.
            raise RuntimeError("cron skipped, invalid configuration:\n  " + "\n  ".join(self.app.problems))

        async def tick() -> dict[str, Any]:
            gateway = await self.app.state.gateway.get()  # type: ignore[attr-defined]
            return await run_cron(gateway, budget=cron_budget(context))

        # Mangum set this loop up and runs every HTTP invocation on it: the engine's clients belong to it.
        report = asyncio.get_event_loop().run_until_complete(tick())
        log.info("cron %s: %s", event.get("time", ""), json.dumps(report, default=str))
        return {"ok": True, "event_id": event.get("id"), **report}


    def run_video_job(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if isinstance(self.app, ConfigErrorApp):
            raise RuntimeError("video job skipped, invalid configuration:\n  " + "\n  ".join(self.app.problems))

        async def run() -> dict[str, str] | None:
            gateway = await self.app.state.gateway.get()  # type: ignore[attr-defined]
            return await run_queued(gateway, event["id"], budget=job_budget(context))

        # An error escaping here (the store unreachable before the claim) makes Lambda deliver the event again
        # later (twice at most); a delivery that finds the job claimed or ended does nothing.
        job = asyncio.get_event_loop().run_until_complete(run())
        if job is None:
            log.info("video job %s: not queued (already run, running, deleted, expired or too old)", event["id"])
            return {"ok": True, "id": event["id"], "status": "skipped"}
        log.info("video job %s: %s", event["id"], job.get("status"))
        return {"ok": True, "id": event["id"], "status": job.get("status"), "error_code": job.get("error_code")}


def is_scheduled_event(event: Any) -> bool:
    """EventBridge (CloudWatch Events) rule targets and ``serverless.yml`` ``schedule`` events look like this."""
    return (
        isinstance(event, dict)
        and event.get("source") == "aws.events"
        and event.get("detail-type") == "Scheduled Event"
    )


def _seconds_left(context: Any) -> float | None:
    """What the invocation has left, less a margin for reporting (``None`` without a Lambda context)."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining_ms is None else max(1.0, remaining_ms() / 1000 - CRON_MARGIN)


def cron_budget(context: Any) -> float:
    """Seconds the cron slice may take: what the invocation has left, at most ``CRON_MAX_BUDGET``."""
    left = _seconds_left(context)
    return 20.0 if left is None else min(CRON_MAX_BUDGET, left)


def job_budget(context: Any) -> float | None:
    """Seconds a video job may run in this invocation (``None`` outside Lambda: ``VIDEO_TIMEOUT`` alone)."""
    return _seconds_left(context)


handler = LambdaHandler(load_app())
