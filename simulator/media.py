"""Real (decodable) media bytes without Pillow: solid-colour baseline JPEGs, a stub MP4, size sniffing.

A solid colour only needs DC coefficients, so every 8×8 block after the first encodes as "DC diff 0, EOB" —
with the Huffman tables below that is all zero bits, which makes even large images cheap to build.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from pathlib import Path

PALETTE: tuple[tuple[int, int, int], ...] = (
    (214, 69, 65),
    (241, 169, 59),
    (90, 170, 90),
    (60, 130, 200),
    (130, 90, 190),
    (40, 40, 40),
    (200, 200, 210),
    (20, 150, 160),
)

# Standard DC luminance table (ITU T.81 K.3): categories 0..11. One shared AC table holding only EOB (0x00)
# and a never-used 0x01, both 2-bit codes, so EOB is "00" — same shape as the standard chroma AC table start.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALS = tuple(range(12))
_AC_BITS = (0, 2) + (0,) * 14
_AC_VALS = (0x00, 0x01)


def _canonical_codes(bits: tuple[int, ...], vals: tuple[int, ...]) -> dict[int, str]:
    codes: dict[int, str] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[vals[k]] = format(code, f"0{length}b")
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_CODES = _canonical_codes(_DC_BITS, _DC_VALS)
_EOB = _canonical_codes(_AC_BITS, _AC_VALS)[0x00]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _dc_bits(diff: int) -> str:
    category = abs(diff).bit_length()
    if category == 0:
        return _DC_CODES[0]
    value = diff if diff > 0 else diff + (1 << category) - 1
    return _DC_CODES[category] + format(value, f"0{category}b")


def _ycbcr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(max(0, min(255, round(v))) for v in (y, cb, cr))  # type: ignore[return-value]


@lru_cache(maxsize=256)
def jpeg(width: int, height: int, color: tuple[int, int, int] = PALETTE[0], min_size: int = 0) -> bytes:
    """A valid baseline JPEG of one colour; padded with COM segments up to ``min_size`` bytes."""
    mcus = ((width + 7) // 8) * ((height + 7) // 8)
    head = [b"\xff\xd8"]
    head.append(_segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
    head.append(_segment(0xFFDB, b"\x00" + b"\x01" * 64))  # all-ones quantisation table 0
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00" + b"\x02\x11\x00" + b"\x03\x11\x00"
    head.append(_segment(0xFFC0, sof))
    head.append(_segment(0xFFC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS)))
    head.append(_segment(0xFFC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALS)))
    head.append(_segment(0xFFDA, b"\x03" + b"\x01\x00" + b"\x02\x00" + b"\x03\x00" + b"\x00\x3f\x00"))

    # First MCU carries the DC values (DC of a flat block = 8 × (sample − 128)); the rest are zeros.
    first = "".join(_dc_bits(8 * (c - 128)) + _EOB for c in _ycbcr(color))
    nbits = len(first) + (mcus - 1) * 3 * (len(_DC_CODES[0]) + len(_EOB))
    pad = (-nbits) % 8
    scan = (int(first, 2) << (nbits - len(first) + pad)) | ((1 << pad) - 1)
    data = scan.to_bytes((nbits + pad) // 8, "big").replace(b"\xff", b"\xff\x00")

    body = b"".join(head) + data
    missing = min_size - len(body) - 2
    comments = []
    while missing > 4:
        chunk = min(missing - 4, 65000)
        comments.append(_segment(0xFFFE, b"\x20" * chunk))
        missing -= chunk + 4
    # COM segments must precede the scan: splice them in before SOS.
    if comments:
        sos_at = body.index(b"\xff\xda")
        body = body[:sos_at] + b"".join(comments) + body[sos_at:]
    return body + b"\xff\xd9"


def color_for(key: str) -> tuple[int, int, int]:
    return PALETTE[hashlib.blake2s(key.encode(), digest_size=1).digest()[0] % len(PALETTE)]


def image_for(key: str, width: int = 832, height: int = 1248, min_size: int = 0) -> bytes:
    return jpeg(width, height, color_for(key), min_size)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 8) + kind + payload


# A real, playable clip (2 s, 96x160, H.264 baseline, `moov` first), made once with
#   ffmpeg -f lavfi -i testsrc2=size=96x160:rate=12:duration=2 -c:v libx264 -profile:v baseline -level 3.0 \
#          -pix_fmt yuv420p -preset veryslow -crf 40 -movflags +faststart -an clip.mp4
CLIP = Path(__file__).parent / "data" / "clip.mp4"


@lru_cache(maxsize=8)
def mp4(size: int = 262_144) -> bytes:
    """An MP4 of exactly ``size`` bytes (at least the clip's): the clip, then a ``free`` box of filler — grok.com's
    files are H.264 MP4s a browser plays, and the filler gives downloads and Range requests their size."""
    clip = CLIP.read_bytes()
    filler = size - len(clip) - 8
    if filler < 0:
        return clip
    pattern = bytes(range(256))
    return clip + _box(b"free", (pattern * (filler // 256 + 1))[:filler])


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP image, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return w, h
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def sniff_mime(data: bytes, fallback: str = "application/octet-stream") -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:2] == b"\xff\xd8":
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:5] == b"%PDF-":
        return "application/pdf"
    return fallback
