"""What a socketmap key is, decided without any network work.

Postfix hands the daemon its next-hop verbatim, never lower-cased, in several shapes. Only a
plain mail domain can have an MTA-STS policy (RFC 8461 §4: the policy is the recipient
domain's); every other shape is answered ``NOTFOUND`` at once:

==========================  ==========================================  =====================
key                         what it is                                  kind
==========================  ==========================================  =====================
``Example.COM.``            a mail domain (lower-cased, root dot off,   ``DOMAIN``
                            U-labels to A-labels)
``.example.com``            Postfix's parent-domain probe, asked after  ``PARENT_PROBE``
                            every NOTFOUND for a plain domain
``192.0.2.1``, ``2001:db8::1``  an IP literal                           ``ADDRESS``
``[mx.example.com]``,       a next-hop with MX lookups off (or an       ``BRACKETED``
``[mx.example.com]:587``    address literal)
``mx.example.com:587``      a next-hop with a port                      ``HOST_PORT``
``localhost``               one label: no public mail domain with       ``SINGLE_LABEL``
                            MTA-STS is a bare TLD
anything else               not a host name                             ``INVALID``
==========================  ==========================================  =====================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from mtasts.core.hostname import check_host_name, to_alabel

__all__ = ["Key", "KeyKind", "classify_key"]


class KeyKind(StrEnum):
    DOMAIN = "domain"
    PARENT_PROBE = "parent-probe"
    ADDRESS = "address"
    BRACKETED = "bracketed"
    HOST_PORT = "host-port"
    SINGLE_LABEL = "single-label"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Key:
    """A classified key; ``domain`` (A-labels, lower case) only for :attr:`KeyKind.DOMAIN`."""

    kind: KeyKind
    domain: str | None = None

    @property
    def is_domain(self) -> bool:
        return self.kind is KeyKind.DOMAIN


_NOT_A_DOMAIN = {kind: Key(kind) for kind in KeyKind if kind is not KeyKind.DOMAIN}


def classify_key(raw: str) -> Key:
    """The kind of ``raw`` and, for a mail domain, its canonical form."""
    if not raw:
        return _NOT_A_DOMAIN[KeyKind.INVALID]
    first = raw[0]
    if first == ".":
        return _NOT_A_DOMAIN[KeyKind.PARENT_PROBE]
    if first == "[":
        return _NOT_A_DOMAIN[KeyKind.BRACKETED]
    if ":" in raw:  # host:port, or an IPv6 literal
        return _NOT_A_DOMAIN[KeyKind.ADDRESS if _is_address(raw) else KeyKind.HOST_PORT]
    name = to_alabel(raw)
    if name is None or not name:
        return _NOT_A_DOMAIN[KeyKind.INVALID]
    if "." not in name:
        return _NOT_A_DOMAIN[KeyKind.SINGLE_LABEL]
    if name[-1].isdigit() and _is_address(name):
        return _NOT_A_DOMAIN[KeyKind.ADDRESS]
    if check_host_name(name) is not None:
        return _NOT_A_DOMAIN[KeyKind.INVALID]
    return Key(KeyKind.DOMAIN, name)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
