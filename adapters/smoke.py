"""Check a deployed gateway from outside and say what is wrong in plain words.

    python -m adapters.cli smoke https://my-gateway.example [--key sk-...] [--model grok-4.5-fast]

Steps: ``GET /health``, ``GET /v1/models``, and with a key one short chat, non-streamed then streamed. Each step
prints one line; the exit code is 0 only when every step passed. The chat spends one request of an account's quota
per mode (two in all).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

PREFERRED_MODEL = "grok-4.5-fast"
PROMPT = "Reply with the single word: pong"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        mark = "PASS" if self.ok else "FAIL"
        return f"{mark}  {self.name:<12} {self.detail}  ({self.seconds * 1000:.0f} ms)"


class Failed(Exception):
    """A step failed; the message is what the operator reads."""


def explain_transport_error(exc: httpx.HTTPError, url: str, timeout: float) -> str:
    """Connection-level failures in words: refused, DNS, TLS, timeout."""
    host = urlsplit(url).netloc
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s talking to {host} (is it asleep, or behind a firewall?)"
    text = str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return f"TLS: the certificate of {host} could not be verified ({cause})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {host} failed ({cause}); is this an http:// server?"
        cause = cause.__cause__ or cause.__context__
    lowered = text.lower()
    if "refused" in lowered:
        return f"connection refused: nothing listens at {host}"
    if any(s in lowered for s in ("name or service not known", "nodename nor servname", "getaddrinfo",
                                  "name resolution", "no address associated")):
        return f"DNS: the host name in {url} does not resolve"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{host} closed the connection without a valid HTTP answer ({text})"
    return f"cannot reach {host}: {type(exc).__name__}: {text}"


def error_message(response: httpx.Response) -> str:
    """The gateway's own message from an OpenAI- or Anthropic-shaped error body, else a snippet."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        problems = error.get("problems")
        if problems:
            return "; ".join(problems)
        return str(error.get("message") or error)
    return json.dumps(body)[:200]


def explain_status(response: httpx.Response, step: str) -> str:
    status, message = response.status_code, error_message(response)
    if status == 401:
        return f"401: wrong or missing API key ({message})"
    if status == 403:
        return f"403: forbidden ({message})"
    if status == 404:
        return f"404 on {response.request.url.path}: wrong base URL? give the gateway's root, not .../v1 ({message})"
    if status == 429:
        return f"429: no account available: add session tokens or wait for quota ({message})"
    if status == 500 and "configuration" in response.text:
        return f"500: the gateway is misconfigured: {message}"
    if status >= 500:
        return f"{status} from the gateway: {message}"
    return f"{status} on {step}: {message}"


class Smoke:
    def __init__(self, base_url: str, *, key: str | None = None, model: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.model = model
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.unreachable = False
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                   transport=transport, follow_redirects=True)

    def run(self) -> Iterator[Check]:
        """Yield one ``Check`` per step; stop early when a later step cannot work."""
        try:
            health = self._step("health", self.health)
            yield health
            if self.unreachable:
                return  # the other steps would only repeat the same connection error
            models = self._step("models", self.models)
            yield models
            if self.key and models.ok:
                yield self._step("chat", self.chat)
                yield self._step("chat stream", self.chat_stream)
            elif not self.key:
                yield Check("chat", True, "skipped: pass --key to try one short chat")
        finally:
            self.client.close()

    def _step(self, name: str, action: Callable[[], str]) -> Check:
        started = time.perf_counter()
        try:
            detail, ok = action(), True
        except Failed as exc:
            detail, ok = str(exc), False
        except httpx.HTTPError as exc:
            detail, ok = explain_transport_error(exc, self.base_url, self.timeout), False
            self.unreachable = not isinstance(exc, httpx.ReadTimeout)
        return Check(name, ok, detail, time.perf_counter() - started)

    def health(self) -> str:
        response = self.client.get("/health")
        if response.status_code == 404:
            raise Failed(explain_status(response, "health"))
        try:
            report: dict[str, Any] = response.json()
        except ValueError:
            raise Failed(f"{response.status_code}: /health did not answer JSON: is this a grok2api gateway?") from None
        if response.status_code == 500:
            raise Failed(explain_status(response, "health"))
        store = report.get("store") or {}
        where = f"store={store.get('transport', '?')} {store.get('target', '')}".rstrip()
        if response.status_code != 200 or not store.get("ok"):
            raise Failed(f"{response.status_code} degraded: {where} unreachable: {store.get('error')}")
        media = report.get("media") or {}
        return f"ok: {where}, media {media.get('detail', 'configured' if media.get('configured') else '?')}"

    def models(self) -> str:
        response = self.client.get("/v1/models")
        if response.status_code != 200:
            raise Failed(explain_status(response, "models"))
        ids = [card["id"] for card in response.json().get("data", [])]
        if not ids:
            raise Failed("the gateway lists no models")
        if self.model is None:
            self.model = PREFERRED_MODEL if PREFERRED_MODEL in ids else ids[0]
        elif self.model not in ids:
            raise Failed(f"model {self.model!r} is not offered; try one of {', '.join(ids[:5])}")
        return f"{len(ids)} models (chat will use {self.model})"

    def _chat_body(self, stream: bool) -> dict[str, Any]:
        return {"model": self.model, "stream": stream, "max_tokens": 16,
                "messages": [{"role": "user", "content": PROMPT}]}

    def chat(self) -> str:
        response = self.client.post("/v1/chat/completions", json=self._chat_body(False))
        if response.status_code != 200:
            raise Failed(explain_status(response, "chat"))
        choice = response.json()["choices"][0]
        text = (choice["message"].get("content") or "").strip()
        return f"answered {_quote(text)} (finish_reason={choice.get('finish_reason')})"

    def chat_stream(self) -> str:
        chunks, text, first_at, done = 0, "", None, False
        started = time.perf_counter()
        with self.client.stream("POST", "/v1/chat/completions", json=self._chat_body(True)) as response:
            if response.status_code != 200:
                response.read()
                raise Failed(explain_status(response, "chat stream"))
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                event = json.loads(line[6:])
                if "error" in event:
                    raise Failed(f"the stream ended with an error: {event['error'].get('message')}")
                chunks += 1
                first_at = first_at or time.perf_counter()
                for choice in event.get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
        if not done:
            raise Failed(f"the stream stopped after {chunks} chunks without data: [DONE]")
        first = f", first chunk after {(first_at - started) * 1000:.0f} ms" if first_at else ""
        return f"{chunks} chunks{first}, answered {_quote(text.strip())}"


def _quote(text: str, limit: int = 40) -> str:
    return json.dumps(text if len(text) <= limit else text[:limit] + "...", ensure_ascii=False)


def main(base_url: str, key: str | None = None, model: str | None = None, timeout: float = 60.0,
         echo: Callable[[str], None] = print) -> int:
    if not urlsplit(base_url).scheme:
        base_url = "https://" + base_url
    echo(f"smoke test of {base_url}")
    failed = 0
    for check in Smoke(base_url, key=key, model=model, timeout=timeout).run():
        echo(check.line())
        failed += not check.ok
    echo("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0
