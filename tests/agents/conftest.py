"""Real agent CLIs nobody here wrote (Claude Code, Codex CLI) → the gateway over real HTTP → the grok.com
simulator. The CLIs come from the npm registry (``tests/agents/install_clients.py``, run by ``.ci/run`` and, when
needed, by the ``agent_clients`` fixture); they run offline with a temporary HOME, stdin from /dev/null and a
90 s limit per run (see /work/shared/notes/agent-clients.md for the facts this relies on).

Every test gets its own gateway with one account, so replies can be scripted per account token; the gateway is
wrapped in a recorder that keeps each request the CLI sent it (path, query, headers, JSON body)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api._app import create_app
from core.settings import Settings
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from tests.agents import install_clients
from tests.support.asgi import ThreadedServer

API_KEY = "sk-agents-test-key"
ADMIN_PASSWORD = "agents-admin-secret"
RUN_TIMEOUT = 90.0  # seconds per CLI run
# Codex declares more tools (a freeform `custom` apply_patch, tool_search) for a model it knows.
MODEL_ALIASES = {"gpt-5.5": "grok-4.5"}


def _strict() -> bool:
    return os.environ.get("G2A_NO_SKIPS", "").strip().lower() in ("1", "true", "yes")


# -- the gateway, recorded ------------------------------------------------------------------------------------


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def summary(self) -> str:
        return f"{self.method} {self.path}{'?' + self.query if self.query else ''} -> {self.status}"


class RecordingApp:
    """ASGI wrapper keeping every HTTP request (and the first 64 KiB of each response body) in order."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[SeenRequest] = []

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = SeenRequest(
            method=scope["method"], path=scope["path"], query=scope.get("query_string", b"").decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}, body=b"",
        )
        self.seen.append(entry)
        chunks: list[bytes] = []

        async def recording_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                entry.body = b"".join(chunks)
            return message

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body" and len(entry.response) < 65536:
                entry.response += message.get("body", b"")[: 65536 - len(entry.response)]
            await send(message)

        await self.app(scope, recording_receive, recording_send)


