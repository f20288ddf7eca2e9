"""The web app's settings, parsed once (by ``mtasts web serve`` or the embedding program)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mtasts.check.limits import DEFAULT_LIMITS, CheckLimits
from mtasts.net.ratelimit import RateLimit
from mtasts.net.settings import NetworkSettings
from mtasts.publish.rollout import Rules
from mtasts.web.i18n import LANGUAGES

if TYPE_CHECKING:
    from mtasts.publish.config import ListenAddress

__all__ = ["PUBLIC_DEFAULTS", "PUBLIC_SERVE_LIMITS", "ServeLimits", "WebSettings"]


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """What ``mtasts web serve`` lets one connection, one client and all clients hold (times in
    seconds, sizes in bytes), so that a client opening sockets and sending half a request cannot
    keep them (or the server's memory) for ever; :mod:`mtasts.net.asgi` enforces them.

    A client over ``max_connections_per_client`` open connections, or any client once
    ``max_connections`` are open, gets ``503`` with ``Retry-After: retry_after`` and is closed; a
    request head not complete within ``header_timeout`` gets ``408``, one over ``max_head``
    ``431``; a body must not stall ``body_timeout`` nor come slower than ``min_body_rate``
    bytes/s; an idle keep-alive connection closes after ``keep_alive_timeout``. Behind a reverse
    proxy (``--trusted-proxy``) every connection is the proxy's: only the total cap applies.
    """

    max_connections: int = 512
    max_connections_per_client: int = 32
    max_head: int = 16 * 1024
    header_timeout: float = 10.0
    keep_alive_timeout: int = 5
    body_timeout: float = 10.0
    min_body_rate: float = 1024.0
    retry_after: int = 5

    def __post_init__(self) -> None:
        numbers = ("max_connections", "max_connections_per_client", "max_head", "header_timeout")
        wrong = [n for n in (*numbers, "keep_alive_timeout", "body_timeout", "retry_after") if getattr(self, n) <= 0]
        if wrong or self.min_body_rate < 0:
            raise ValueError(f"must be positive: {', '.join(wrong) or 'min_body_rate'}")


PUBLIC_SERVE_LIMITS = ServeLimits(max_connections_per_client=8)
"""An internet-facing inspector's: a browser opens up to six connections to a site, so eight per
client leave it room while sixty-four clients still find a slot."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the inspector pages check domains and what they keep.

    ``public``: an internet-facing inspector. Its checks never connect to an address that is
    not globally reachable, whatever ``network`` says (:attr:`check_network`); each client and
    all clients together are rate limited; a domain checked within ``reuse_seconds`` gets the
    result already known. Results live only in memory, at most ``max_results`` of them for at
    most ``keep_seconds``: nothing about anonymous checks is written anywhere.
    ``max_checks`` checks run at once, ``max_waiting`` more may wait for a slot.
    """

    network: NetworkSettings = field(default_factory=NetworkSettings)
    limits: CheckLimits = DEFAULT_LIMITS
    expiry_warning_days: float = 14
    public: bool = False
    language: str = "en"
    per_client: RateLimit = field(default_factory=lambda: RateLimit(per_minute=10, burst=5))
    total: RateLimit = field(default_factory=lambda: RateLimit(per_minute=120, burst=30))
    reuse_seconds: float = 0.0
    keep_seconds: float = 24 * 3600.0
    max_results: int = 1000
    max_checks: int = 16
    max_waiting: int = 64
    db: str | None = None  # the report store's URL (the dashboard and domain pages); None: no store
    publish_config: Path | None = None  # mtasts publish's configuration (the domain page's roll-out state)
    # the running policy host's admin listener, which the publish actions reload (mtasts.web.actions):
    # None is the configuration's [server] admin; publish_admin_off: none (reload it by hand)
    publish_admin: ListenAddress | None = None
    publish_admin_off: bool = False
    # the guards' thresholds of the publish actions (mtasts publish apply's --testing-days, --reporters)
    publish_rules: Rules = field(default_factory=Rules)
    # what `mtasts web serve` bounds per connection and client (not used by an embedding program)
    serve: ServeLimits = field(default_factory=ServeLimits)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"no pages in language {self.language!r} (choose from {', '.join(LANGUAGES)})")
        if self.max_results < 1 or self.max_checks < 1 or self.max_waiting < 0:
            raise ValueError("max_results and max_checks must be at least 1, max_waiting at least 0")
        if self.reuse_seconds < 0 or self.keep_seconds <= 0:
            raise ValueError("reuse_seconds must be at least 0 and keep_seconds positive")

    @property
    def check_network(self) -> NetworkSettings:
        """The network settings checks run with: a public inspector refuses private addresses
        (the SSRF guard), so it cannot be turned against the network it runs in."""
        return replace(self.network, allow_private=False) if self.public else self.network


PUBLIC_DEFAULTS = {
    "reuse_seconds": 300.0,
    "keep_seconds": 3600.0,
    "max_checks": 8,
    "max_waiting": 32,
    "serve": PUBLIC_SERVE_LIMITS,
}
"""What ``--public`` changes besides the SSRF guard and rate limits: a domain checked in the last
5 minutes is answered from memory, results are forgotten after an hour, and each client may
hold fewer connections (:data:`PUBLIC_SERVE_LIMITS`)."""
