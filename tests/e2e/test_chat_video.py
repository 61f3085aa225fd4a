"""Chat completions with a video model, end to end: the official ``openai`` SDK (and raw SSE where the wire
matters) → the gateway → the simulator's video stream; the answer's links are fetched by a plain HTTP client
without cookies, on the local media backend and on a real S3 API (moto server mode)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.e2e import test_videos
from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import data_uri, png
from tests.e2e.test_media import moto_s3, s3_settings  # noqa: F401  (moto_s3 is a fixture)

LINK = re.compile(r"\[video\]\((\S+?)\)")
POSTER = re.compile(r"!\[poster\]\((\S+?)\)")
MODEL = "grok-imagine-video"


@pytest.fixture(scope="module", params=["local", "s3"])
def gw(request: pytest.FixtureRequest, deploy: Callable[..., Deployment],
       tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    if request.param == "s3":
        deployment = deploy(**s3_settings(request.getfixturevalue("moto_s3")))
    else:
        deployment = deploy(media_backend="local", data_dir=tmp_path_factory.mktemp("chat-video"))
    deployment.add_accounts(1, tier="super")
    return deployment


sent = test_videos.sent  # the bodies the gateway built for grok.com, spied on as the Videos API tests do


def _calls(deployment: Deployment) -> int:
    return len(deployment.sim.state.requests(path="/rest/app-chat/conversations/new"))


def _charged(deployment: Deployment, product: str) -> int:
    ledger = deployment.sim.state.ledger()["accounts"]
    return sum(ledger[t]["charged"].get(product, 0) for t in deployment.tokens)


def _fetch(url: str) -> bytes:
    response = httpx.get(url, follow_redirects=True, timeout=30)  # no cookies, no key
    assert response.status_code == 200, (url, response.status_code)
    assert "cookie" not in {k.lower() for k in response.request.headers}
    return response.content


def _is_mp4(data: bytes) -> bool:
    return len(data) > 12 and data[4:8] == b"ftyp"


def _sse(deployment: Deployment, body: dict) -> Iterator[str]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("POST", deployment.base_url + "/chat/completions", json={**body, "stream": True},
                      headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        yield from response.iter_lines()


def test_text_to_video_non_streaming(gw: Deployment, sent: list[dict]) -> None:
    before = _charged(gw, "video")
    answer = gw.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a paper boat on a river"}],
        extra_body={"video_config": {"aspect_ratio": "16:9", "video_length": 10, "resolution_name": "480p",
                                     "preset": "normal"}},
    )
    content = answer.choices[0].message.content or ""
    assert answer.choices[0].finish_reason == "stop" and answer.model == MODEL
    video, poster = LINK.search(content), POSTER.search(content)
    assert video and poster, content
    assert video.group(1).endswith(".mp4") and _is_mp4(_fetch(video.group(1)))
    assert _fetch(poster.group(1)).startswith(b"\xff\xd8")
    gen = sent[-1]["mediaGenInput"]["textToVideo"]
    assert (gen["aspectRatio"], gen["duration"], gen["resolutionName"]) == ("16:9", 10, "480p")
    assert sent[-1]["message"].endswith("--mode=normal")
    assert _charged(gw, "video") == before + 1


def test_image_to_video_streaming(gw: Deployment, sent: list[dict]) -> None:
    stream = gw.client().chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "make it move"},
            {"type": "image_url", "image_url": {"url": data_uri(png(16, 16))}},
        ]}],
        extra_body={"aspect_ratio": "2:3", "duration": 6, "preset": "fun"},
    )
    reasoning, content, finish, usage = [], [], [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if getattr(delta, "reasoning_content", None):
                reasoning.append(delta.reasoning_content)
            if delta.content:
                content.append(delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert finish == ["stop"] and usage is not None and usage.completion_tokens > 0
    assert reasoning and all("%" in line for line in reasoning)  # progress, as reasoning (THINKING_OUTPUT)
    text = "".join(content)
    assert _is_mp4(_fetch(LINK.search(text).group(1)))  # type: ignore[union-attr]
    body = sent[-1]
    config = body["responseMetadata"]["modelConfigOverride"]["modelMap"]["videoGenModelConfig"]
    assert config["parentPostId"] and config["aspectRatio"] == "2:3" and body["fileAttachments"]
    assert body["message"].endswith("make it move --mode=extremely-crazy")


def test_bad_parameters_are_refused_before_upstream(gw: Deployment) -> None:
    client = gw.client()
    calls = _calls(gw)
    cases = [
        ({"video_config": {"video_length": 99}}, "video_config.video_length"),
        ({"seconds": "six"}, "seconds"),
        ({"video_config": {"aspect_ratio": "5:4"}}, "video_config.aspect_ratio"),
        ({"resolution": "4k"}, "resolution"),
        ({"preset": "wild"}, "preset"),
        ({"video_config": {"fps": 60}}, "video_config.fps"),
        ({"video_config": "720p"}, "video_config"),
        ({"size": "1792x1024"}, "size"),
        ({"size": "1280x720", "aspect_ratio": "16:9"}, "size"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                           extra_body=extra)
        assert info.value.body["param"] == param, (extra, info.value.body)  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "  "}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": [
            {"type": "text", "text": "two"}, {"type": "image_url", "image_url": {"url": data_uri(png())}},
            {"type": "image_url", "image_url": {"url": data_uri(png(9, 9))}}]}])
    assert _calls(gw) == calls  # nothing was sent upstream


def test_upstream_failure_mid_stream_is_an_error_event(gw: Deployment) -> None:
    lines = [line for line in _sse(gw, {"model": MODEL, "messages": [{"role": "user", "content": "a storm #error"}]})
             if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2].removeprefix("data: "))
    assert last["error"]["message"] and last["error"]["type"], last  # OpenAI's error shape, not a silent end
    with pytest.raises(openai.APIError):
        for _ in gw.client().chat.completions.create(
                model=MODEL, stream=True, messages=[{"role": "user", "content": "waves #disconnect"}]):
            pass
    with pytest.raises(openai.APIStatusError) as info:  # non-streaming: an HTTP error
        gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x #moderated"}])
    assert info.value.status_code >= 400


def test_heartbeats_and_progress_while_waiting(deploy: Callable[..., Deployment], tmp_path_factory, sim) -> None:
    deployment = deploy(data_dir=tmp_path_factory.mktemp("chat-video-hb"), heartbeat_interval=0.2,
                        thinking_output="inline", video_format="html")
    deployment.add_accounts(1, tier="super")
    sim.state.config.video_duration = 2.0  # progress lines ~0.2 s apart, like the real cadence but faster
    try:
        lines = list(_sse(deployment, {"model": MODEL, "messages": [{"role": "user", "content": "slow tide"}]}))
    finally:
        sim.state.config.video_duration = 0.0
    assert ": keep-alive" in lines
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("<think>\nGenerating video: ") and "</think>" in text
    match = re.search(r'<source src="([^"]+)" type="video/mp4">', text)
    assert match and _is_mp4(_fetch(match.group(1)))
    assert re.search(r'<video [^>]*poster="http[^"]+"', text)
    assert [line for line in lines if line][-1] == "data: [DONE]"


def test_no_account_is_an_http_error_even_when_streaming(deploy: Callable[..., Deployment], tmp_path) -> None:
    empty = deploy(data_dir=tmp_path)
    with pytest.raises(openai.RateLimitError):
        empty.client().chat.completions.create(model=MODEL, stream=True,
                                               messages=[{"role": "user", "content": "x"}])


def test_model_aliases_name_video_and_image_models(deploy: Callable[..., Deployment], tmp_path, sim) -> None:
    deployment = deploy(data_dir=tmp_path, grok_imagine_ws_url=sim.imagine_ws_url,
                        model_aliases={"my-clip": "sora-2", "my-pics": "grok-imagine-image"})
    deployment.add_accounts(1, tier="super")
    client = deployment.client()
    answer = client.chat.completions.create(model="my-clip", messages=[{"role": "user", "content": "a kite"}])
    assert _is_mp4(_fetch(LINK.search(answer.choices[0].message.content or "").group(1)))  # type: ignore[union-attr]
    images = client.images.generate(model="my-pics", prompt="a red square", n=1)
    assert images.data and images.data[0].url and _fetch(images.data[0].url)[:3] == b"\xff\xd8\xff"
