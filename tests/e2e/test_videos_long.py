"""Clips longer than one Grok call (15 s) by extension rounds (protocol §8.3 D2), through the official SDK and
chat completions: each round continues the last clip, is charged on the video product, and the stored MP4 is
the stitched one (the simulator records what each round extended)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Videos API deprecated


@pytest.fixture(scope="module")
def videos(deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = deploy(data_dir=tmp_path_factory.mktemp("long-video"))
    deployment.add_accounts(1, tier="super")
    return deployment


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    from core.grok import video as upstream

    bodies: list[dict] = []
    for name in ("text_payload", "image_payload", "extension_payload"):
        original = getattr(upstream, name)

        def spy(*args: object, _original: Callable[..., dict] = original, **kwargs: object) -> dict:
            body = _original(*args, **kwargs)
            bodies.append(body)
            return body

        monkeypatch.setattr(upstream, name, spy)
    return bodies


def _charged(deployment: Deployment, product: str) -> int:
    ledger = deployment.sim.state.ledger()["accounts"]
    return sum(ledger[t]["charged"].get(product, 0) for t in deployment.tokens)


def _config(body: dict) -> dict:
    return body["responseMetadata"]["modelConfigOverride"]["modelMap"]["videoGenModelConfig"]


def test_25_seconds_is_one_call_and_one_extension(videos: Deployment, sent: list[dict]) -> None:
    before = _charged(videos, "video")
    video = videos.client().videos.create(prompt="a long river", seconds="25", size="854x480")  # type: ignore[arg-type]
    assert video.status == "completed", video.error
    assert video.seconds == "25"
    first, ext = sent[-2], sent[-1]
    assert first["mediaGenInput"]["textToVideo"]["duration"] == 15
    config = _config(ext)
    assert config["isVideoExtension"] is True and config["stitchWithExtendPostId"] is True
    assert (config["videoExtensionStartTime"], config["videoLength"], config["aspectRatio"]) == (15.0, 10, "16:9")
    assert config["originalPostId"] == config["extendPostId"]  # the first round's clip
    sim_videos = videos.sim.state.videos
    stitched = next(v for v in sim_videos.values() if v.extends == config["extendPostId"])
    assert stitched.seconds == 25 and config["extendPostId"] in sim_videos
    assert _charged(videos, "video") == before + 2  # two upstream calls, two units
    data = videos.client().videos.download_content(video.id).read()
    assert data[4:8] == b"ftyp"


def test_30_seconds_from_chat_is_three_rounds(videos: Deployment, sent: list[dict]) -> None:
    before = _charged(videos, "video")
    answer = videos.client().chat.completions.create(
        model="grok-imagine-video", messages=[{"role": "user", "content": "a very long tide"}],
        extra_body={"video_config": {"video_length": 30}},
    )
    link = re.search(r"\[video\]\((\S+?)\)", answer.choices[0].message.content or "")
    assert link and httpx.get(link.group(1)).content[4:8] == b"ftyp"
    lengths = [sent[-3]["mediaGenInput"]["textToVideo"]["duration"]] + [_config(b)["videoLength"] for b in sent[-2:]]
    starts = [_config(b)["videoExtensionStartTime"] for b in sent[-2:]]
    assert lengths == [10, 10, 10] and starts == [10.0, 20.0]
    assert _config(sent[-1])["extendPostId"] != _config(sent[-2])["extendPostId"]  # each round extends the last
    assert _charged(videos, "video") == before + 3


def test_over_30_seconds_is_refused_before_upstream(videos: Deployment) -> None:
    calls = len(videos.sim.state.requests(path="/rest/app-chat/conversations/new"))
    with pytest.raises(openai.BadRequestError, match="seconds"):
        videos.client().videos.create(prompt="x", seconds="31")  # type: ignore[arg-type]
    assert len(videos.sim.state.requests(path="/rest/app-chat/conversations/new")) == calls
