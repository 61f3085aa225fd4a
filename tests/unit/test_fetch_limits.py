"""``load_images`` / ``fetch_url`` against a real local HTTP server that records every contact: redirects
re-checked on every hop, body caps whatever Content-Length says, the per-request image cap, one deadline,
bounded concurrency, cancellation of the rest on failure or when the caller goes away, one fetch per distinct
URL, one shared client, uniform error text."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import core.fetch
from core.attachments import REQUEST_BYTES_FACTOR, load_images
from core.errors import InvalidRequest, PayloadTooLarge
from core.fetch import UNIFORM_TEXT, FetchFailed, fetch_url, shared_client
from core.netguard import refusal
from core.settings import Settings
from tests.e2e.media import png

PNG = png(8, 8)


@dataclass
class Recorder:
    """A tiny HTTP/1.1 server (one request per connection) that counts connections open now, at most, in all."""

    host: str = "127.0.0.1"
    port: int = 0
    paths: list[str] = field(default_factory=list)
    open_now: int = 0
    open_max: int = 0
    closed: int = 0
    server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            self.paths.append(target)
            await self.respond(urlsplit(target), reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            self.closed += 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def respond(self, target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        path = target.path
        if path == "/png":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(PNG) + PNG)
        elif path == "/redirect":
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % query["to"].encode())
        elif path in ("/nolength", "/chunked", "/falselength"):
            await self.big_body(path, int(query["n"]), writer)
        elif path == "/drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n" + PNG[:8])
            while True:
                writer.write(b"\0")
                await writer.drain()
                await asyncio.sleep(0.1)
        elif path == "/hang":
            await reader.read()  # until the client closes the connection
        elif path == "/fail":
            await asyncio.sleep(float(query.get("after", "0")))
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        elif path == "/text":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()

    async def big_body(self, path: str, size: int, writer: asyncio.StreamWriter) -> None:
        chunk = PNG + b"\0" * (65536 - len(PNG))
        if path == "/nolength":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n")
        sent = 0
        while sent < size:
            data = chunk if path != "/chunked" else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            writer.write(data)
            await writer.drain()
            sent += len(chunk)
        if path == "/chunked":
            writer.write(b"0\r\n\r\n")


@contextlib.asynccontextmanager
async def recorder(host: str = "127.0.0.1") -> AsyncIterator[Recorder]:
    rec = Recorder(host=host)
    rec.server = await asyncio.start_server(rec.handle, host, 0)
    rec.port = rec.server.sockets[0].getsockname()[1]
    try:
        yield rec
    finally:
        rec.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(rec.server.wait_closed(), 2)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"allow_private_urls": True, "max_image_bytes": 1_000_000,
                                 "image_fetch_deadline": 10.0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def only_127_0_0_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real policy, except that 127.0.0.1 counts as public (so a local server can be hop 1)."""
    monkeypatch.setattr(core.fetch, "refusal", lambda a: None if str(a) == "127.0.0.1" else refusal(a))


# --- redirects -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hops_before", [0, 1])
async def test_redirect_to_private_address_refused_on_later_hops(only_127_0_0_1_is_public, hops_before: int) -> None:
    async with recorder("127.0.0.1") as public, recorder("127.0.0.2") as private:
        target = private.url("/png")  # would succeed if contacted
        for _ in range(hops_before):
            target = public.url(f"/redirect?to={target}")
        url = public.url(f"/redirect?to={target}")  # hop 1 → (hop 2 →) the private address
        with pytest.raises(FetchFailed) as info:
            await fetch_url(url, max_bytes=100_000, allow_private=False, param="image_url #0")
        assert private.paths == [], "a redirect target was contacted before its address was checked"
        assert len(public.paths) == hops_before + 1
        assert "127.0.0.2" in info.value.reason
        # control: the same chain to the allowed address is followed
        ok = await fetch_url(url.replace("127.0.0.2", "127.0.0.1").replace(str(private.port), str(public.port)),
                             max_bytes=100_000, allow_private=False, param="p")
        assert ok.data == PNG


async def test_at_most_three_redirects() -> None:
    async with recorder() as server:
        def chain(n: int) -> str:
            url = server.url("/png")
            for _ in range(n):
                url = server.url(f"/redirect?to={url}")
            return url

        assert (await fetch_url(chain(3), max_bytes=100_000, allow_private=True)).data == PNG
        with pytest.raises(FetchFailed) as info:
            await fetch_url(chain(4), max_bytes=100_000, allow_private=True, param="p")
        assert "redirects" in info.value.reason


# --- body caps -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nolength", "/chunked", "/falselength"])
async def test_streamed_body_cut_at_the_cap(path: str) -> None:
    cap = 200_000
    async with recorder() as server:
        started = time.monotonic()
        try:
            fetched = await fetch_url(server.url(f"{path}?n=20000000"), max_bytes=cap, allow_private=True, param="p")
        except FetchFailed as error:
            assert "more than" in error.reason
        else:  # a false small Content-Length: HTTP framing stops at the declared length
            assert path == "/falselength" and len(fetched.data) <= cap
        assert time.monotonic() - started < 5, "the client kept reading past the cap"


async def test_request_byte_budget_spans_images() -> None:
    s = settings(max_image_bytes=300_000)
    async with recorder() as server:
        urls = [server.url(f"/nolength?n=250000&i={i}") for i in range(REQUEST_BYTES_FACTOR + 1)]
        with pytest.raises(FetchFailed) as info:  # each is under the per-image cap, together they are not
            await load_images(urls, s)
        assert "budget" in info.value.reason or "not a JPEG" in info.value.reason


# --- per-request limits --------------------------------------------------------------------------------------

