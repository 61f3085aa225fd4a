"""The benchmark's processes: simulator, gateway(s), bare FastAPI app, redis-server, Upstash-compatible server.

Each runs as its own OS process, as in production (the gateway is ``python -m adapters.cli serve``, configured by
environment variables only). Their output goes to log files in the run's temp directory. ``/proc`` gives each
one's RSS and CPU time, so the report can say how much CPU every request cost in every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
API_KEY = "sk-bench-key"
ADMIN_PASSWORD = "bench-admin-secret"
UPSTASH_TOKEN = "bench-upstash-token"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from ``/proc/<pid>/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process), from ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def loaded_extensions(pid: int, names: tuple[str, ...] = ("uvloop", "httptools", "curl_cffi")) -> dict[str, bool]:
    """Which of these C extensions the process has mapped (proof it uses them, not just that they exist)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {}
    return {name: f"/{name}/" in maps for name in names}


def wait_quiet(max_wait: float, threshold: float = 0.3, sample: float = 3.0) -> float:
    """Wait (up to ``max_wait`` s) until the machine is busier than ``threshold`` cores for less than one sample;
    return the busy cores last seen."""
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(sample)
        busy = (machine_busy_seconds() - before) / sample
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak RSS) in KiB, from ``/proc/<pid>/status``."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes] | None
    log: Path | None = None
    pid_override: int | None = None  # a detached server (the embedded redis-server)
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int:
        if self.pid_override is not None:
            return self.pid_override
        assert self.popen is not None
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kb(self.pid)

    def alive(self) -> bool:
        return self.popen is None or self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def spawn(name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None, port: int = 0) -> Proc:
    log = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    handle = log.open("wb")
    popen = subprocess.Popen(
        args, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
    )
    handle.close()
    return Proc(name, port, popen, log, env=env or {})


def wait_http(proc: Proc, path: str, timeout: float = 30.0, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen and proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(proc.url + path, timeout=5) as response:
                if response.status in ok:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready on {proc.url}{path} after {timeout:g}s ({last}):\n{proc.log_tail()}")


def start_simulator(workdir: Path) -> Proc:
    port = free_port()
    proc = spawn("simulator", [sys.executable, "-m", "simulator", "--fast", "--port", str(port),
                               "--log-level", "warning"], workdir, port=port)
    return proc


def gateway_env(sim: Proc, store: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment a deployed gateway gets: simulator as grok.com, bench keys, the chosen store."""
    env = {
        "APP_ENV": "development",
        "API_KEYS": API_KEY,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GROK_BASE_URL": sim.url,
        "GROK_ASSETS_URL": sim.url + "/__assets",
        "GROK_WS_URL": f"ws://127.0.0.1:{sim.port}/ws/mgw/",
        "CHAT_TRANSPORT": "rest",
        # Unset store variables from the caller's environment would pick another transport: be explicit.
        "REDIS_URL": "",
        "UPSTASH_REDIS_REST_URL": "",
        "UPSTASH_REDIS_REST_TOKEN": "",
        "KV_REST_API_URL": "",
        "KV_REST_API_TOKEN": "",
    }
    env.update(store)
    env.update(extra)
    return env


def start_gateway(name: str, workdir: Path, env: dict[str, str]) -> Proc:
    port = free_port()
    return spawn(name, [sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                 workdir, env=env, port=port)


def start_bare(workdir: Path) -> Proc:
    port = free_port()
    return spawn("bare-fastapi", [sys.executable, "-m", "bench.bare_app", "--port", str(port)], workdir, port=port)


def start_upstash(workdir: Path, redis_url: str) -> Proc:
    port = free_port()
    return spawn("upstash-compat", [sys.executable, "-m", "tests.support.upstash_server", "--redis", redis_url,
                                    "--token", UPSTASH_TOKEN, "--port", str(port)], workdir, port=port)


def wait_port(proc: Proc, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proc.port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} does not listen on {proc.port}:\n{proc.log_tail()}")


# -- small synchronous HTTP helpers for setup (not timed) ---------------------------------------------------------


def http_json(method: str, url: str, body: object | None = None, *, token: str | None = None,
              timeout: float = 60.0) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url} → {exc.code}: {exc.read()[:500]!r}") from None


def admin(gateway: Proc, method: str, path: str, body: object | None = None) -> dict:
    result = http_json(method, gateway.url + path, body, token=ADMIN_PASSWORD)
    assert isinstance(result, dict), result
    return result


def store_commands(gateway: Proc) -> int:
    """The gateway process's ``Store.commands_sent`` (``GET /admin/usage`` reads it after its own HGETALL)."""
    return int(admin(gateway, "GET", "/admin/usage")["store_commands"])
