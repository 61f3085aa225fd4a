"""Fetching user-supplied URLs safely (image_url parts).

Every hop is checked before anything connects: only http(s), and every address the host resolves to must be
public by ``core.netguard`` (IANA special-purpose ranges refused) unless the operator allows private targets.
The connection is pinned to the checked address (Host header and TLS SNI keep the name), so DNS cannot change
between the check and the connect. Redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop checked
again. Bodies are streamed and cut at ``max_bytes`` whatever Content-Length says; only identity-encoded bodies are
read (no decompression bombs).

All fetches share ONE ``httpx.AsyncClient`` per event loop (built lazily, off the loop: building one costs
~40 ms of CPU for its TLS context), with connect/read timeouts, a process-wide connection cap, no keep-alive
(a pooled TLS connection verified for one name must not serve another name on the same address) and no cookies.
Names are resolved in a small thread pool of their own, each lookup bounded by ``DNS_TIMEOUT``. The caller
bounds the total time (``core.attachments.load_images`` has one deadline for a whole request).

Every failure raises ``FetchFailed``: an ``InvalidRequest`` whose client-facing text is the same whatever went
wrong (unresolvable, refused address, connect error, HTTP status, too many redirects, too large), so the gateway
cannot be used to probe which hosts answer; the real reason is in ``FetchFailed.reason`` for the server log.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from core.errors import InvalidRequest
from core.netguard import Address, parse_ip, refusal

if TYPE_CHECKING:  # httpx is imported on the first fetch: most requests never fetch, and it costs cold starts
    import httpx

MAX_REDIRECTS = 3
DNS_TIMEOUT = 5.0
TIMEOUT = {"connect": 5.0, "read": 10.0, "write": 5.0, "pool": 10.0}  # seconds (httpx.Timeout)
MAX_CONNECTIONS = 64  # image fetches in flight in the whole process (each request also has its own cap)
UNIFORM_TEXT = "the image could not be fetched"
# Own threads for DNS: a lookup that outlives DNS_TIMEOUT keeps its thread busy, and slow names must not use up
# the loop's default executor (asyncio.to_thread) that everything else shares.
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="image-dns")


class FetchFailed(InvalidRequest):
    """A user-supplied URL could not be fetched. The message never says why; ``reason`` does (log it only)."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {UNIFORM_TEXT}", param=param)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str
    url: str


class ByteBudget:
    """Bytes that several fetches may read together (one request's images)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, count: int) -> bool:
        if count > self.left:
            return False
        self.left -= count
        return True


# --- the shared client ---------------------------------------------------------------------------------------

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _build_client() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(**TIMEOUT),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=0),
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # accepts no cookie
        headers={"Accept": "image/*,*/*;q=0.5", "Accept-Encoding": "identity"},
    )


async def shared_client() -> httpx.AsyncClient:
    """This event loop's fetch client, built on first use in a worker thread."""
    loop = asyncio.get_running_loop()
    future = _clients.get(loop)
    if future is None or (future.done() and future.exception() is not None):
        future = _clients[loop] = asyncio.ensure_future(asyncio.to_thread(_build_client))
    return await asyncio.shield(future)


async def aclose_shared_client() -> None:
    """Close this loop's client (app shutdown); the next fetch builds a new one."""
    future = _clients.pop(asyncio.get_running_loop(), None)
    if future is not None and future.done() and future.exception() is None:
        await future.result().aclose()


# --- the address check ---------------------------------------------------------------------------------------


def _split(url: str, param: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchFailed(param, "invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchFailed(param, f"not an http(s) URL with a host: {parts.scheme}://{parts.hostname}")
    return parts, parts.hostname, port


async def _resolve(host: str, port: int, param: str) -> list[Address]:
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_DNS_POOL, lookup), DNS_TIMEOUT)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise FetchFailed(param, f"cannot resolve {host!r}: {type(exc).__name__}") from None
    addresses = [a for a in (parse_ip(str(info[4][0])) for info in infos) if a is not None]
    if not addresses:
        raise FetchFailed(param, f"{host!r} resolves to nothing")
    return addresses


async def resolve_checked(url: str, *, allow_private: bool, param: str) -> tuple[str, str]:
    """Validate ``url`` and return (host, pinned ip). Raises ``FetchFailed`` naming ``param``."""
    _parts, host, port = _split(url, param)
    addresses = await _resolve(host, port, param)
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise FetchFailed(param, f"{host!r} resolves to {address}: refused range {why}")
    return host, str(addresses[0])


# --- the fetch -----------------------------------------------------------------------------------------------


def _pinned_request(client: httpx.AsyncClient, url: str, host: str, ip: str) -> httpx.Request:
    parts = urlsplit(url)
    netloc = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return client.build_request(
        "GET", pinned, headers={"Host": parts.netloc.rsplit("@", 1)[-1]}, extensions={"sni_hostname": host}
    )


async def _send(url: str, host: str, ip: str, param: str) -> httpx.Response:
    import httpx

    client = await shared_client()
    try:
        return await client.send(_pinned_request(client, url, host, ip), stream=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchFailed(param, f"{host} ({ip}): {type(exc).__name__}: {exc}") from None


async def _read_body(
    response: httpx.Response, *, max_bytes: int, budget: ByteBudget | None, param: str, host: str
) -> bytes:
    import httpx

    if response.status_code != 200:
        raise FetchFailed(param, f"{host} answered HTTP {response.status_code}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchFailed(param, f"{host} sent Content-Encoding {encoding!r}")
    declared = response.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > max_bytes:
        raise FetchFailed(param, f"{host} declares {declared} bytes, cap {max_bytes}")
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise FetchFailed(param, f"{host} sent more than {max_bytes} bytes")
            if budget is not None and not budget.take(len(chunk)):
                raise FetchFailed(param, "the request's images exceed their total byte budget")
    except httpx.HTTPError as exc:
        raise FetchFailed(param, f"{host}: body: {type(exc).__name__}: {exc}") from None
    return bytes(body)


async def fetch_url(
    url: str, *, max_bytes: int, allow_private: bool = False, param: str = "url", budget: ByteBudget | None = None
) -> Fetched:
    """GET ``url`` after the address check, following at most ``MAX_REDIRECTS`` re-checked redirects.

    No deadline of its own beyond the client's connect/read timeouts: wrap it in ``asyncio.timeout``.
    """
    for _hop in range(MAX_REDIRECTS + 1):
        host, ip = await resolve_checked(url, allow_private=allow_private, param=param)
        response = await _send(url, host, ip, param)
        try:
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            data = await _read_body(response, max_bytes=max_bytes, budget=budget, param=param, host=host)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Fetched(data, content_type, url)
        finally:
            await response.aclose()
    raise FetchFailed(param, f"more than {MAX_REDIRECTS} redirects")
