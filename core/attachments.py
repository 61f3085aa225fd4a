"""Turning image references from a chat request into bytes ready for upload.

``data:`` URIs are decoded locally; http(s) URLs go through the SSRF-checked fetcher. Only images grok.com accepts
(JPEG, PNG, WebP, GIF — sniffed from the bytes, not trusted from the declared type) within the size cap pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from core.errors import InvalidRequest, PayloadTooLarge
from core.fetch import fetch_url

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    mime: str
    data: bytes


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def decode_data_uri(uri: str, *, max_bytes: int, param: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise InvalidRequest(f"{param}: malformed data URI", param=param)
    if ";base64" not in header:
        raise InvalidRequest(f"{param}: data URIs must be base64-encoded", param=param)
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"{param}: image is larger than {max_bytes} bytes", param=param)
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{param}: data URI is not valid base64", param=param) from None


async def load_image(ref: str, *, max_bytes: int, allow_private: bool, param: str) -> Attachment:
    if ref.startswith("data:"):
        data = decode_data_uri(ref, max_bytes=max_bytes, param=param)
    elif ref.startswith(("http://", "https://")):
        data = (await fetch_url(ref, max_bytes=max_bytes, allow_private=allow_private, param=param)).data
    else:
        raise InvalidRequest(f"{param}: expected a data: URI or an http(s) URL", param=param)
    if not data:
        raise InvalidRequest(f"{param}: image is empty", param=param)
    mime = sniff_image(data)
    if mime is None:
        raise InvalidRequest(f"{param}: not a JPEG, PNG, WebP or GIF image", param=param)
    digest = hashlib.sha256(data).hexdigest()[:12]
    return Attachment(name=f"image-{digest}.{EXTENSIONS[mime]}", mime=mime, data=data)
