"""A bare FastAPI app: the floor any FastAPI service pays. Baseline for memory, latency and import time.

``python -m bench.bare_app --port 8000`` serves it with the same uvicorn settings ``adapters.cli serve`` uses for
the gateway (uvloop + httptools when installed, INFO log level with access log, keep-alive 75 s), so the
difference between the two is the gateway's own work.

Routes: ``POST /v1/chat/completions`` parses the JSON body into a dict and answers a fixed, small
completion-shaped JSON (no upstream, no store); ``GET /ping`` answers ``{"ok": true}``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


@app.post("/v1/chat/completions")
async def completions(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bare",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=75)


if __name__ == "__main__":
    main()
