"""The requests the benchmark sends: the same chat turn directly to the simulator and through the gateway.

The direct request is built by the gateway's own ``GrokClient`` (same cookies, headers and JSON payload it sends
upstream for this prompt), plus the ``Accept-Encoding`` curl sends when it impersonates Chrome — so the simulator
gzips both paths' streams alike. Worker ``i`` uses pool account ``i`` for the direct path; through the gateway the
pool picks the account.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from bench.http import Result, Target
from bench.procs import API_KEY, Proc
from core.grok.client import ChatCall, Credentials, GrokClient
from core.settings import Settings

MODEL = "grok-4.5-fast"  # upstream mode "fast": a plain answer, no reasoning
MODE = "fast"
PROMPT = "Say hello to the benchmark"  # a single user turn: the gateway sends it to grok.com unchanged
CURL_ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what curl_cffi's chrome impersonation sends
ANSWER_MARK = b"simulated Grok reply"


def direct_target(sim: Proc, token: str) -> Target:
    settings = Settings(grok_base_url=sim.url)
    client = GrokClient(settings)
    creds = Credentials(token=token)
    headers = client.headers(creds)
    headers["Accept-Encoding"] = CURL_ACCEPT_ENCODING
    body = json.dumps(client.rest_payload(ChatCall(message=PROMPT, mode=MODE))).encode()
    return Target("127.0.0.1", sim.port, "POST", "/rest/app-chat/conversations/new", body, tuple(headers.items()))


def direct_targets(sim: Proc, tokens: list[str]) -> Callable[[int], Target]:
    built = [direct_target(sim, token) for token in tokens]
    return lambda i: built[i % len(built)]


def gateway_target(gateway: Proc, *, stream: bool) -> Target:
    body = json.dumps({
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }).encode()
    headers = (("Authorization", f"Bearer {API_KEY}"), ("Content-Type", "application/json"))
    return Target("127.0.0.1", gateway.port, "POST", "/v1/chat/completions", body, headers)


def bare_target(bare: Proc) -> Target:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}).encode()
    return Target("127.0.0.1", bare.port, "POST", "/v1/chat/completions", body,
                  (("Content-Type", "application/json"),))


def direct_ok(result: Result) -> bool:
    return result.first is not None and b'"conversationId"' in result.body


def completion_ok(result: Result) -> bool:
    return b'"chat.completion"' in result.body and ANSWER_MARK in result.body


def stream_ok(result: Result) -> bool:
    return result.first is not None and result.body.startswith(b"data: {")


def bare_ok(result: Result) -> bool:
    return b'"chat.completion"' in result.body
