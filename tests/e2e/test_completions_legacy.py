"""Legacy ``/v1/completions`` through the official SDK (stream and not) against the gateway and the simulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import openai
import pytest

from simulator.text import plain_answer
from tests.e2e.conftest import API_KEY, Deployment

MODEL = "grok-4.5-fast"


@pytest.fixture(scope="module")
def gw(deploy: Callable[..., Deployment]) -> Deployment:
    deployment = deploy()
    deployment.add_accounts(1, tier="heavy")
    return deployment


def test_non_stream_text_completion(gw: Deployment) -> None:
    prompt = f"complete this {uuid.uuid4().hex[:6]}"
    completion = gw.client().completions.create(model=MODEL, prompt=prompt)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.text == plain_answer(prompt) and choice.index == 0 and choice.logprobs is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_list_of_one_prompt_and_stop(gw: Deployment) -> None:
    prompt = "stop early please"
    full = plain_answer(prompt)
    completion = gw.client().completions.create(model=MODEL, prompt=[prompt], stop=["simulated"])
    assert completion.choices[0].text == full[: full.index("simulated")]
    assert completion.choices[0].finish_reason == "stop"


def test_max_tokens_is_length(gw: Deployment) -> None:
    completion = gw.client().completions.create(model=MODEL, prompt="#long=100 go", max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert 0 < completion.usage.completion_tokens <= 5


def test_stream_chunks_and_done(gw: Deployment) -> None:
    prompt = "stream a completion"
    chunks = list(gw.client().completions.create(model=MODEL, prompt=prompt, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain_answer(prompt)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    with httpx.stream("POST", gw.base_url + "/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"model": MODEL, "prompt": "raw", "stream": True}, timeout=30) as response:
        body = "".join(response.iter_text())
    assert body.rstrip().endswith("data: [DONE]")


def test_mid_stream_failure_is_an_error_event(gw: Deployment) -> None:
    with pytest.raises(openai.APIError):
        list(gw.client().completions.create(model=MODEL, prompt="#long=20 #disconnect go", stream=True))


@pytest.mark.parametrize("extra, param", [
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": "hi", "echo": True}, "echo"),
    ({"prompt": "hi", "suffix": "end"}, "suffix"),
    ({"prompt": "hi", "logprobs": 2}, "logprobs"),
    ({"prompt": "hi", "best_of": 3}, "best_of"),
    ({"prompt": "hi", "n": 2}, "n"),
])
def test_shape_changing_parameters_are_400(gw: Deployment, extra: dict, param: str) -> None:
    response = httpx.post(gw.base_url + "/completions", json={"model": MODEL, **extra}, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_sampling_knobs_are_ignored(gw: Deployment) -> None:
    completion = gw.client().completions.create(model=MODEL, prompt="knobs", temperature=0.2, top_p=0.5,
                                                presence_penalty=1, frequency_penalty=1, seed=3, user="u")
    assert completion.choices[0].text == plain_answer("knobs")
