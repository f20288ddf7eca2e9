"""Which addresses a hosted inspector may connect to: only globally reachable ones.

``--refuse-private`` exists so that ``mtasts check`` run as a service cannot be pointed at its
own network (SSRF). "Private" is the wrong test: 100.64.0.0/10 (carrier-grade NAT, where cloud
metadata services live, e.g. 100.100.100.200), 192.0.0.0/24 and the documentation ranges are
not private in :mod:`ipaddress`' sense, yet nothing on the internet lives there; and an IPv6
address can wrap an IPv4 one (6to4, Teredo, NAT64, IPv4-mapped) that the kernel or a relay
then reaches. So the rule is:

1. the address is judged by the most specific entry of the IANA special-purpose registries
   (:data:`SPECIAL_PURPOSE`, IPv4 and IPv6, as published in 2025) that contains it: an entry
   not marked globally reachable refuses it; multicast and, for IPv6, everything outside the
   global unicast space 2000::/3 are refused too;
2. an IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64
   64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32 with its server and its client address) is
   public only if every IPv4 address inside is public by rule 1. The local-use NAT64 prefix
   64:ff9b:1::/48 is refused outright (RFC 8215: it never leaves its network).

The table is ours, not :mod:`ipaddress`' ``is_global``, because that one changes between
Python versions (3.11 still calls 192.0.0.0/24 and 2001::/23 partly global, partly private).
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache

__all__ = ["SPECIAL_PURPOSE", "SpecialRange", "embedded_ipv4", "is_public_address", "refusal_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """One row of an IANA special-purpose address registry."""

    network: Network
    name: str
    reference: str
    globally_reachable: bool


def _row(network: str, name: str, reference: str, reachable: bool = False) -> SpecialRange:
    return SpecialRange(ipaddress.ip_network(network), name, reference, reachable)


SPECIAL_PURPOSE: tuple[SpecialRange, ...] = (
    # IANA IPv4 Special-Purpose Address Registry
    _row("0.0.0.0/8", '"this network"', "RFC 791"),
    _row("0.0.0.0/32", '"this host on this network"', "RFC 1122"),
    _row("10.0.0.0/8", "private use", "RFC 1918"),
    _row("100.64.0.0/10", "shared address space (carrier-grade NAT, cloud metadata)", "RFC 6598"),
    _row("127.0.0.0/8", "loopback", "RFC 1122"),
    _row("169.254.0.0/16", "link-local", "RFC 3927"),
    _row("172.16.0.0/12", "private use", "RFC 1918"),
    _row("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    _row("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
    _row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    _row("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723", True),
    _row("192.0.0.10/32", "TURN anycast", "RFC 8155", True),
    _row("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880"),
    _row("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880"),
    _row("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    _row("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    _row("192.52.193.0/24", "AMT", "RFC 7450", True),
    _row("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    _row("192.168.0.0/16", "private use", "RFC 1918"),
    _row("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534", True),
    _row("198.18.0.0/15", "benchmarking", "RFC 2544"),
    _row("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    _row("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    _row("240.0.0.0/4", "reserved", "RFC 1112"),
    _row("255.255.255.255/32", "limited broadcast", "RFC 919"),
    _row("224.0.0.0/4", "multicast", "RFC 5771"),  # its own registry; never a TCP peer
    # IANA IPv6 Special-Purpose Address Registry
    _row("::1/128", "loopback", "RFC 4291"),
    _row("::/128", "unspecified", "RFC 4291"),
    _row("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),  # judged by the IPv4 inside, see below
    _row("64:ff9b::/96", "IPv4/IPv6 translation (NAT64)", "RFC 6052", True),  # and by the IPv4 inside
    _row("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
    _row("100::/64", "discard-only", "RFC 6666"),
    _row("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
    _row("2001::/23", "IETF protocol assignments", "RFC 2928"),
    _row("2001::/32", "Teredo", "RFC 4380", True),  # and by the IPv4 addresses inside
    _row("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723", True),
    _row("2001:1::2/128", "TURN anycast", "RFC 8155", True),
    _row("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665", True),
    _row("2001:2::/48", "benchmarking", "RFC 5180"),
    _row("2001:3::/32", "AMT", "RFC 7450", True),
    _row("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    _row("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
    _row("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    _row("2001:30::/28", "drone remote ID protocol entity tags", "RFC 9374", True),
    _row("2001:db8::/32", "documentation", "RFC 3849"),
    _row("2002::/16", "6to4", "RFC 3056", True),  # and by the IPv4 inside
    _row("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534", True),
    _row("3fff::/20", "documentation", "RFC 9637"),
    _row("5f00::/16", "segment routing SIDs", "RFC 9602"),
    _row("fc00::/7", "unique local", "RFC 4193"),
    _row("fe80::/10", "link-local unicast", "RFC 4291"),
    _row("ff00::/8", "multicast", "RFC 4291"),  # its own registry; never a TCP peer
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[tuple[str, ipaddress.IPv4Address], ...]:
    """The IPv4 addresses an IPv6 address carries, each with what it is: IPv4-mapped and
    NAT64 (the last 32 bits), 6to4 (bits 16-47), Teredo (server: bits 32-63; client: the
    last 32 bits, inverted)."""
    value = int(ip)
    if ip in _MAPPED or ip in _NAT64:
        return (("the IPv4 address inside", ipaddress.IPv4Address(value & 0xFFFFFFFF)),)
    if ip in _SIX_TO_FOUR:
        return (("the 6to4 IPv4 address", ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)),)
    if ip in _TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address((value & 0xFFFFFFFF) ^ 0xFFFFFFFF)
        return (("the Teredo server", server), ("the Teredo client", client))
    return ()


def _most_specific(ip: IPAddress) -> SpecialRange | None:
    best: SpecialRange | None = None
    for row in _rows(ip.version):
        if ip in row.network and (best is None or row.network.prefixlen > best.network.prefixlen):
            best = row
    return best


@cache
def _rows(version: int) -> tuple[SpecialRange, ...]:
    return tuple(row for row in SPECIAL_PURPOSE if row.network.version == version)


def refusal_reason(address: str | IPAddress) -> str | None:
    """Why ``address`` must not be contacted by a hosted inspector, or ``None`` when it is
    globally reachable. A string that is not an IP address is refused (with the reason)."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return f"{ip} has a zone index (a link-local scope)"
    row = _most_specific(ip)
    if row is not None and not row.globally_reachable and row.network not in (_MAPPED,):
        return f"{ip} is in {row.network} ({row.name}, {row.reference})"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip not in _GLOBAL_UNICAST and ip not in _MAPPED and ip not in _NAT64:
            return f"{ip} is outside the IPv6 global unicast space 2000::/3"
        for what, inner in embedded_ipv4(ip):
            why = refusal_reason(inner)
            if why is not None:
                return f"{ip} carries {what} {inner}, and {why}"
    return None


def is_public_address(address: str | IPAddress) -> bool:
    """True only for globally reachable addresses (see the module docstring for the rule)."""
    return refusal_reason(address) is None
