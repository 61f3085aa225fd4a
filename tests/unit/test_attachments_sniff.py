"""Image sniffing and strict base64 (gaps a mutation run found in core/attachments.py)."""

from __future__ import annotations

import base64

import pytest

from core.attachments import B64_CHUNK, decode_data_uri, sniff_image
from core.errors import InvalidRequest, PayloadTooLarge

WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20)


@pytest.mark.parametrize("data,mime", [
    (b"\xff\xd8\xff\xe0" + bytes(8), "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png"),
    (WEBP, "image/webp"),
    (b"GIF89a" + bytes(8), "image/gif"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20), None),  # a RIFF that is not WebP
    (b"XXXX\x24\x00\x00\x00WEBPVP8 " + bytes(20), None),  # WEBP without RIFF
    (b"<svg xmlns=...>", None),
    (b"", None),
])
def test_sniff_image(data: bytes, mime: str | None) -> None:
    assert sniff_image(data) == mime


def _uri(payload: str) -> str:
    return "data:image/webp;base64," + payload


@pytest.mark.parametrize("size", [10, B64_CHUNK * 3 + 7])  # one call, and the sliced path
def test_strict_base64_round_trip_and_rejections(size: int) -> None:
    raw = bytes(range(256)) * (size // 256 + 1)
    raw = raw[:size]
    encoded = base64.b64encode(raw).decode()
    assert decode_data_uri(_uri(encoded), max_bytes=10**8, param="p") == raw
    with pytest.raises(InvalidRequest, match="not valid base64"):
        decode_data_uri(_uri(encoded[:-4] + "!!!!"), max_bytes=10**8, param="p")  # a character outside base64
    with pytest.raises(InvalidRequest, match="not valid base64"):
        decode_data_uri(_uri(encoded[:8] + "=" + encoded[8:]), max_bytes=10**8, param="p")  # padding inside
    with pytest.raises(PayloadTooLarge):
        decode_data_uri(_uri(encoded), max_bytes=size - 16, param="p")
