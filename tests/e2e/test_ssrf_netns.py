"""SSRF end to end, with non-loopback targets that really answer: inside a private network namespace.

The test re-executes this module under ``unshare -n -m`` (a fresh network namespace, and a mount namespace so a
private /etc/hosts can name a refused address). There it brings ``lo`` up, puts special-purpose addresses on it
(100.64.0.1, 198.18.0.1, 10.0.0.1, 169.254.169.254, 2002:c000:201::1, fd00::1, and 8.8.8.8 playing a public
host), starts an HTTP server on each that records every connection and serves a PNG, starts the grok.com
simulator and the real gateway (uvicorn on 127.0.0.1) and sends chat requests with image URLs at those servers.

With ``allow_private_urls=false`` every refused target must get the uniform 400 AND never be contacted (a
refused URL and an unreachable one both give a 400, so only the contact log proves the check ran); a redirect
from the public host to a refused one is refused after hop 1. The controls prove the test can fail: the public
host IS contacted and its image accepted, and with ``allow_private_urls=true`` the refused hosts ARE contacted.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080
REFUSED = ["100.64.0.1", "198.18.0.1", "10.0.0.1", "169.254.169.254", "2002:c000:201::1", "fd00::1"]
PUBLIC = "8.8.8.8"
HOSTS_NAME = "metadata.internal.test"  # /etc/hosts → 100.64.0.1 inside the namespace


def _netns_unavailable() -> str | None:
    if sys.platform != "linux" or not shutil.which("unshare"):
        return "needs Linux with util-linux unshare"
    if not shutil.which("ip"):
        return "needs the ip command (iproute2) to configure the namespace"
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"the kernel refuses a private network namespace: {probe.stderr.strip()}"
    return None


def test_refused_targets_never_contacted_in_a_private_netns() -> None:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        ["unshare", "-n", "-m", sys.executable, "-m", "tests.e2e.test_ssrf_netns"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    uniform = "messages[].content[image_url #0]: the image could not be fetched"

    for case in report["refused"]:
        assert case["status"] == 400, case
        assert case["message"] == uniform, case
        assert case["contacted"] == [], f"{case['url']} was contacted although refused: {case}"
    redirect = report["redirect"]
    assert redirect["status"] == 400 and redirect["message"] == uniform, redirect
    assert redirect["contacted"] == [PUBLIC], redirect  # hop 1 only: the refused hop 2 was never dialled

    public = report["public"]
    assert public["contacted"] == [PUBLIC] and public["status"] == 200, public
    for case in report["allowed"]:  # allow_private_urls=true: the very same servers answer
        assert case["contacted"], f"control failed, {case['url']} was not contacted: {case}"
        assert case["status"] == 200, case


# --- inside the namespace ------------------------------------------------------------------------------------

def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _configure_namespace(hosts_file: Path) -> None:
    _sh("ip", "link", "set", "lo", "up")
    for address in [*REFUSED, PUBLIC]:
        if ":" in address:
            _sh("ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
        else:
            _sh("ip", "addr", "add", f"{address}/32", "dev", "lo")
    hosts_file.write_text(f"127.0.0.1 localhost\n::1 localhost\n100.64.0.1 {HOSTS_NAME}\n")
    _sh("mount", "--bind", str(hosts_file), "/etc/hosts")


class Contacts:
    """An HTTP server on ``address:PORT`` per address; every accepted connection is recorded."""

    def __init__(self, addresses: list[str]) -> None:
        from tests.e2e.media import png

        self.png = png(16, 16)
        self.seen: list[str] = []
        self.lock = threading.Lock()
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, PORT))
            listener.listen(16)
            threading.Thread(target=self._serve, args=(listener, address), daemon=True).start()

    def _serve(self, listener: socket.socket, address: str) -> None:
        while True:
            conn, _ = listener.accept()
            with self.lock:
                self.seen.append(address)
            with conn:
                conn.settimeout(5)
                request = conn.recv(65536)
                if request.startswith(b"GET /redirect"):
                    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://100.64.0.1:%d/x.png\r\n"
                                 b"Content-Length: 0\r\nConnection: close\r\n\r\n" % PORT)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n%s" % (len(self.png), self.png))

    def take(self) -> list[str]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


def _url(address: str, path: str = "/x.png") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{PORT}{path}"


def _inside() -> dict[str, object]:
    import httpx

    from api._app import create_app
    from core.settings import Settings
    from simulator.config import SimConfig
    from simulator.runner import SimulatorServer
    from tests.e2e.conftest import ADMIN_PASSWORD, API_KEY
    from tests.support.asgi import ThreadedServer
    from tests.support.redis_server import embedded_server

    work = Path(tempfile.mkdtemp(prefix="ssrf-netns-"))
    _configure_namespace(work / "hosts")
    contacts = Contacts([*REFUSED, PUBLIC])
    report: dict[str, object] = {}
    with SimulatorServer(SimConfig.fast()) as sim, embedded_server(work / "store") as store:
        def gateway(allow_private: bool) -> ThreadedServer:
            settings = Settings(
                api_keys=(API_KEY,), admin_password=ADMIN_PASSWORD, redis_url=store.url,
                store_prefix=f"ssrf-{uuid.uuid4().hex[:8]}:", grok_base_url=sim.base_url,
                grok_assets_url=sim.assets_url, grok_ws_url=sim.ws_url, allow_private_urls=allow_private,
            )
            server = ThreadedServer(create_app(settings)).start()
            token = f"netns-{uuid.uuid4().hex}"
            sim.state.add_account(token, tier="super")
            added = httpx.post(server.url + "/admin/tokens", json={"tokens": [token]}, timeout=30,
                               headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"})
            assert added.status_code == 200, added.text
            return server

        def chat(server: ThreadedServer, url: str) -> dict[str, object]:
            body = {"model": "grok-4.5-fast", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": url}}]}]}
            response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60,
                                  headers={"Authorization": f"Bearer {API_KEY}"})
            error = response.json().get("error") or {}
            return {"url": url, "status": response.status_code, "message": error.get("message"),
                    "contacted": contacts.take()}

        strict, lenient = gateway(False), gateway(True)
        try:
            targets = [_url(a) for a in REFUSED] + [_url(HOSTS_NAME), _url("::ffff:100.64.0.1")]
            report["refused"] = [chat(strict, url) for url in targets]
            report["redirect"] = chat(strict, _url(PUBLIC, "/redirect"))
            report["public"] = chat(strict, _url(PUBLIC))
            report["allowed"] = [chat(lenient, _url(a)) for a in REFUSED]
        finally:
            strict.stop()
            lenient.stop()
    return report


if __name__ == "__main__":
    print(json.dumps(_inside()))
