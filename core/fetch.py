"""Fetching user-supplied URLs safely (image_url parts).

Every hop is checked before it is contacted: only http(s), every resolved address must be public (no private,
loopback, link-local, multicast or reserved targets) unless the operator allows private targets, and the connection
is pinned to the checked address so DNS cannot change between the check and the connect. Bodies are capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from core.errors import InvalidRequest, PayloadTooLarge

MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str
    url: str


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def resolve_checked(url: str, *, allow_private: bool, param: str) -> tuple[str, str]:
    """Validate ``url`` and return (host, pinned ip). Raises ``InvalidRequest`` naming ``param``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{param}: only http(s) URLs with a host can be fetched", param=param)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), 5.0
        )
    except (OSError, TimeoutError):
        raise InvalidRequest(f"{param}: cannot resolve host {host!r}", param=param) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise InvalidRequest(f"{param}: cannot resolve host {host!r}", param=param)
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                raise InvalidRequest(
                    f"{param}: refusing to fetch {host!r}: it resolves to a non-public address", param=param
                )
    return host, str(addresses[0])


async def fetch_url(
    url: str, *, max_bytes: int, allow_private: bool = False, timeout: float = 15.0, param: str = "url"
) -> Fetched:
    """GET ``url`` after the SSRF check, following at most ``MAX_REDIRECTS`` re-checked redirects."""
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host, ip = await resolve_checked(url, allow_private=allow_private, param=param)
            parts = urlsplit(url)
            netloc_ip = f"[{ip}]" if ":" in ip else ip
            if parts.port:
                netloc_ip += f":{parts.port}"
            pinned = urlunsplit((parts.scheme, netloc_ip, parts.path or "/", parts.query, ""))
            request = client.build_request(
                "GET", pinned, headers={"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "image/*,*/*;q=0.5"},
                extensions={"sni_hostname": host},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise InvalidRequest(f"{param}: could not fetch {host!r}: {type(exc).__name__}", param=param) from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise InvalidRequest(f"{param}: {host!r} answered HTTP {response.status_code}", param=param)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise PayloadTooLarge(f"{param}: file is larger than {max_bytes} bytes", param=param)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise PayloadTooLarge(f"{param}: file is larger than {max_bytes} bytes", param=param)
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                return Fetched(bytes(body), content_type, url)
            finally:
                await response.aclose()
    raise InvalidRequest(f"{param}: too many redirects", param=param)
