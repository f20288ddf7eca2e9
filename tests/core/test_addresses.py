"""``--refuse-private``'s rule, range by range: every IANA special-purpose range (IPv4 and IPv6)
at its first and last address, and the IPv6 forms that carry an IPv4 address inside."""

from __future__ import annotations

import ipaddress

import pytest

from mtasts.core.addresses import SPECIAL_PURPOSE, embedded_ipv4, is_public_address, refusal_reason


def _edges(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    return [str(network.network_address), str(network.broadcast_address)]


def _expected(address: str) -> bool:
    """The registry's answer for the most specific range holding ``address``."""
    ip = ipaddress.ip_address(address)
    rows = [r for r in SPECIAL_PURPOSE if r.network.version == ip.version and ip in r.network]
    return max(rows, key=lambda r: r.network.prefixlen).globally_reachable


# (network, globally reachable) as the IANA registries publish them; the table under test must
# hold exactly these rows, so a row cannot silently disappear from it
IANA = {
    "0.0.0.0/8": False,
    "0.0.0.0/32": False,
    "10.0.0.0/8": False,
    "100.64.0.0/10": False,
    "127.0.0.0/8": False,
    "169.254.0.0/16": False,
    "172.16.0.0/12": False,
    "192.0.0.0/24": False,
    "192.0.0.0/29": False,
    "192.0.0.8/32": False,
    "192.0.0.9/32": True,
    "192.0.0.10/32": True,
    "192.0.0.170/32": False,
    "192.0.0.171/32": False,
    "192.0.2.0/24": False,
    "192.31.196.0/24": True,
    "192.52.193.0/24": True,
    "192.88.99.0/24": False,
    "192.168.0.0/16": False,
    "192.175.48.0/24": True,
    "198.18.0.0/15": False,
    "198.51.100.0/24": False,
    "203.0.113.0/24": False,
    "240.0.0.0/4": False,
    "255.255.255.255/32": False,
    "224.0.0.0/4": False,
    "::1/128": False,
    "::/128": False,
    "::ffff:0:0/96": False,
    "64:ff9b::/96": True,
    "64:ff9b:1::/48": False,
    "100::/64": False,
    "100:0:0:1::/64": False,
    "2001::/23": False,
    "2001::/32": True,
    "2001:1::1/128": True,
    "2001:1::2/128": True,
    "2001:1::3/128": True,
    "2001:2::/48": False,
    "2001:3::/32": True,
    "2001:4:112::/48": True,
    "2001:10::/28": False,
    "2001:20::/28": True,
    "2001:30::/28": True,
    "2001:db8::/32": False,
    "2002::/16": True,
    "2620:4f:8000::/48": True,
    "3fff::/20": False,
    "5f00::/16": False,
    "fc00::/7": False,
    "fe80::/10": False,
    "ff00::/8": False,
}


def test_the_table_is_the_registry() -> None:
    assert {str(r.network): r.globally_reachable for r in SPECIAL_PURPOSE} == IANA


# the IPv6 prefixes whose verdict depends on the IPv4 inside (checked separately below)
_CARRIERS = [ipaddress.IPv6Network(n) for n in ("::ffff:0:0/96", "64:ff9b::/96", "2001::/32", "2002::/16")]


def _carried(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.version == 6 and any(ip in network for network in _CARRIERS)


@pytest.mark.parametrize(
    "address",
    [a for net in IANA for a in _edges(ipaddress.ip_network(net)) if not _carried(a)],
)
def test_every_special_purpose_range_at_both_ends(address: str) -> None:
    assert is_public_address(address) is _expected(address), refusal_reason(address)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # the defects of the issue: all reached before
        ("100.64.0.1", False),
        ("100.100.100.200", False),  # cloud metadata
        ("192.0.0.1", False),
        ("192.0.0.200", False),
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        # IPv4 wrapped in IPv6, judged by the IPv4 inside
        ("::ffff:10.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:100.64.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b:1::808:808", False),  # local-use NAT64 never leaves its network
        ("2002:c0a8:0101::1", False),  # 6to4 of 192.168.1.1
        ("2002:6440:0001::1", False),  # 6to4 of 100.64.0.1
        ("2002:0808:0808::1", True),  # 6to4 of 8.8.8.8
        # Teredo: server in bits 32-63, client = last 32 bits XOR 0xffffffff
        ("2001:0:808:808:0:0:f7f7:f7f7", True),  # server 8.8.8.8, client 8.8.8.8
        ("2001:0:a00:1:0:0:f7f7:f7f7", False),  # server 10.0.0.1
        ("2001:0:808:808:0:0:f5ff:fffe", False),  # client 10.0.0.1
        ("2001:0:808:808:0:0:80ff:fffe", False),  # client 127.0.0.1
        # ordinary addresses, and what lies outside every registry
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("2a00:1450:4001::1", True),
        ("4000::1", False),  # not allocated: outside 2000::/3
        ("::8.8.8.8", False),  # deprecated IPv4-compatible form
        ("fec0::1", False),  # deprecated site-local
        ("fe80::1%eth0", False),
        ("not an address", False),
    ],
)
def test_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public, refusal_reason(address)


def test_the_reason_names_the_range_and_the_inner_address() -> None:
    assert refusal_reason("100.100.100.200") == (
        "100.100.100.200 is in 100.64.0.0/10 (shared address space (carrier-grade NAT, cloud metadata), RFC 6598)"
    )
    why = refusal_reason("2002:a00:1::1")
    assert why is not None
    assert "10.0.0.1" in why
    assert "10.0.0.0/8" in why


def test_embedded_ipv4() -> None:
    teredo = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")  # RFC 4380's example
    assert [str(a) for _, a in embedded_ipv4(teredo)] == ["65.54.227.120", "192.0.2.45"]
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) == ()