@dataclass
class AgentGateway:
    url: str
    sim: SimulatorServer
    recorder: RecordingApp
    token: str = ""

    def require_route(self, method: str, path: str) -> None:
        """Skip, naming the route, while the gateway does not serve it yet (its own work is pending): probed
        with an empty JSON body, a missing route is the gateway's 404 "Unknown path"."""
        response = httpx.request(method, self.url + path, json={}, timeout=10,
                                 headers={"Authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY})
        del self.recorder.seen[:]
        if response.status_code == 405 or (response.status_code == 404 and "Unknown path" in response.text):
            pytest.skip(f"gateway route {method} {path} not implemented yet ({response.status_code})")

    def script(self, *replies: str | dict[str, str]) -> None:
        """The next upstream answers of this gateway's account, in order."""
        self.sim.state.script_replies(self.token, list(replies), replace=True)

    def seen(self, path_prefix: str = "/v1/") -> list[SeenRequest]:
        return [r for r in self.recorder.seen if r.path.startswith(path_prefix)]

    def upstream_messages(self) -> list[str]:
        """The message text of every upstream chat turn this gateway's account sent, oldest first."""
        turns = [turn for conv in list(self.sim.state.conversations.values()) if conv.owner_token == self.token
                 for turn in conv.turns]
        return [turn.message for turn in sorted(turns, key=lambda t: t.created)]

    def scripted_left(self) -> int:
        return len(self.sim.state.scripted_replies()["accounts"].get(self.token, []))

    def story(self) -> str:
        """What happened, for failure messages."""
        lines = ["gateway saw:"] + [f"  {r.summary()}  {r.response[:300]!r}" for r in self.recorder.seen]
        lines.append(f"upstream turns: {len(self.upstream_messages())}, scripted replies left: {self.scripted_left()}")
        return "\n".join(lines)


@pytest.fixture(scope="session")
def agent_sim() -> Iterator[SimulatorServer]:
    """One simulator for the module's gateways, in agent mode (scripted replies take precedence)."""
    with SimulatorServer(SimConfig.fast(agent_model=True)) as server:
        yield server


@pytest.fixture
def agent_gateway(request: pytest.FixtureRequest, agent_sim: SimulatorServer, embedded_redis) -> Iterator[AgentGateway]:
    """A gateway with one heavy account; REST chat transport unless parametrized (indirect) with "mgw"."""
    settings = Settings(
        chat_transport=getattr(request, "param", "rest"),
        api_keys=(API_KEY,),
        admin_password=ADMIN_PASSWORD,
        redis_url=embedded_redis.url,
        store_prefix=f"agents-{uuid.uuid4().hex[:10]}:",
        grok_base_url=agent_sim.base_url,
        grok_assets_url=agent_sim.assets_url,
        grok_ws_url=agent_sim.ws_url,
        allow_private_urls=True,
        first_byte_timeout=20.0,
        stream_idle_timeout=20.0,
        heartbeat_interval=5.0,
        model_aliases=MODEL_ALIASES,
    )
    recorder = RecordingApp(create_app(settings))
    server = ThreadedServer(recorder).start()
    gateway = AgentGateway(server.url, agent_sim, recorder)
    try:
        token = f"agents-{uuid.uuid4().hex}"
        agent_sim.state.add_account(token, tier="heavy")
        response = httpx.post(server.url + "/admin/tokens", json={"tokens": [token]}, timeout=30,
                              headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"})
        assert response.status_code == 200, response.text
        gateway.token = token
        yield gateway
    finally:
        server.stop()
        agent_sim.state.clear_replies(gateway.token)


# -- the CLIs ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def story(self) -> str:
        ended = "killed: timed out" if self.timed_out else f"exit {self.returncode}"
        return (f"$ {' '.join(self.argv)}\n{ended} after {self.seconds:.1f} s\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


@pytest.fixture(scope="session")
def agent_clients() -> Path:
    """The npm dir holding the CLIs; installs them when missing. Skips only when node/npm is absent."""
    reason = install_clients.install(quiet=True)
    if reason is None:
        return install_clients.npm_dir()
    if install_clients.missing_tools() and not _strict():
        pytest.skip(f"agent CLIs need node and npm: {reason}")
    pytest.fail(f"agent CLIs unavailable: {reason}")


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: nothing of this machine's (API keys, proxies, config dirs) reaches the CLIs."""
    path = os.pathsep.join(p for p in (str(install_clients.npm_dir() / "node_modules" / ".bin"),
                                       "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb", "NO_COLOR": "1",
            "TMPDIR": str(home / "tmp"), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local" / "share")}


def run_cli(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT) -> Run:
    import time

    (Path(env["HOME"]) / "tmp").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the CLI and whatever it spawned
        stdout, stderr = process.communicate()
        return Run(argv, -9, stdout, stderr, time.monotonic() - started, timed_out=True)
    return Run(argv, process.returncode, stdout, stderr, time.monotonic() - started)


def finished(run: Run, gateway: AgentGateway, *, allow_timeout: bool = False) -> Run:
    if run.timed_out and not allow_timeout:
        pytest.fail(f"{Path(run.argv[0]).name} did not finish within {RUN_TIMEOUT:.0f} s\n{run.story()}\n"
                    f"{gateway.story()}")
    return run


@dataclass
class ClaudeCode:
    npm: Path
    home: Path
    workspace: Path

    def run(self, gateway: AgentGateway, prompt: str, *args: str, model: str | None = None,
            timeout: float = RUN_TIMEOUT, allow_timeout: bool = False) -> Run:
        env = base_env(self.home)
        env.update({
            "ANTHROPIC_BASE_URL": gateway.url,
            "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        })
        argv = [str(self.npm / "node_modules" / ".bin" / "claude"), "-p", prompt, "--output-format", "json"]
        if model:
            argv += ["--model", model]
        return finished(run_cli([*argv, *args], env=env, cwd=self.workspace, timeout=timeout), gateway,
                        allow_timeout=allow_timeout)


@pytest.fixture
def claude_code(agent_clients: Path, tmp_path: Path) -> ClaudeCode:
    home, workspace = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workspace.mkdir()
    return ClaudeCode(agent_clients, home, workspace)


@dataclass
class CodexCli:
    npm: Path
    home: Path
    workspace: Path

    def configure(self, gateway: AgentGateway, model: str = "grok-4.5", provider_extra: str = "") -> Path:
        codex_home = self.home / ".codex"
        codex_home.mkdir(parents=True, exist_ok=True)
        (codex_home / "config.toml").write_text(textwrap.dedent(f"""\
            model = "{model}"
            model_provider = "local"
            check_for_update_on_startup = false

            [analytics]
            enabled = false

            [features]
            plugins = false
            remote_plugin = false
            apps = false

            [model_providers.local]
            name = "local"
            base_url = "{gateway.url}/v1"
            wire_api = "responses"
            env_key = "LOCAL_API_KEY"
            """) + textwrap.dedent(provider_extra))
        return codex_home

    def run(self, gateway: AgentGateway, prompt: str, *args: str, model: str = "grok-4.5",
            provider_extra: str = "", timeout: float = RUN_TIMEOUT, allow_timeout: bool = False) -> Run:
        """``provider_extra``: more TOML lines for ``[model_providers.local]`` (e.g. ``request_max_retries = 0``)."""
        env = base_env(self.home)
        env.update({"CODEX_HOME": str(self.configure(gateway, model, provider_extra)), "LOCAL_API_KEY": API_KEY})
        argv = [str(self.npm / "node_modules" / ".bin" / "codex"), "exec", "--skip-git-repo-check",
                "-C", str(self.workspace), *args, prompt]
        return finished(run_cli(argv, env=env, cwd=self.workspace, timeout=timeout), gateway,
                        allow_timeout=allow_timeout)


@pytest.fixture
def codex_cli(agent_clients: Path, tmp_path: Path) -> CodexCli:
    home, workspace = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workspace.mkdir()
    return CodexCli(agent_clients, home, workspace)


