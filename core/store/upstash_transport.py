"""Transport over Upstash's REST API with the official ``upstash-redis`` async client.

What this wrapper fixes or pins down about the client (upstash-redis 1.x):

* **No hidden retries.** The client retries a failed request once after 3 s by default; on the hot path that
  is a silent 3 s stall, so ``rest_retries=0``. ``Store`` bounds every call with its own timeout (the client
  has none: its httpx session uses ``timeout=None``).
* **POST-body form only.** The client always POSTs the command as a JSON array to the base URL, and pipelines
  as an array of arrays to ``/pipeline``; it never uses the ``/cmd/arg/...`` path form, which would put keys
  and values into URLs and access logs.
* **Raw replies.** ``Redis.execute`` reshapes replies of upper-case command names (``HGETALL`` → dict, ``SET``
  → bool, ``ZSCORE`` → float, ...). Redis command names are case-insensitive, so we send them lower-case and
  get the server's reply untouched, the same shapes redis-py returns in RESP2 mode (see ``Transport``).
* **Base64 responses.** With ``rest_encoding="base64"`` (the default we keep) Upstash base64-encodes every
  string except a bare ``OK`` and the client decodes them, so any text, including newlines, NUL and
  non-BMP characters, survives JSON; the replies end up as ``str``.
* **Pipelines keep every result.** The client's pipeline raises on the first failed entry and drops the other
  results, although the server ran them all. ``pipeline`` therefore posts ``/pipeline`` itself, through the
  client's own HTTP session, headers and decoder, and returns a ``CommandError`` in the failed slot.
* **No telemetry** headers (``allow_telemetry=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from upstash_redis.asyncio import Redis as UpstashRedis
from upstash_redis.errors import UpstashError
from upstash_redis.http import decode

from core.errors import StoreUnavailable
from core.store.base import Command, CommandError, ScriptMissing
from core.store.urls import mask_url

# Error texts that mean "this store cannot serve us" (bad token, read-only token, plan limits), not a bad command.
_UNAVAILABLE_MARKERS = ("unauthorized", "wrongpass", "noauth", "noperm", "limit exceeded")


class UpstashTransport:
    name = "upstash"

    def __init__(self, client: UpstashRedis, *, target: str = "") -> None:
        self.client = client
        self.target = target

    @classmethod
    def from_url(cls, url: str, token: str, *, timeout: float = 2.0) -> UpstashTransport:
        # ``timeout`` is enforced by Store around every call; accepted here for symmetry with the others.
        if "://" not in url:  # consoles show the bare host; the REST API is HTTPS
            url = f"https://{url}"
        client = UpstashRedis(
            url.rstrip("/"),
            token,
            rest_encoding="base64",
            rest_retries=0,
            rest_retry_interval=0,
            allow_telemetry=False,
            read_your_writes=True,
        )
        return cls(client, target=mask_url(url))

    async def execute(self, command: Command) -> Any:
        try:
            return await self.client.execute(_wire(command))
        except UpstashError as exc:
            raise _error(str(exc)) from None

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        client = self.client
        client._maybe_set_sync_token_header(client._headers)
        response = await client._http._client.post(
            f"{client._url}/pipeline", headers=client._headers, json=[_wire(c) for c in commands]
        )
        if sync_token := response.headers.get("Upstash-Sync-Token"):
            client._update_sync_token(sync_token)
        body = response.json()
        if isinstance(body, dict):  # the request as a whole failed (auth, malformed, limits)
            raise _error(str(body.get("error") or f"HTTP {response.status_code}"))
        if response.status_code >= 400 or not isinstance(body, list) or len(body) != len(commands):
            raise StoreUnavailable(f"Upstash pipeline: unexpected HTTP {response.status_code} reply")
        return [
            CommandError(entry["error"]) if entry.get("error") else decode(entry["result"]) for entry in body
        ]

    async def close(self) -> None:
        await self.client.close()


def _wire(command: Command) -> list[str]:
    """JSON-safe arguments, command name lower-cased (see the module docstring)."""
    name, *args = command
    return [str(name).lower(), *map(_text, args)]


def _text(value: str | int | float | bytes) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # JSON carries text only; redis-py would send these bytes as they are
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise TypeError(
                "Upstash REST carries UTF-8 text only; encode binary values (e.g. base64)"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"invalid store argument of type {type(value).__name__}")
    return repr(value) if isinstance(value, float) else str(value)


def _error(message: str) -> Exception:
    if message.startswith("NOSCRIPT"):
        return ScriptMissing(message)
    if any(marker in message.lower() for marker in _UNAVAILABLE_MARKERS):
        # Upstash's texts name no host, but may quote the token's scope: short and plain is enough.
        return StoreUnavailable(f"Upstash refused the request: {_first_line(message)[:200]}")
    return CommandError(message)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"
