"""Media on the serverless platforms: a large object never leaves a Vercel function or a Lambda invocation as a
body (Vercel buffers at most 4.5 MB, Lambda 6 MB through Mangum); ``/media/{id}`` answers a redirect to the
bucket instead. The bucket is a real S3 API over HTTP (moto in server mode, created here); the object is put by
the test through ``MediaStore`` on the same Redis, key prefix and bucket the app uses, as the gateway itself
would have stored it.

* Vercel: ``api/index.py`` served by the Vercel runtime model (``tests/deploy/vercel_runtime.py``, ``VERCEL=1``),
  configured by environment variables only.
* Lambda: API Gateway HTTP API (v2) and REST API (v1) events through ``LambdaHandler(load_app())`` (what
  ``adapters.lambda_handler.handler`` is) with ``AWS_LAMBDA_FUNCTION_NAME`` set, on the Lambda runtime model
  (``tests/deploy/lambda_events.py``); a video job behind API Gateway runs in an asynchronous invocation
  (``VIDEO_DRIVE=async``) sent through the Lambda Invoke API (a loopback stand-in, ``InvokeApi``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from adapters.entry import load_app
from adapters.lambda_handler import LambdaHandler
from core.media import MediaItem, MediaStore
from core.settings import Settings
from core.store import open_store
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY, settings_env
from tests.deploy.lambda_events import (
    FakeContext,
    InvokeApi,
    LambdaRuntime,
    http_event,
    response_body,
    response_json,
)
from tests.deploy.test_vercel_entry import VercelFunction, start_function
from tests.e2e.media import png
from tests.support.s3_server import FAKE_CREDENTIALS, moto_s3_server

BUCKET = "g2a-media-platforms"
BIG = 6 * 1024 * 1024 + 12345  # over Vercel's 4.5 MB and Lambda's 6 MB buffered-response limits
SMALL_BODY = 4096
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a redirect's body, if any, is a few bytes; never the object


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_s3_server(BUCKET, set_environ=False) as url:  # credentials only per test (aws_credentials)
        yield url


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for the in-process boto3 (the test's own puts, the Lambda app)."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def s3_settings(make_settings, moto_url: str) -> Settings:
    return make_settings(media_backend="s3", s3_bucket=BUCKET, s3_endpoint_url=moto_url, s3_region="us-east-1",
                         s3_prefix=f"p{uuid.uuid4().hex[:6]}/")


def put_big(settings: Settings, data: bytes) -> MediaItem:
    """Store ``data`` the way the gateway stores a video: chunk by chunk (S3 multipart), record in Redis."""

    async def put() -> MediaItem:
        store = open_store(settings)
        media = MediaStore.from_settings(settings, store, environ={})

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 1024 * 1024):
                yield data[start:start + 1024 * 1024]

        try:
            return await media.put_stream(chunks(), mime="video/mp4", kind="video", source="test")
        finally:
            await store.close()

    return asyncio.run(put())


def payload() -> bytes:
    return os.urandom(1024) * (BIG // 1024) + os.urandom(BIG % 1024)


def assert_presigned_redirect(status: int, headers: dict[str, str], body: bytes, moto_url: str,
                              settings: Settings, item: MediaItem) -> str:
    assert status == 302, (status, headers, body[:300])
    assert len(body) < SMALL_BODY
    location = headers["location"]
    assert location.startswith(f"{moto_url}/{BUCKET}/{settings.s3_prefix}{item.filename}?"), location
    assert "X-Amz-Signature=" in location
    assert headers["cache-control"].startswith("private, max-age=")
    return location


def assert_bucket_serves(location: str, data: bytes) -> None:
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200, fetched.text[:300]
    assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(data).digest()


# -- Vercel -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vercel_s3(make_settings, moto_url: str, tmp_path_factory) -> Iterator[tuple[VercelFunction, Settings]]:
    settings = s3_settings(make_settings, moto_url)
    fn = start_function(tmp_path_factory.mktemp("vercel-media"), {**settings_env(settings), **FAKE_CREDENTIALS})
    yield fn, settings
    fn.stop()


def test_vercel_large_media_leaves_as_a_redirect(vercel_s3, moto_url: str, aws_credentials) -> None:
    fn, settings = vercel_s3
    data = payload()
    item = put_big(settings, data)
    assert item.size == BIG
    for name in (item.filename, item.id):  # with and without the extension
        with httpx.stream("GET", f"{fn.url}/media/{name}", timeout=30, follow_redirects=False) as response:
            body = b"".join(response.iter_raw())  # what left the function, whatever Content-Length says
            assert "content-length" not in response.headers or int(response.headers["content-length"]) < SMALL_BODY
            location = assert_presigned_redirect(response.status_code, dict(response.headers), body, moto_url,
                                                 settings, item)
    assert_bucket_serves(location, data)
    head = httpx.head(f"{fn.url}/media/{item.filename}", timeout=30, follow_redirects=False)
    assert head.status_code == 302
    presigned_head = httpx.head(head.headers["location"], timeout=30)  # a HEAD-signed URL
    assert presigned_head.status_code == 200 and int(presigned_head.headers["content-length"]) == BIG


def test_vercel_unknown_media_is_404(vercel_s3) -> None:
    fn, _ = vercel_s3
    response = httpx.get(f"{fn.url}/media/{'A' * 24}.mp4", timeout=30, follow_redirects=False)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "media_not_found"


def put_local(settings: Settings) -> MediaItem:
    """A record (and a file) written by an instance with a disk, e.g. a container sharing the same Redis."""

    async def put() -> MediaItem:
        store = open_store(settings)
        try:
            return await MediaStore.from_settings(settings, store, environ={}).put(JPEG, mime="image/jpeg")
        finally:
            await store.close()

    return asyncio.run(put())


def test_vercel_without_a_bucket_refuses_local_media(make_settings, tmp_path: Path) -> None:
    """No S3 on Vercel: a link to a stored item answers 503 naming S3_BUCKET (no lasting disk to serve from)."""
    settings = make_settings(media_backend="local", data_dir=tmp_path / "data")
    item = put_local(settings)
    fn = start_function(tmp_path, settings_env(settings))
    try:
        response = httpx.get(f"{fn.url}/media/{item.filename}", timeout=30, follow_redirects=False)
    finally:
        fn.stop()
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "media_unavailable" and "S3_BUCKET" in error["message"]


# -- Lambda -------------------------------------------------------------------------------------------------------


def lambda_runtime(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LambdaRuntime:
    """``adapters.lambda_handler.handler`` as a Lambda execution environment builds it: from the environment."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "grok2api-prod-api")
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    return LambdaRuntime(load_app)


