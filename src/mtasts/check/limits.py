"""What checking one domain may cost: the caps and the time budget, with their defaults.

Apart from the inspector so that the CLI can show the defaults in ``--help`` without importing
the inspector (dnspython, cryptography, h11), which it loads only when a check runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtasts.net.settings import NetworkSettings

__all__ = ["DEFAULT_LIMITS", "DEFAULT_MAX_ADDRESSES", "DEFAULT_MAX_MX_HOSTS", "DOMAIN_TIMEOUT_FACTOR", "CheckLimits"]

DEFAULT_MAX_MX_HOSTS = 10
"""MX hosts probed per domain, most preferred first. Senders never go that far: Postfix tries
at most 5 addresses per delivery (``smtp_mx_address_limit``), so an eleventh MX only ever
matters to a checker, and 500 MX records must not cost 500 probes."""
DEFAULT_MAX_ADDRESSES = 4
"""Addresses probed per MX host, IPv4 and IPv6 taken in turn so that both paths are seen."""
DOMAIN_TIMEOUT_FACTOR = 4
"""The default per-domain budget is this many ``--timeout``s: the longest chain of waits is
three (the MX lookup, the MX host's address lookup, the probe), plus one for waiting for a
free probe slot in a bulk run."""


@dataclass(frozen=True, slots=True)
class CheckLimits:
    """What one domain may cost. ``domain_timeout`` ``None``: ``DOMAIN_TIMEOUT_FACTOR`` times the
    network timeout."""

    domain_timeout: float | None = None
    max_mx_hosts: int = DEFAULT_MAX_MX_HOSTS
    max_addresses: int = DEFAULT_MAX_ADDRESSES

    def __post_init__(self) -> None:
        if self.domain_timeout is not None and self.domain_timeout <= 0:
            raise ValueError("the domain timeout must be positive")
        if self.max_mx_hosts < 1 or self.max_addresses < 1:
            raise ValueError("at least one MX host and one address must be probed")

    def budget(self, settings: NetworkSettings) -> float:
        return self.domain_timeout if self.domain_timeout is not None else DOMAIN_TIMEOUT_FACTOR * settings.timeout


DEFAULT_LIMITS = CheckLimits()
