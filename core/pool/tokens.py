"""Session tokens as users paste them: normalising, importing, identifying and masking.

A Grok session token is the value of the ``sso`` cookie (a JWT). Users paste it bare, as ``sso=...``, as a whole
cookie header, one per line, or as JSON exported from another gateway. Everything here is pure and synchronous.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Cookie-value characters a JWT or opaque session id may use. Anything else means we were handed garbage.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f\u200b-\u200d\ufeff]+")
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 8192


def check_token(raw: object) -> tuple[str | None, str | None]:
    """``(token, None)`` when ``raw`` normalises to a plausible token, else ``(None, reason)``.

    Rules (protocol §2.1): remove whitespace and control characters, take the ``sso`` cookie when given a cookie
    string (``sso=T; sso-rw=T; cf_clearance=...``), strip a leading ``sso=`` / ``sso-rw=``, cut at the first ``;``.
    """
    if not isinstance(raw, str):
        return None, f"not a string ({type(raw).__name__})"
    text = _CONTROL_OR_SPACE.sub("", raw)
    if not text:
        return None, "empty"
    if ";" in text:
        cookies = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        text = cookies.get("sso") or cookies.get("sso-rw") or text.split(";", 1)[0]
    for prefix in ("sso=", "sso-rw="):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    if not text:
        return None, "empty after removing the sso= prefix"
    if len(text) < MIN_TOKEN_LENGTH:
        return None, f"too short to be a session token ({len(text)} characters)"
    if len(text) > MAX_TOKEN_LENGTH:
        return None, f"too long to be a session token ({len(text)} characters)"
    if not _TOKEN_RE.match(text):
        return None, "contains characters a session token cannot have"
    return text, None


def normalize_token(raw: object) -> str | None:
    """The bare token, or ``None`` when ``raw`` is empty or garbage (see ``check_token`` for the reason)."""
    return check_token(raw)[0]


def account_id(token: str) -> str:
    """Stable short id for a token: 12 hex digits of its SHA-256. One-way; safe to show and log."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def mask(token: str | None) -> str:
    """``eyJh…k3Xz``: never more than a third of the token, never more than 4 characters at either end."""
    if not token:
        return ""
    show = min(4, len(token) // 6)
    if show == 0:
        return "…"
    return f"{token[:show]}…{token[-show:]}"


@dataclass(slots=True)
class ImportItem:
    """One entry of an import. It is importable when ``problem`` is None (``token`` is then set)."""

    token: str | None
    tags: tuple[str, ...] = ()
    note: str = ""
    problem: str | None = None
    source: str = field(default="", repr=False)  # masked preview of what was pasted, for the report

    @property
    def account_id(self) -> str | None:
        return account_id(self.token) if self.token else None


def parse_token_import(data: str | bytes | Iterable[Any] | Mapping[str, Any]) -> list[ImportItem]:
    """Split an import into items, one per token, in order; duplicates within the import are flagged.

    Accepts: plain text (one token per line, or comma separated; ``#`` comments and blank lines ignored), a JSON
    list, ``{"tokens": [...]}``, and items that are strings or objects ``{"token", "tags", "note"}``. Every item
    comes back; rejected ones carry ``problem``.
    """
    items = [_item(entry) for entry in _entries(data)]
    seen: set[str] = set()
    for item in items:
        if item.token is None:
            continue
        if item.token in seen:
            item.problem = "duplicate within this import"
        else:
            seen.add(item.token)
    return items


def _entries(data: Any) -> list[Any]:
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig", errors="replace")
    if isinstance(data, str):
        stripped = data.strip().lstrip("\ufeff")
        if stripped[:1] in ("[", "{"):
            try:
                data = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError):
                pass  # not JSON after all (or absurdly nested): fall through to line parsing
        if isinstance(data, str):
            lines = (line.split("#", 1)[0] for line in data.splitlines())  # tokens never contain "#"
            return [part for line in lines for part in line.split(",") if part.strip()]
    if isinstance(data, Mapping):
        if "tokens" in data:
            return _entries(data["tokens"])
        return [data]
    if isinstance(data, Iterable):
        # A list may hold whole files (the CLI passes ``--file`` contents beside argument tokens, the admin API
        # a pasted text box): a string with several lines or a JSON document is expanded like top-level text,
        # otherwise its lines would be glued into one over-long "token".
        return [part for entry in data for part in (_entries(entry) if _is_document(entry) else [entry])]
    return [data]


def _is_document(entry: Any) -> bool:
    """A string (or bytes) that holds several entries: more than one line or comma part, or a JSON document."""
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8-sig", errors="replace")
    if not isinstance(entry, str):
        return False
    stripped = entry.strip().lstrip("\ufeff")
    return stripped[:1] in ("[", "{") or "," in stripped or len(stripped.splitlines()) > 1 or "#" in stripped


def _item(entry: Any) -> ImportItem:
    tags: tuple[str, ...] = ()
    note = ""
    raw = entry
    if isinstance(entry, Mapping):
        raw = entry.get("token", entry.get("sso", entry.get("value")))
        tags = clean_tags(entry.get("tags") or ())
        note = str(entry.get("note") or "").strip()
    token, problem = check_token(raw)
    preview = mask(token) if token else mask(_CONTROL_OR_SPACE.sub("", raw)) if isinstance(raw, str) else ""
    return ImportItem(token=token, tags=tags, note=note, problem=problem, source=preview)


def clean_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags as a sorted, de-duplicated tuple of trimmed non-empty strings (a string is split on commas)."""
    if isinstance(tags, str):
        tags = tags.split(",")
    return tuple(sorted({str(tag).strip() for tag in tags if str(tag).strip()}))