def _headers(response: dict) -> dict[str, str]:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), values[-1])
    return headers


@pytest.mark.parametrize("kind", ["http_api_v2", "rest_api_v1"])
def test_lambda_media_answers_a_redirect_on_s3(make_settings, moto_url: str, aws_credentials,
                                               monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    settings = s3_settings(make_settings, moto_url)
    data = payload()
    item = put_big(settings, data)
    runtime = lambda_runtime(settings, monkeypatch)
    assert isinstance(runtime.handler, LambdaHandler) and not hasattr(runtime.handler.app, "problems")
    try:
        response = runtime.invoke(http_event(kind, "GET", f"/media/{item.filename}"))
        body = response_body(response)
        location = assert_presigned_redirect(response["statusCode"], _headers(response), body, moto_url, settings,
                                             item)
        head = runtime.invoke(http_event(kind, "HEAD", f"/media/{item.filename}"))
        assert head["statusCode"] == 302 and len(response_body(head)) < SMALL_BODY
        missing = runtime.invoke(http_event(kind, "GET", f"/media/{'C' * 24}.mp4"))
        assert missing["statusCode"] == 404
        assert response_json(missing)["error"]["code"] == "media_not_found"
    finally:
        runtime.close()
    assert_bucket_serves(location, data)


def test_lambda_without_a_bucket_refuses_local_media(make_settings, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    settings = make_settings(media_backend="local", data_dir=tmp_path / "data")
    item = put_local(settings)
    runtime = lambda_runtime(settings, monkeypatch)
    try:
        response = runtime.invoke(http_event("http_api_v2", "GET", f"/media/{item.filename}"))
    finally:
        runtime.close()
    assert response["statusCode"] == 503, response
    error = response_json(response)["error"]
    assert error["code"] == "media_unavailable" and "S3_BUCKET" in error["message"]


# -- a video job through Lambda events ------------------------------------------------------------------------------


@pytest.mark.parametrize("drive", ["poll", "inline"])
def test_lambda_video_job_progresses_through_events(make_settings, moto_url: str, aws_credentials, sim,
                                                    monkeypatch: pytest.MonkeyPatch, drive: str) -> None:
    """``POST /v1/videos`` then polls, each its own invocation (as API Gateway delivers them): with
    ``VIDEO_DRIVE=poll`` the create answers ``queued`` and the first poll drives the job to ``completed``; with
    ``inline`` the create itself does. The download then leaves as a redirect to the bucket (an MP4 is MBs)."""
    settings = s3_settings(make_settings, moto_url).model_copy(update={"video_drive": drive})
    runtime = lambda_runtime(settings, monkeypatch)
    token = f"lambda-video-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    try:
        added = runtime.invoke(http_event("http_api_v2", "POST", "/admin/tokens", body={"tokens": [token]},
                                          headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}))
        assert added["statusCode"] == 200 and response_json(added)["added"] == 1, added
        created = runtime.invoke(http_event("http_api_v2", "POST", "/v1/videos", headers=auth,
                                            body={"prompt": "a paper boat on a river", "seconds": "4",
                                                  "size": "480x854"}))
        assert created["statusCode"] == 200, created
        job = response_json(created)
        assert job["object"] == "video" and job["id"]
        assert job["status"] == ("queued" if drive == "poll" else "completed"), job
        seen = [job["status"]]
        for _ in range(5):
            if job["status"] in ("completed", "failed"):
                break
            polled = runtime.invoke(http_event("http_api_v2", "GET", f"/v1/videos/{job['id']}", headers=auth))
            assert polled["statusCode"] == 200, polled
            job = response_json(polled)
            seen.append(job["status"])
        assert job["status"] == "completed" and job["progress"] == 100, (seen, job)
        listed = runtime.invoke(http_event("http_api_v2", "GET", "/v1/videos", headers=auth))
        assert job["id"] in [v["id"] for v in response_json(listed)["data"]]
        content = runtime.invoke(http_event("http_api_v2", "GET", f"/v1/videos/{job['id']}/content",
                                            headers=auth))
    finally:
        runtime.close()
    assert content["statusCode"] == 302, content
    assert len(response_body(content)) < SMALL_BODY
    location = _headers(content)["location"]
    assert location.startswith(f"{moto_url}/{BUCKET}/{settings.s3_prefix}"), location
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp", fetched.content[:16]


# -- VIDEO_DRIVE=async: the job runs in an asynchronous invocation of a second function -----------------------------

WORKER = "grok2api-prod-videos"


@pytest.fixture
def invoke_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[InvokeApi]:
    api = InvokeApi({WORKER})
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", api.url)  # botocore's per-service endpoint variable
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    yield api
    api.close()


@pytest.fixture
def async_lambda(make_settings, moto_url: str, monkeypatch: pytest.MonkeyPatch, aws_credentials,
                 invoke_api: InvokeApi) -> Iterator[Callable[..., tuple[Settings, LambdaRuntime, LambdaRuntime]]]:
    """``async_lambda(**settings)``: the ``api`` function and the ``videos`` function of serverless.yml, two
    execution environments built from the same environment (each its own process state, one store and one
    bucket), closed after the test."""
    made: list[LambdaRuntime] = []

    def make(**overrides: object) -> tuple[Settings, LambdaRuntime, LambdaRuntime]:
        settings = s3_settings(make_settings, moto_url).model_copy(
            update={"video_drive": "async", "video_dispatch_function": WORKER, **overrides})
        made.append(lambda_runtime(settings, monkeypatch))
        made.append(LambdaRuntime(load_app))
        return settings, made[-2], made[-1]

    yield make
    for runtime in made:
        runtime.close()


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _post_video(api: LambdaRuntime, **body: str) -> dict:
    """``POST /v1/videos`` on the ``api`` function (4 s unless ``seconds`` says otherwise): the raw response."""
    return api.invoke(http_event("http_api_v2", "POST", "/v1/videos", headers=AUTH, body={"seconds": "4", **body}))


def _poll(api: LambdaRuntime, job_id: str) -> dict:
    return response_json(api.invoke(http_event("http_api_v2", "GET", f"/v1/videos/{job_id}", headers=AUTH)))


def _commands(runtime: LambdaRuntime) -> int:
    """Store commands this execution environment has sent (billed ones, as Upstash counts them)."""
    return runtime.handler.app.state.gateway._gateway.store.commands_sent


def _deliver(worker: LambdaRuntime, event: dict, remaining_ms: int = 300_000) -> dict:
    """The asynchronous invocation Lambda would run, on the ``videos`` function."""
    return worker.invoke(event, FakeContext(remaining_ms=remaining_ms, function_name=WORKER))


def _add_account(api: LambdaRuntime, sim) -> str:
    token = f"lambda-async-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    added = api.invoke(http_event("http_api_v2", "POST", "/admin/tokens", body={"tokens": [token]},
                                  headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}))
    assert added["statusCode"] == 200 and response_json(added)["added"] == 1, added
    return token


