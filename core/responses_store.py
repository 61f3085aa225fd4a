"""Stored Responses API answers (``store: true``): key layout, size cap, TTL, and the chain they rebuild.

One key per response, ``<prefix>resp:<id>``, holding one JSON record written by the *same* store command that
settles the request's lease (``AnswerRun.close(keep=...)``), so storing costs nothing extra, and expiring after
``RESPONSE_TTL`` seconds. The record is self-contained:

``{"v": 1, "response": <the response object>, "prior": [<items before this request>], "input": [<this request's
input items>]}``

so ``previous_response_id`` costs exactly one GET whatever the length of the chain: the next request's history
is ``prior + input + response.output`` (reasoning items left out). ``instructions`` are not part of it (OpenAI
does not carry them over either).

Values are capped at ``MAX_RECORD_BYTES`` (512 KiB; Upstash refuses values of 1 MB and more and every byte is
billed bandwidth). A larger record is not stored; a small *tombstone* is stored in its place, so a later GET or
chain says why (``response_too_large``) rather than "not found". Images sent as ``data:`` URIs count against the
cap like any other input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core.errors import GatewayError, NotFound
from core.store import Store

MAX_RECORD_BYTES = 512 * 1024
VERSION = 1
_ID = re.compile(r"resp_[A-Za-z0-9]{1,96}")
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ResponseNotFound(NotFound):
    """OpenAI's shape for an unknown or expired response id."""

    type = "invalid_request_error"

    def __init__(self, response_id: str, *, param: str | None = None) -> None:
        previous = param == "previous_response_id"
        super().__init__(
            f"{'Previous response' if previous else 'Response'} with id '{response_id}' not found.", param=param,
            code="previous_response_not_found" if previous else "not_found",
        )


class ResponseTooLarge(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "response_too_large"


def key(store: Store, response_id: str) -> str:
    return store.key("resp", response_id)


def valid_id(response_id: str) -> bool:
    return bool(_ID.fullmatch(response_id))


def encode_record(response: dict[str, Any], prior: list[dict[str, Any]], items: list[dict[str, Any]]) -> str:
    """The value to store for ``response``: the full record, or a tombstone when it exceeds the cap."""
    value = _encode({"v": VERSION, "response": response, "prior": prior, "input": items})
    size = len(value.encode())
    if size <= MAX_RECORD_BYTES:
        return value
    head = {k: response.get(k) for k in ("id", "object", "created_at", "model", "status")}
    return _encode({"v": VERSION, "too_large": size, "response": head})


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    prior: list[dict[str, Any]]
    input: list[dict[str, Any]]

    def history(self) -> list[dict[str, Any]]:
        """The conversation up to and including this response, for the next request of the chain."""
        output = [item for item in self.response.get("output") or [] if item.get("type") != "reasoning"]
        return [*self.prior, *self.input, *output]


async def load(store: Store, response_id: str, *, param: str | None = None) -> StoredResponse:
    """One GET. ``ResponseNotFound`` for an unknown, expired or malformed id; ``ResponseTooLarge`` when the
    response was too large to keep."""
    if not valid_id(response_id):
        raise ResponseNotFound(response_id, param=param)
    raw = await store.call("GET", key(store, response_id))
    if raw is None:
        raise ResponseNotFound(response_id, param=param)
    record = json.loads(raw)
    if record.get("too_large"):
        raise ResponseTooLarge(
            f"Response '{response_id}' was not stored: its record ({record['too_large']} bytes) exceeds the "
            f"{MAX_RECORD_BYTES // 1024} KiB the gateway keeps. Send the whole conversation as input instead.",
            param=param,
        )
    return StoredResponse(response=record["response"], prior=record.get("prior") or [],
                          input=record.get("input") or [])


async def delete(store: Store, response_id: str) -> bool:
    """One DEL; False when there was nothing to delete."""
    if not valid_id(response_id):
        return False
    return bool(await store.call("DEL", key(store, response_id)))