@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
async def test_image_cap_checked_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetched although the request has too many images")

    monkeypatch.setattr(core.fetch, "_resolve", never)
    refs = ["http://100.64.0.1/a.png"] * 10 + [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"] * 7
    with pytest.raises(InvalidRequest) as info:
        await load_images(refs, settings(max_images_per_request=16))
    assert "16" in info.value.message and "max_images_per_request" in info.value.message


async def test_data_uri_flood_within_and_over_the_caps() -> None:
    def uri(i: int, size: int) -> str:
        return f"data:image/png;base64,{base64.b64encode(PNG + b'%06d' % i + b'x' * size).decode()}"

    distinct = [uri(i, 150_000) for i in range(15)] + [uri(99, 600_000)]  # one big enough for a worker thread
    started = time.monotonic()
    loaded = await load_images(distinct, settings(max_images_per_request=16))
    assert len(loaded) == 16 and len({a.name for a in loaded}) == 16
    with pytest.raises(InvalidRequest) as info:
        await load_images([*distinct, uri(100, 10)], settings(max_images_per_request=16))
    assert "at most 16 images" in info.value.message
    with pytest.raises(PayloadTooLarge) as too_large:  # 15 × 150 KB + 600 KB > 3 × 900 KB together
        await load_images(distinct, settings(max_images_per_request=16, max_image_bytes=900_000))
    assert "total" in too_large.value.message
    with pytest.raises(PayloadTooLarge):  # one alone over the per-image cap
        await load_images(distinct, settings(max_image_bytes=500_000))
    assert time.monotonic() - started < 10


async def test_duplicate_urls_fetched_once() -> None:
    async with recorder() as server:
        url = server.url("/png")
        loaded = await load_images([url] * 5 + [server.url("/png?b")], settings())
        assert len(loaded) == 6 and loaded[0] is loaded[4]
        assert sorted(server.paths) == ["/png", "/png?b"]


async def test_one_deadline_for_all_fetches() -> None:
    async with recorder() as server:
        urls = [server.url(f"/drip?i={i}") for i in range(3)]
        started = time.monotonic()
        with pytest.raises(FetchFailed) as info:
            await load_images(urls, settings(image_fetch_deadline=1.0, image_fetch_concurrency=1))
        elapsed = time.monotonic() - started
        assert info.value.reason == "deadline"
        assert elapsed < 4, f"drip-feeding servers held the request for {elapsed:.1f}s"
        await _until(lambda: server.open_now == 0)


async def test_concurrency_never_above_the_setting() -> None:
    async with recorder() as server:
        urls = [server.url(f"/hang?i={i}") for i in range(12)]
        task = asyncio.ensure_future(load_images(urls, settings(image_fetch_concurrency=3)))
        await _until(lambda: server.open_now == 3)
        await asyncio.sleep(0.5)
        assert server.open_max == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(lambda: server.open_now == 0)  # the caller left: every connection is closed


async def test_one_failure_cancels_the_other_fetches() -> None:
    async with recorder() as server:
        urls = [server.url(f"/hang?i={i}") for i in range(3)] + [server.url("/fail?after=0.3")]
        started = time.monotonic()
        with pytest.raises(FetchFailed) as info:
            await load_images(urls, settings(image_fetch_concurrency=4))
        assert time.monotonic() - started < 5
        assert info.value.param == "messages[].content[image_url #3]"
        await _until(lambda: server.open_now == 0)
        assert server.closed == 4


@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
async def test_one_shared_client(monkeypatch: pytest.MonkeyPatch) -> None:
    client = await shared_client()
    assert await shared_client() is client
    built: list[object] = []
    original = httpx.AsyncClient.__init__

    def counting(self: httpx.AsyncClient, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.AsyncClient, "__init__", counting)
    async with recorder() as server:
        await load_images([server.url(f"/png?{i}") for i in range(8)], settings())
    with pytest.raises(FetchFailed):
        await load_images([f"http://100.64.0.{i}/x.png" for i in range(16)], settings(allow_private_urls=False))
    assert built == []


@pytest.mark.netns  # non-loopback addresses: nothing may leave the machine
async def test_refused_address_never_reaches_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("a connection was attempted to a refused address")

    monkeypatch.setattr(core.fetch, "_send", no_connect)
    for url in ("http://100.64.0.1/a", "http://[2002:c000:201::1]/a", "http://localhost/a"):
        with pytest.raises(FetchFailed):
            await load_images([url], settings(allow_private_urls=False))


async def test_every_remote_failure_has_the_same_text(only_127_0_0_1_is_public) -> None:
    async with recorder() as server, recorder("127.0.0.2") as private:
        cases = {
            "refused range": "http://10.1.2.3/a.png",
            "unresolvable": "http://no-such-host.invalid/a.png",
            "connect refused": "http://127.0.0.1:9/a.png",
            "HTTP 404": server.url("/fail"),
            "not an image": server.url("/text"),
            "too large": server.url("/nolength?n=3000000"),
            "redirect to refused": server.url(f"/redirect?to={private.url('/png')}"),
        }
        texts = set()
        for url in cases.values():
            with pytest.raises(FetchFailed) as info:
                await load_images([url], settings(allow_private_urls=False))
            texts.add(info.value.message)
    assert texts == {f"messages[].content[image_url #0]: {UNIFORM_TEXT}"}


async def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_the_app_builds_without_importing_httpx() -> None:
    """Cold starts: the deployment entry builds the app, and httpx (image fetches only) is not loaded until then."""
    import subprocess
    import sys

    code = "import sys, api.index; print('httpx' in sys.modules, 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout + out.stderr
