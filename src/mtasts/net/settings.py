"""Network settings, parsed once and passed explicitly to every adapter."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_TIMEOUT", "NetworkSettings", "parse_nameserver"]

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Where and how mtasts talks to the network.

    ``nameserver`` (IP, port) replaces the system resolver (internal DNS, the lab);
    ``ca_file`` replaces the system trust store (private CAs, the lab). ``https_port`` and
    ``smtp_port`` exist for testing only: RFC 8461 fixes 443 and 25. ``allow_private`` off
    refuses every address that is not globally reachable (:mod:`mtasts.core.addresses`: a
    hosted inspector must not be usable against its own network).
    """

    nameserver: tuple[str, int] | None = None
    ca_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    https_port: int = 443
    smtp_port: int = 25
    allow_private: bool = True
    ehlo_name: str = "mtasts.invalid"

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        for port in (self.https_port, self.smtp_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address → (ip, port)."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r} is not IP[:PORT]")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"{host!r} is not an IP address (give the nameserver as IP[:PORT])") from exc
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{port!r} is not a port number")
    return str(address), int(port)
