"""``grok2api smoke`` against locally served gateways: a healthy one, and each way a deployment goes wrong."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters import cli
from adapters.entry import ConfigErrorApp
from adapters.smoke import main as smoke
from api._app import create_app
from simulator.runner import SimulatorServer
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY
from tests.support.asgi import ThreadedServer
from tests.support.net import refused_port

ROOT = Path(__file__).resolve().parents[2]


def run(url: str, **kwargs: object) -> tuple[int, str]:
    lines: list[str] = []
    code = smoke(url, echo=lines.append, timeout=20, **kwargs)
    return code, "\n".join(lines)


@pytest.fixture(scope="module")
def gateway(make_settings, sim: SimulatorServer) -> Iterator[str]:
    with ThreadedServer(create_app(make_settings())) as server:
        token = f"smoke-{uuid.uuid4().hex}"
        sim.state.add_account(token, tier="super")
        added = httpx.post(server.url + "/admin/tokens", json={"tokens": [token]},
                           headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"}, timeout=30)
        assert added.status_code == 200
        yield server.url


def test_healthy_gateway_passes(gateway: str) -> None:
    code, out = run(gateway, key=API_KEY)
    assert code == 0, out
    assert "PASS  health" in out and "store=redis" in out and "media not configured" in out
    assert "PASS  models" in out and "chat will use grok-4.5-fast" in out
    assert "PASS  chat " in out and "answered \"You said: Reply with" in out
    assert "PASS  chat stream" in out and "first chunk after" in out
    assert out.endswith("all checks passed")


def test_without_a_key_the_chat_is_skipped_and_models_say_why(gateway: str) -> None:
    code, out = run(gateway)
    assert code == 1
    assert "FAIL  models" in out and "401: wrong or missing API key" in out


def test_wrong_key(gateway: str) -> None:
    code, out = run(gateway, key="sk-not-this-one")
    assert code == 1 and "401: wrong or missing API key (Incorrect API key provided.)" in out


def test_base_url_with_v1_is_called_out(gateway: str) -> None:
    code, out = run(gateway + "/v1", key=API_KEY)
    assert code == 1 and "wrong base URL?" in out


def test_unknown_model(gateway: str) -> None:
    code, out = run(gateway, key=API_KEY, model="gpt-7")
    assert code == 1 and "model 'gpt-7' is not offered" in out


def test_connection_refused() -> None:
    code, out = run(f"http://127.0.0.1:{refused_port()}")
    assert code == 1 and "connection refused: nothing listens at 127.0.0.1" in out
    assert "models" not in out  # one clear line, not the same error three times


def test_tls_against_a_plain_http_server(gateway: str) -> None:
    code, out = run(gateway.replace("http://", "https://"))
    assert code == 1 and "TLS" in out


def test_dns_failure() -> None:
    code, out = run("https://no-such-host.invalid")
    assert code == 1 and "does not resolve" in out


def test_no_account_available_is_429(make_settings) -> None:
    with ThreadedServer(create_app(make_settings())) as server:  # fresh prefix: an empty pool
        code, out = run(server.url, key=API_KEY)
    assert code == 1 and "429: no account available" in out


def test_store_down_is_reported_by_health(make_settings) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{refused_port()}/0", store_timeout=0.5)
    with ThreadedServer(create_app(settings)) as server:
        code, out = run(server.url, key=API_KEY)
    assert code == 1 and "FAIL  health" in out and "503 degraded: store=redis unreachable" in out and "127.0.0.1" not in out.split("FAIL  health")[1].split("\n")[0]


def test_misconfigured_gateway_lists_its_problems() -> None:
    problems = ["ADMIN_PASSWORD: required when APP_ENV=production (there is no default)."]
    with ThreadedServer(ConfigErrorApp(problems)) as server:
        code, out = run(server.url, key=API_KEY)
    assert code == 1 and "500: the gateway is misconfigured: ADMIN_PASSWORD: required" in out


def test_cli_smoke_subcommand(gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["smoke", gateway, "--key", API_KEY, "--timeout", "20"]) == 0
    assert "all checks passed" in capsys.readouterr().out


def test_cli_serve_prints_every_problem_and_exits_2() -> None:
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "production", "STORE_TIMEOUT": "-1"}
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "invalid configuration:" in done.stderr and "STORE_TIMEOUT: Input should be greater than 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_store_stop(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "store", "stop"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "no embedded Redis is running" in done.stdout
