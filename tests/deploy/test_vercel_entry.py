"""``api/index.py`` served the way Vercel's Python runtime serves it (see ``tests/deploy/vercel_runtime.py``): a
separate process, an IPC socket, uvicorn behind the platform proxy. SSE must stream through it."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.runner import SimulatorServer
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY, CRON_SECRET, settings_env

ROOT = Path(__file__).resolve().parents[2]


class IPCServer:
    """The platform side of ``VERCEL_IPC_PATH``: collects the runtime's NUL-delimited JSON messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        threading.Thread(target=self._serve, daemon=True, name="vercel-ipc").start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        buffer = b""
        while chunk := conn.recv(65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self.messages.put(json.loads(raw))

    def wait_for(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message["type"] in (kind, "unrecoverable-error"):
                return message

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get())
        return out


@dataclass
class VercelFunction:
    process: subprocess.Popen
    ipc: IPCServer
    url: str
    init_ms: int
    logs: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_function(tmp: Path, env: dict[str, str]) -> VercelFunction:
    ipc = IPCServer(tmp / f"ipc-{uuid.uuid4().hex[:6]}.sock")
    full_env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "VERCEL": "1", "VERCEL_ENV": "production", "VERCEL_IPC_PATH": str(ipc.path),
        "__VC_HANDLER_ENTRYPOINT": "api/index.py", "__VC_HANDLER_MODULE_NAME": "api.index",
        "__VC_HANDLER_VARIABLE_NAME": "app", **env,
    }
    process = subprocess.Popen([sys.executable, "-m", "tests.deploy.vercel_runtime"], cwd=ROOT, env=full_env,
                               stderr=subprocess.PIPE, text=True)
    started = ipc.wait_for("server-started")
    if started["type"] != "server-started":
        process.kill()
        raise AssertionError(f"the function died at import: {started['payload']['message']}")
    payload = started["payload"]
    return VercelFunction(process, ipc, f"http://127.0.0.1:{payload['httpPort']}", payload["initDuration"])


@pytest.fixture(scope="module")
def function(make_settings, sim: SimulatorServer, tmp_path_factory) -> Iterator[VercelFunction]:
    fn = start_function(tmp_path_factory.mktemp("vercel"), settings_env(make_settings(heartbeat_interval=5.0)))
    token = f"vercel-{uuid.uuid4().hex}"
    sim.state.add_account(token, tier="super")
    added = httpx.post(fn.url + "/admin/tokens", json={"tokens": [token]},
                       headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}, timeout=30)
    assert added.status_code == 200 and added.json()["added"] == 1, added.text
    yield fn
    fn.stop()


def test_platform_ping_and_request_lifecycle(function: VercelFunction) -> None:
    assert httpx.get(function.url + "/_vercel/ping").status_code == 200
    function.ipc.drain()
    headers = {"x-vercel-internal-invocation-id": "inv-42", "x-vercel-internal-request-id": "7",
               "x-vercel-internal-trace-id": "t", "x-vercel-internal-span-id": "s"}
    response = httpx.get(function.url + "/health", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["store"]["ok"] is True
    context = {"invocationId": "inv-42", "requestId": 7}
    started = function.ipc.wait_for("handler-started", timeout=5)
    ended = function.ipc.wait_for("end", timeout=5)  # sent once the response is complete
    assert started["payload"]["context"] == context and ended["payload"]["context"] == context


@pytest.mark.parametrize(("method", "path", "secret", "status"), [
    ("GET", "/", None, 200),
    ("GET", "/v1/models", API_KEY, 200),
    ("GET", "/v1/models/grok-4.5-fast", API_KEY, 200),
    ("GET", "/admin/tokens", ADMIN_PASSWORD, 200),
    ("GET", "/cron/tick", CRON_SECRET, 200),  # what Vercel Cron sends: GET with Bearer $CRON_SECRET
    ("GET", "/cron/tick", None, 401),
    ("GET", "/api/index", None, 404),  # the rewrite target is not a path the app pretends to have
])
def test_every_path_reaches_the_one_app(function: VercelFunction, method: str, path: str, secret: str | None,
                                        status: int) -> None:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    assert httpx.request(method, function.url + path, headers=headers, timeout=30).status_code == status


def test_sse_streams_through_the_runtime(function: VercelFunction, fresh_sim: SimulatorServer) -> None:
    """The first chunk must arrive while the upstream is still producing the rest."""
    tokens, delay = 16, 0.1
    fresh_sim.config.first_token_delay = (0.05, 0.05)
    fresh_sim.config.token_delay = (delay, delay)
    body = {"model": "grok-4.5-fast", "stream": True,
            "messages": [{"role": "user", "content": f"stream this #long={tokens}"}]}
    arrivals: list[float] = []
    text = ""
    started = time.perf_counter()
    with httpx.stream("POST", function.url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if content:
                    arrivals.append(time.perf_counter() - started)
                    text += content
    assert len(text.split()) == tokens
    spread = arrivals[-1] - arrivals[0]
    # Buffered, every chunk would arrive at the same moment; streamed, they are ~`delay` apart.
    assert spread >= (tokens - 1) * delay * 0.6, arrivals
    print(f"\nSSE through the Vercel runtime: first content after {arrivals[0] * 1000:.0f} ms, "
          f"last after {arrivals[-1] * 1000:.0f} ms ({len(arrivals)} chunks); cold start {function.init_ms} ms")


def test_misconfigured_entry_answers_500_instead_of_dying(tmp_path: Path) -> None:
    fn = start_function(tmp_path, {"APP_ENV": "production", "UPSTASH_REDIS_REST_URL": "https://x.upstash.io"})
    try:
        for call in (lambda c: c.get("/health"), lambda c: c.post("/v1/chat/completions", json={})):
            with httpx.Client(base_url=fn.url, timeout=30) as client:
                response = call(client)
            assert response.status_code == 500
            problems = response.json()["error"]["problems"]
            assert any(p.startswith("ADMIN_PASSWORD:") for p in problems)
            assert not any(p.startswith("API_KEYS:") for p in problems)  # optional: store-managed keys suffice
            assert any("UPSTASH_REDIS_REST_TOKEN" in p for p in problems)
    finally:
        fn.stop()
    assert "ADMIN_PASSWORD: required" in fn.process.stderr.read()  # and in the function's log


def test_embedded_store_is_refused_on_vercel(tmp_path: Path) -> None:
    """No store configured on Vercel: the app starts, and /health says what to set."""
    fn = start_function(tmp_path, {})
    try:
        response = httpx.get(fn.url + "/health", timeout=30)
        assert response.status_code == 503
        store = response.json()["store"]
        assert store["ok"] is False and "UPSTASH_REDIS_REST_URL" in store["error"]
    finally:
        fn.stop()


def test_api_dir_holds_exactly_one_function() -> None:
    """Vercel turns every ``api/*.py`` not starting with ``_`` into a function of its own."""
    functions = [p.relative_to(ROOT).as_posix() for p in (ROOT / "api").rglob("*.py")
                 if not any(part.startswith(("_", ".")) for part in p.relative_to(ROOT / "api").parts)]
    assert functions == ["api/index.py"]