def test_lambda_video_job_runs_in_an_async_invocation(moto_url: str, async_lambda, sim,
                                                      invoke_api: InvokeApi) -> None:
    """Behind API Gateway (30 s, buffered) the ``POST`` queues the job and invokes the ``videos`` function with
    ``InvocationType=Event``; polls on ``api`` answer from the store (they never drive the job); the delivered
    event runs it to ``completed``, bounded by the invocation's time; a second delivery (Lambda retries) does
    nothing; the video downloads as a redirect to the bucket."""
    settings, api, worker = async_lambda()
    token = _add_account(api, sim)
    created = _post_video(api, prompt="a lighthouse at dusk", size="480x854")
    assert created["statusCode"] == 200, created
    job = response_json(created)
    assert job["status"] == "queued", job
    assert invoke_api.events == [(WORKER, {"grok2api": "video_job", "id": job["id"]})]
    assert invoke_api.seen[-1]["x-amz-invocation-type"] == "Event"
    assert "Credential=testing/" in invoke_api.seen[-1]["authorization"]  # SigV4-signed like any AWS call

    assert _poll(api, job["id"])["status"] == "queued"  # a poll never drives an async job
    assert sim.state.ledger(token)["accepted"].get("video", 0) == 0

    _, event = invoke_api.events[0]
    report = _deliver(worker, event)
    assert report == {"ok": True, "id": job["id"], "status": "completed", "error_code": None}, report
    assert sim.state.ledger(token)["accepted"]["video"] == 1

    again = _deliver(worker, event)  # a redelivery
    assert again == {"ok": True, "id": job["id"], "status": "skipped"}
    assert sim.state.ledger(token)["accepted"]["video"] == 1  # not sent again

    done = _poll(api, job["id"])
    assert done["status"] == "completed" and done["progress"] == 100, done
    content = api.invoke(http_event("http_api_v2", "GET", f"/v1/videos/{job['id']}/content", headers=AUTH))

    # Billed store commands of a second job (both environments warm): the POST queues it and logs the request;
    # the invocation reads, claims, leases, settles, reports progress, writes the outcome and two media records.
    api_start, worker_start = _commands(api), _commands(worker)
    second = response_json(_post_video(api, prompt="count me"))
    posted = _commands(api) - api_start
    assert _deliver(worker, invoke_api.events[-1][1])["status"] == "completed"
    ran = _commands(worker) - worker_start
    print(f"store commands: POST {posted}, invocation {ran}")
    assert second["status"] == "queued" and posted == 2 and ran <= 10
    assert content["statusCode"] == 302, content
    location = _headers(content)["location"]
    assert location.startswith(f"{moto_url}/{BUCKET}/{settings.s3_prefix}"), location
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp"


