"""The address policy: every IANA special-purpose range refused (plain, IPv4-mapped and NAT64 forms), public
addresses allowed — through ``core.netguard.refusal`` and through the fetcher's own check of a URL."""

from __future__ import annotations

import ipaddress

import pytest

from core.errors import InvalidRequest
from core.fetch import UNIFORM_TEXT, resolve_checked
from core.netguard import refusal

# Written out here, not imported from core.netguard: deleting a range there must fail these tests.
V4_REFUSED = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
]
V6_REFUSED = [
    "::/128", "::1/128", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001::/32", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
]
V4_PUBLIC = ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
             "198.17.255.255", "198.20.0.0", "192.0.1.1", "9.255.255.255", "11.0.0.0", "223.255.255.254"]
V6_PUBLIC = ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e", "2001:200::1",
             "::ffff:8.8.8.8", "64:ff9b::808:808", "2003::1"]


def _samples(network: str) -> list[str]:
    net = ipaddress.ip_network(network)
    picks = {net.network_address, net.broadcast_address, net.network_address + net.num_addresses // 2}
    return sorted(str(a) for a in picks)


def _v4_refused_samples() -> list[str]:
    return [a for net in V4_REFUSED for a in _samples(net)]


def _v6_refused_samples() -> list[str]:
    return [a for net in V6_REFUSED for a in _samples(net)]


def _embedded_forms(v4: str) -> list[str]:
    n = int(ipaddress.IPv4Address(v4))
    return [f"::ffff:{v4}", str(ipaddress.IPv6Address((0x64FF9B << 96) | n))]  # IPv4-mapped, NAT64 well-known


@pytest.mark.parametrize("address", _v4_refused_samples())
def test_ipv4_special_ranges_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None
    for form in _embedded_forms(address):
        assert refusal(ipaddress.ip_address(form)) is not None, form


@pytest.mark.parametrize("address", _v6_refused_samples())
def test_ipv6_special_ranges_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["2002:c000:201::1", "2002:0808:0808::1", "2001:0:4136:e378::1",
                                     "64:ff9b:1::a00:1", "::10.0.0.1", "::8.8.8.8", "fe80::1%eth0"])
def test_tunnel_and_translation_forms_refused(address: str) -> None:
    # 6to4 and Teredo are refused even when the embedded IPv4 address is public
    assert refusal(ipaddress.ip_address(address.split("%")[0])) is not None


@pytest.mark.parametrize("address", V4_PUBLIC + V6_PUBLIC)
def test_public_addresses_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", _v4_refused_samples()[::2] + _v6_refused_samples()[::2]
                         + ["::ffff:100.64.0.1", "64:ff9b::c612:1"])
async def test_fetcher_refuses_urls_to_special_ranges(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(InvalidRequest) as info:
        await resolve_checked(f"http://{host}:8080/a.png", allow_private=False, param="image_url #2")
    assert info.value.message == f"image_url #2: {UNIFORM_TEXT}"
    assert info.value.param == "image_url #2"


async def test_fetcher_resolves_names_before_judging() -> None:
    with pytest.raises(InvalidRequest) as info:
        await resolve_checked("http://localhost:8080/a.png", allow_private=False, param="p")
    assert "resolves to" in info.value.reason  # type: ignore[attr-defined]
    assert await resolve_checked("http://93.184.215.14/x", allow_private=False, param="p") == (
        "93.184.215.14", "93.184.215.14")
