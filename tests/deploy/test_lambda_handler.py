"""The Lambda handler driven with real event payloads: HTTP API v2, REST API v1, a Function URL, and the
EventBridge scheduled event, against the app wired to the grok.com simulator and the embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Response

from adapters.entry import ConfigErrorApp
from adapters.lambda_handler import LambdaHandler, cron_budget, is_scheduled_event, job_budget
from api._app import create_app
from core.video_queue import is_video_job_event
from simulator.runner import SimulatorServer
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY
from tests.deploy.lambda_events import (
    FakeContext,
    LambdaRuntime,
    http_event,
    load,
    response_body,
    response_json,
    scheduled_event,
)

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["http_api_v2", "rest_api_v1", "function_url"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def runtime(make_settings, sim: SimulatorServer) -> Iterator[LambdaRuntime]:
    settings = make_settings()

    def app_factory():
        app = create_app(settings)

        @app.get("/__test/image.png")  # no binary route exists yet: this one checks Mangum's base64 path
        async def image() -> Response:
            return Response(PNG, media_type="image/png")

        return app

    rt = LambdaRuntime(app_factory)
    token = f"lambda-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    added = rt.invoke(http_event("http_api_v2", "POST", "/admin/tokens", body={"tokens": [token]},
                                 headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}))
    assert added["statusCode"] == 200, added
    assert response_json(added)["added"] == 1
    yield rt
    rt.close()


def chat(stream: bool, content: str = "Hello from Lambda") -> dict:
    return {"model": "grok-4.5-fast", "stream": stream, "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("kind", KINDS)
def test_health_on_every_event_kind(runtime: LambdaRuntime, kind: str) -> None:
    response = runtime.invoke(http_event(kind, "GET", "/health"))
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    report = response_json(response)
    assert report["store"]["ok"] is True and report["store"]["transport"] == "redis"
    assert report["media"] == {"ok": True, "configured": False, "detail": "not configured"}
    assert ADMIN_PASSWORD not in response["body"] and API_KEY not in response["body"]


@pytest.mark.parametrize("kind", KINDS)
def test_models_needs_the_key(runtime: LambdaRuntime, kind: str) -> None:
    denied = runtime.invoke(http_event(kind, "GET", "/v1/models"))
    assert denied["statusCode"] == 401
    assert response_json(denied)["error"]["type"] == "authentication_error"
    listed = runtime.invoke(http_event(kind, "GET", "/v1/models", headers=AUTH))
    assert listed["statusCode"] == 200
    assert "grok-4.5-fast" in {card["id"] for card in response_json(listed)["data"]}


def test_query_string_reaches_the_app(runtime: LambdaRuntime) -> None:
    response = runtime.invoke(http_event("rest_api_v1", "GET", "/cron/tick", query="budget=2",
                                         headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}))
    assert response["statusCode"] == 200
    assert response_json(response)["quota_refresh"]["status"] in {"done", "running"}


@pytest.mark.parametrize("kind", KINDS)
def test_chat_through_every_event_kind(runtime: LambdaRuntime, kind: str) -> None:
    response = runtime.invoke(http_event(kind, "POST", "/v1/chat/completions", headers=AUTH, body=chat(False)))
    assert response["statusCode"] == 200, response
    message = response_json(response)["choices"][0]["message"]
    assert message["content"].startswith("You said: Hello from Lambda")


@pytest.mark.parametrize("kind", KINDS)
def test_base64_request_body(runtime: LambdaRuntime, kind: str) -> None:
    # API Gateway and Function URLs base64-encode bodies they consider binary.
    event = http_event(kind, "POST", "/v1/chat/completions", headers=AUTH, body=chat(False, "encoded body"),
                       base64_body=True)
    response = runtime.invoke(event)
    assert response["statusCode"] == 200
    assert "encoded body" in response_json(response)["choices"][0]["message"]["content"]


def test_stream_true_is_one_buffered_sse_body(runtime: LambdaRuntime, fresh_sim: SimulatorServer) -> None:
    fresh_sim.config.token_delay = (0.02, 0.02)
    event = http_event("http_api_v2", "POST", "/v1/chat/completions", headers=AUTH,
                       body=chat(True, "buffer this #long=25"))
    started = time.perf_counter()
    response = runtime.invoke(event)
    elapsed = time.perf_counter() - started

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    assert response["isBase64Encoded"] is False  # text/* travels as text
    body = response_body(response).decode()
    events = [line[6:] for line in body.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and body.endswith("data: [DONE]\n\n")
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(text.split()) == 25 and len(chunks) > 25
    # Nothing came back before the upstream had produced the last token: the whole stream is one response.
    assert elapsed >= 25 * 0.02


@pytest.mark.parametrize("kind", KINDS)
def test_binary_response_is_base64(runtime: LambdaRuntime, kind: str) -> None:
    response = runtime.invoke(http_event(kind, "GET", "/__test/image.png"))
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "image/png"
    assert response_body(response) == PNG


def test_not_found_is_json(runtime: LambdaRuntime) -> None:
    response = runtime.invoke(http_event("function_url", "GET", "/nowhere"))
    assert response["statusCode"] == 404
    assert response_json(response)["error"]["code"] == "not_found"


def test_scheduled_event_runs_cron_on_the_same_engine(runtime: LambdaRuntime) -> None:
    runtime.invoke(http_event("http_api_v2", "GET", "/health"))  # the engine exists from here on
    engine = runtime.handler.app.state.gateway._gateway
    result = runtime.invoke(scheduled_event(), FakeContext(remaining_ms=20_000))
    assert result["ok"] is True and result["event_id"] == load("eventbridge_scheduled")["id"]
    progress = result["quota_refresh"]
    assert progress["status"] == "done" and progress["errors"] == 0  # accounts with a fresh quota are skipped
    json.dumps(result)  # what a scheduled invocation returns must be JSON
    # The cron ran on the loop Mangum uses: the next HTTP request reuses the same engine and its connections.
    assert runtime.invoke(http_event("http_api_v2", "GET", "/health"))["statusCode"] == 200
    assert runtime.handler.app.state.gateway._gateway is engine


def test_event_recognition() -> None:
    assert is_scheduled_event(scheduled_event())
    for kind in KINDS:
        assert not is_scheduled_event(http_event(kind, "GET", "/"))
    assert not is_scheduled_event({"source": "aws.s3"}) and not is_scheduled_event([])
    job = {"grok2api": "video_job", "id": "video_" + "0" * 32}
    assert is_video_job_event(job) and not is_scheduled_event(job)
    for kind in KINDS:
        assert not is_video_job_event(http_event(kind, "POST", "/v1/videos"))
    for bad in ({**job, "id": "video_../../x"}, {**job, "id": 7}, {**job, "grok2api": "cron"}, {"id": job["id"]}):
        assert not is_video_job_event(bad)


def test_cron_budget_follows_remaining_time() -> None:
    assert cron_budget(FakeContext(remaining_ms=29_000)) == 24.0
    assert cron_budget(FakeContext(remaining_ms=900_000)) == 250.0
    assert cron_budget(FakeContext(remaining_ms=3_000)) == 1.0
    assert cron_budget(None) == 20.0
    assert job_budget(FakeContext(remaining_ms=300_000)) == 295.0 and job_budget(None) is None


def test_misconfigured_handler_answers_500_and_cron_fails_loudly() -> None:
    problems = ["API_KEYS: required when APP_ENV=production."]
    handler = LambdaHandler(ConfigErrorApp(problems))
    for kind in KINDS:
        response = handler(http_event(kind, "POST", "/v1/chat/completions", body=chat(False)), FakeContext())
        assert response["statusCode"] == 500
        error = response_json(response)["error"]
        assert error["code"] == "invalid_configuration" and error["problems"] == problems
    with pytest.raises(RuntimeError, match="API_KEYS: required"):
        handler(scheduled_event(), FakeContext())
    with pytest.raises(RuntimeError, match="API_KEYS: required"):
        handler({"grok2api": "video_job", "id": "video_" + "0" * 32}, FakeContext())


def test_module_imports_with_a_broken_environment(tmp_path: Path) -> None:
    """The Lambda module as AWS imports it: a bad environment must not crash the init phase."""
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(http_event("http_api_v2", "GET", "/health")))
    code = (
        "import json, sys; from adapters.lambda_handler import handler; "
        "print(json.dumps(handler(json.load(open(sys.argv[1])), None)))"
    )
    env = {"PATH": os.environ["PATH"], "APP_ENV": "production", "AWS_LAMBDA_FUNCTION_NAME": "grok2api",
           "STORE_TIMEOUT": "soon"}
    done = subprocess.run([sys.executable, "-c", code, str(event_file)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["statusCode"] == 500
    problems = json.loads(response["body"])["error"]["problems"]
    assert any(p.startswith("STORE_TIMEOUT:") for p in problems), problems
    assert "STORE_TIMEOUT:" in done.stderr  # logged too, for CloudWatch