def test_lambda_async_video_with_an_image_runs_on_the_worker(async_lambda, sim, invoke_api: InvokeApi) -> None:
    """An ``input_reference`` image reaches the other function through the media store (image-to-video)."""
    _, api, worker = async_lambda()
    image = "data:image/png;base64," + base64.b64encode(png()).decode()
    token = _add_account(api, sim)
    created = _post_video(api, prompt="make it move", input_reference=image)
    job = response_json(created)
    assert job["status"] == "queued", job
    report = _deliver(worker, invoke_api.events[-1][1])
    assert report["status"] == "completed", report
    assert any("upload-file" in r["path"] for r in sim.state.requests())
    assert sim.state.ledger(token)["accepted"]["video"] == 1


def test_lambda_async_video_fails_clearly_when_it_cannot_be_dispatched(async_lambda, sim,
                                                                       invoke_api: InvokeApi) -> None:
    """A role without ``lambda:InvokeFunction``: the job is ``failed`` (the client hears what happened, the log
    says what to fix), and nothing went upstream."""
    invoke_api.deny = True
    _, api, _ = async_lambda()
    token = _add_account(api, sim)
    created = _post_video(api, prompt="a kite")
    job = response_json(created)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "dispatch_failed"
    assert "AccessDeniedException" in job["error"]["message"] and WORKER not in job["error"]["message"]
    assert invoke_api.events == [] and sim.state.ledger(token)["accepted"].get("video", 0) == 0
    polled = _poll(api, job["id"])
    assert polled["status"] == "failed" and polled["error"]["code"] == "dispatch_failed"


