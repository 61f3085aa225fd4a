"""Small helpers for driving the simulator over real HTTP."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

TOKEN = "sso-token-1"
OTHER_TOKEN = "sso-token-2"
NEW = "/rest/app-chat/conversations/new"
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# Any base64 of exactly 70 bytes passes the simulator's format check (it never verifies a signature).
STATSIG = base64.b64encode(bytes(range(70))).decode().rstrip("=")


def cookies(token: str, **extra: str) -> str:
    jar = {"sso": token, "sso-rw": token, **extra}
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def continue_path(conversation_id: str) -> str:
    return f"/rest/app-chat/conversations/{conversation_id}/responses"


def parse_lines(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n"), "every NDJSON line ends with a newline"
    return [json.loads(line) for line in text.split("\n")[:-1]]


def chat(client: httpx.Client, message: str, path: str = NEW, **body: Any) -> list[dict[str, Any]]:
    response = client.post(path, json={"message": message, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return parse_lines(response.text)


def payloads(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``result.response`` objects (new conversations) or flat ``result`` objects (continue)."""
    out = []
    for line in lines:
        result = line.get("result", {})
        if "response" in result:
            out.append(result["response"])
        elif "conversation" not in result and "title" not in result:
            out.append(result)
    return out


def find(lines: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(p[key] for p in payloads(lines) if key in p)


def final_text(lines: list[dict[str, Any]]) -> str:
    return "".join(p["token"] for p in payloads(lines) if p.get("messageTag") == "final")
