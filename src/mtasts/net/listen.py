"""Where a server listens: an IP address and a port, as the policy host, its admin listener and
the resolver's ``inet:`` sockets are written (``IPv4:PORT`` or ``[IPv6]:PORT``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["ListenAddress", "parse_address"]


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """An IP address and a port to listen on (port 0: any free port, for tests)."""

    host: str
    port: int

    def to_text(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback


def parse_address(text: str) -> ListenAddress:
    """``IPv4:PORT`` or ``[IPv6]:PORT`` → :class:`ListenAddress`; raises ``ValueError`` saying why."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or ":" in host:
            raise ValueError(f"{text!r} is not HOST:PORT (write an IPv6 address in brackets: [::1]:8443)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (listen on addresses, e.g. 0.0.0.0:443 or [::]:443)") from None
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port number (0 to 65535)")
    if address.version == 6 and address.ipv4_mapped is not None:
        raise ValueError(f"{host!r} is an IPv4-mapped address; write the IPv4 address itself")
    return ListenAddress(str(address), int(port_text))