def test_lambda_async_video_never_run_reads_not_started(async_lambda, sim, invoke_api: InvokeApi,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An event Lambda never ran (throttled past ``maximumEventAge``): after ``VIDEO_TIMEOUT`` + the queue grace
    the job reads ``failed`` / ``not_started``, and a late delivery does not start it any more."""
    monkeypatch.setattr("core.video_queue.QUEUE_GRACE", 0.5)
    _, api, worker = async_lambda(video_timeout=1.0)
    token = _add_account(api, sim)
    job = response_json(_post_video(api, prompt="a kite"))
    assert job["status"] == "queued"
    time.sleep(max(0.0, job["created_at"] + 1.0 + 0.5 - time.time()) + 1.1)  # created_at has whole seconds
    polled = _poll(api, job["id"])
    assert polled["status"] == "failed" and polled["error"]["code"] == "not_started", polled
    late = _deliver(worker, invoke_api.events[-1][1])
    assert late["status"] == "skipped"
    assert sim.state.ledger(token)["accepted"].get("video", 0) == 0


def test_lambda_async_dispatch_that_times_out_after_queueing_is_not_failed(async_lambda, sim,
                                                                           invoke_api: InvokeApi) -> None:
    """Lambda queued the event but its answer never arrived in time (each attempt: queued, then a read timeout):
    the worker that got the first event runs the job meanwhile, and the ``POST`` reports the job as the worker left
    it, never ``dispatch_failed`` over it; the second copy of the event finds the job claimed. One upstream call."""
    invoke_api.answer_after = 4.0  # past the 3 s read timeout, twice
    _, api, worker = async_lambda()
    token = _add_account(api, sim)
    with ThreadPoolExecutor(max_workers=1) as pool:
        posted = pool.submit(api.invoke, http_event("http_api_v2", "POST", "/v1/videos", headers=AUTH,
                                                    body={"prompt": "a kite", "seconds": "4"}))
        deadline = time.monotonic() + 10
        while not invoke_api.events and time.monotonic() < deadline:
            time.sleep(0.02)
        report = _deliver(worker, invoke_api.events[0][1])
        created = posted.result(timeout=30)
    assert report["status"] == "completed", report
    job = response_json(created)
    assert job["status"] == "completed" and job["error"] is None, job
    assert len(invoke_api.events) == 2  # botocore tried twice; both were queued
    again = _deliver(worker, invoke_api.events[1][1])
    assert again["status"] == "skipped"
    assert sim.state.ledger(token)["accepted"]["video"] == 1


def test_lambda_async_worker_with_too_little_time_fails_the_job_unsent(async_lambda, sim,
                                                                       invoke_api: InvokeApi) -> None:
    """A worker function whose timeout is shorter than VIDEO_TIMEOUT would be cut off after upstream charged the
    job: it fails the job at once instead, with nothing sent."""
    _, api, worker = async_lambda()
    token = _add_account(api, sim)
    job = response_json(_post_video(api, prompt="a kite"))
    report = _deliver(worker, invoke_api.events[-1][1], remaining_ms=29_000)
    assert report["status"] == "failed" and report["error_code"] == "worker_timeout", report
    polled = _poll(api, job["id"])
    assert polled["status"] == "failed" and polled["error"]["code"] == "worker_timeout"
    assert sim.state.ledger(token)["accepted"].get("video", 0) == 0


def test_lambda_video_without_a_bucket_is_refused_before_anything_is_spent(
        make_settings, aws_credentials, sim, invoke_api: InvokeApi, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """No S3_BUCKET on Lambda: ``POST /v1/videos`` is a 503 naming it, before a job is queued or dispatched."""
    settings = make_settings(media_backend="local", data_dir=tmp_path / "data", video_drive="async",
                             video_dispatch_function=WORKER)
    api = lambda_runtime(settings, monkeypatch)
    try:
        token = _add_account(api, sim)
        refused = _post_video(api, prompt="a kite")
        listed = response_json(api.invoke(http_event("http_api_v2", "GET", "/v1/videos", headers=AUTH)))
    finally:
        api.close()
    assert refused["statusCode"] == 503, refused
    assert response_json(refused)["error"]["code"] == "media_unavailable"
    assert "S3_BUCKET" in response_json(refused)["error"]["message"]
    assert invoke_api.events == [] and listed["data"] == []
    assert sim.state.ledger(token)["accepted"].get("video", 0) == 0
