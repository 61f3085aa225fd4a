"""Which IP addresses a user-supplied URL may reach: every special-purpose range is refused.

The ranges are data, taken from the IANA special-purpose address registries (RFC 6890 and its updates):

* IPv4: https://www.iana.org/assignments/iana-ipv4-special-registry/
* IPv6: https://www.iana.org/assignments/iana-ipv6-special-registry/

plus multicast (224.0.0.0/4, ff00::/8, from the multicast registries) and the deprecated site-local fec0::/10.
Ranges the registry marks "globally reachable" inside a larger refused block (e.g. parts of 2001::/23) stay
refused: no image host lives there. IPv6 addresses that carry an IPv4 address are unwrapped and the IPv4 address
is judged instead (IPv4-mapped ``::ffff:a.b.c.d`` and the NAT64 well-known prefix ``64:ff9b::/96``); other
translation and tunnelling forms (IPv4-compatible ``::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32``, local-use
NAT64 ``64:ff9b:1::/48``) are refused outright. Finally any IPv6 address outside global unicast ``2000::/3`` is
refused (unassigned by IANA).
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV4_SPECIAL: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private use"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private use"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
)

IPV6_SPECIAL: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link local"),
    ("fec0::/10", "site local (deprecated)"),
    ("ff00::/8", "multicast"),
)

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

_V4 = tuple((ipaddress.IPv4Network(net), why) for net, why in IPV4_SPECIAL)
_V6 = tuple((ipaddress.IPv6Network(net), why) for net, why in IPV6_SPECIAL)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address stands for, else None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why ``address`` must not be contacted (``"10.0.0.0/8 private use"``), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.packed)  # drop any %scope
        inner = embedded_ipv4(address)
        if inner is not None:
            why = refusal(inner)
            return f"embeds {inner}: {why}" if why else None
        for network, why in _V6:
            if address in network:
                return f"{network} {why}"
        if address not in GLOBAL_UNICAST:
            return "outside global unicast 2000::/3"
        return None
    for network, why in _V4:
        if address in network:
            return f"{network} {why}"
    return None


def parse_ip(text: str) -> Address | None:
    """``text`` as an IP address (an IPv6 zone ``%eth0`` is dropped), or None if it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
