"""Quota parsing (§6.1, §6.3) and tier detection from quota answers (§6.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.pool import QuotaWindow, detect_tier, parse_quota_info, parse_rate_limits

W = QuotaWindow


@pytest.mark.parametrize(
    ("windows", "tier"),
    [
        ({"heavy": W(20, 20, 7200)}, "heavy"),
        ({"fast": W(400, 400, 86400)}, "heavy"),
        ({"auto": W(10, 150, 86400)}, "heavy"),
        ({"fast": W(140, 140, 86400)}, "super"),
        ({"auto": W(0, 50, 86400)}, "super"),
        ({"fast": W(30, 30, 86400)}, "basic"),
        ({"auto": W(7, 7, 86400)}, "basic"),
        ({"auto": W(20, 20, 86400), "fast": W(30, 30, 86400)}, "basic"),
        ({"auto": W(20, 20, 7200)}, "super"),  # short window: at least super
        ({"expert": W(46, 50, 7200)}, "super"),  # the captured Business seat
        ({"fast": W(30, 30, 86400), "heavy": W(5, 5, 86400)}, "heavy"),  # strongest evidence wins
        ({"heavy": W(0, 0, 86400)}, None),
        ({"auto": W(None, None, None)}, None),
        ({"fast": W(12, 99, 86400)}, None),  # unknown totals prove nothing
        ({}, None),
        ({"image_pro": W(2, 2, 3600)}, None),  # media windows are not tier evidence
    ],
)
def test_detect_tier(windows: dict[str, QuotaWindow], tier: str | None) -> None:
    assert detect_tier(windows) == tier


def test_parse_rate_limits_captured_and_lenient() -> None:
    body = {
        "windowSizeSeconds": 7200,
        "remainingQueries": 46,
        "totalQueries": 50,
        "lowEffortRateLimits": None,
    }
    assert parse_rate_limits(body) == W(46, 50, 7200, None)
    assert parse_rate_limits({"remainingTokens": 8830, "totalTokens": 10000}) == W(8830, 10000, None, None)
    assert parse_rate_limits({"remainingQueries": "3", "junk": {}}) == W(3, None, None, None)
    assert parse_rate_limits({}) == W()
    assert parse_rate_limits({"remainingQueries": 0, "waitTimeSeconds": 90}, now=1000.0).resets_at == 1090.0


def test_parse_quota_info_observed_fixture() -> None:
    body = {
        "image": None,
        "imageEdit": None,
        "imagePro": {"available": True, "remainingQueries": 2, "windowSizeSeconds": 86400},
        "video": None,
        "video720p": {
            "available": True,
            "remainingQueries": 0,
            "windowSizeSeconds": 86400,
            "nextAvailableAt": "2026-08-18T04:47:49.902572219Z",
        },
    }
    media = parse_quota_info(body)
    assert set(media) == {"image_pro", "video_720p"}
    assert media["image_pro"] == W(2, None, 86400, None)
    assert media["video_720p"].remaining == 0
    expected = datetime(2026, 8, 18, 4, 47, 49, 902572, tzinfo=UTC).timestamp()
    assert media["video_720p"].resets_at == pytest.approx(expected)


def test_parse_quota_info_without_numbers_and_unavailable() -> None:
    media = parse_quota_info(
        {"image": {"available": True, "windowSizeSeconds": 64800}, "video": {"available": False}}
    )
    assert media["image"] == W(None, None, 64800, None)
    assert media["video"].remaining == 0
