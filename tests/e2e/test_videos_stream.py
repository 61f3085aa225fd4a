"""The video stream reader on scripted event sequences (what ``core.grok.parse`` yields for a video stream):
completion only with a video URL, a stream that ends without one, moderated results, in-stream errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.errors import FailureKind, UpstreamError
from core.grok.events import FinalMessage, StreamError, VideoProgress
from core.grok.video import VideoModerated, read_stream

URL = "users/u/generated/v1/generated_video.mp4"


async def _events(*items: object) -> AsyncIterator[object]:
    for item in items:
        yield item


async def _read(*items: object) -> tuple[object, list[int]]:
    seen: list[int] = []

    async def progress(value: int) -> None:
        seen.append(value)

    return await read_stream(_events(*items), progress), seen


async def test_completes_at_the_url_and_reports_progress_below_100() -> None:
    result, seen = await _read(
        VideoProgress("v1", 5), VideoProgress("v1", 57),
        VideoProgress("v1", 100, url=URL, thumbnail_url="users/u/generated/v1/preview_image.jpg"),
        FinalMessage("r1", file_attachments=("v1",)),
    )
    assert result.video_url == URL and result.poster_url.endswith("preview_image.jpg")  # type: ignore[attr-defined]
    assert seen == [5, 57]


async def test_a_stream_without_a_video_url_fails() -> None:
    with pytest.raises(UpstreamError, match="without a video") as info:
        await _read(VideoProgress("v1", 5), VideoProgress("v1", 100), FinalMessage("r1"))
    assert info.value.kind == FailureKind.STREAM
    with pytest.raises(UpstreamError, match="without a video"):  # a URL that is not a video file
        await _read(VideoProgress("v1", 100, url="users/u/generated/v1/preview_image.jpg"))
    with pytest.raises(UpstreamError, match="without a video"):
        await _read()


async def test_moderated_and_errors() -> None:
    with pytest.raises(VideoModerated):
        await _read(VideoProgress("v1", 50), VideoProgress("v1", 100, moderated=True))
    with pytest.raises(UpstreamError):
        await _read(VideoProgress("v1", 50), StreamError("boom", fatal=True))
    with pytest.raises(UpstreamError, match="reported"):
        await _read(VideoProgress("v1", 50), FinalMessage("r1", stream_errors=("video check failed",)))
    result, _ = await _read(StreamError("careful", fatal=False), VideoProgress("v1", 100, url=URL + "?x=1"))
    assert result.video_url.startswith(URL)  # type: ignore[attr-defined]
