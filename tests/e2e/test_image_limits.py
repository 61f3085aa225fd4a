"""Per-request image limits through the real chat path (SDK → gateway → simulator): the image cap, one fetch
deadline for a drip-feeding host, one uniform error text for every remote failure, and a flood of image URLs
that neither stalls the process nor starts a fetch."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.e2e.conftest import API_KEY, Deployment
from tests.e2e.media import data_uri, png

UNIFORM = "the image could not be fetched"


def _ask(gateway: Deployment, urls: list[str]) -> openai.BadRequestError:
    parts = [{"type": "text", "text": "describe"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client(timeout=60).chat.completions.create(
            model="grok-4.5-fast", messages=[{"role": "user", "content": parts}])
    return info.value


@contextlib.contextmanager
def drip_host() -> Iterator[tuple[int, list[socket.socket]]]:
    """Answers 200 with a PNG signature, then one byte every 100 ms; the list holds every accepted connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 9000000\r\n\r\n\x89PNG")
            while not stop.is_set():
                conn.sendall(b"\0")
                time.sleep(0.1)
        conn.close()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = listener.accept()
                accepted.append(conn)
                threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_more_images_than_the_cap_is_a_400_naming_it(deploy) -> None:
    gateway = deploy(max_images_per_request=4)
    gateway.add_accounts(1)
    image = data_uri(png(8, 8))
    error = _ask(gateway, [image] * 5)
    assert error.status_code == 400
    assert "at most 4 images" in error.body["message"] and "max_images_per_request" in error.body["message"]
    # data URIs and URLs count alike; 4 is fine
    completion = gateway.client().chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": [
        {"type": "text", "text": "describe"}, *[{"type": "image_url", "image_url": {"url": image}}] * 4]}])
    assert completion.choices[0].message.content


@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
def test_url_flood_is_refused_at_once_and_cheap_requests_keep_flowing(deploy) -> None:
    gateway = deploy(allow_private_urls=False)
    urls = [f"http://100.64.{i // 250}.{i % 250 + 1}/a.png" for i in range(500)]  # the reported 37 KB request
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        floods = [pool.submit(_ask, gateway, urls) for _ in range(3)]
        models = []
        while not all(f.done() for f in floods):
            t = time.monotonic()
            assert httpx.get(gateway.base_url + "/models", headers=headers, timeout=30).status_code == 200
            models.append(time.monotonic() - t)
        elapsed = time.monotonic() - started
    for flood in floods:
        assert "at most 16 images" in flood.result().body["message"]
    assert elapsed < 5, f"three 500-URL requests took {elapsed:.1f}s"
    assert max(models) < 1.0, f"GET /v1/models waited {max(models):.2f}s behind the flood"


def test_one_deadline_stops_a_drip_feeding_host(deploy) -> None:
    gateway = deploy(image_fetch_deadline=1.5, image_fetch_concurrency=2)
    gateway.add_accounts(1)
    with drip_host() as (port, accepted):
        started = time.monotonic()
        error = _ask(gateway, [f"http://127.0.0.1:{port}/{i}.png" for i in range(6)])
        elapsed = time.monotonic() - started
        assert error.body["message"].endswith(UNIFORM)
        assert elapsed < 6, f"the drip-feeding host held the request {elapsed:.1f}s (deadline 1.5 s)"
        assert 1 <= len(accepted) <= 2  # never more than image_fetch_concurrency at once, none after the deadline


@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
def test_every_remote_failure_reads_the_same(deploy) -> None:
    gateway = deploy(allow_private_urls=False)
    texts = set()
    for url in ("http://100.64.0.1/a.png", "http://[2002:c000:201::1]/a.png", "http://localhost:9/a.png",
                "http://no-such-host.invalid/a.png", "http://169.254.169.254/latest/meta-data"):
        error = _ask(gateway, [url])
        assert error.body["param"] == "messages[].content[image_url #0]"
        texts.add(error.body["message"])
    assert texts == {f"messages[].content[image_url #0]: {UNIFORM}"}
