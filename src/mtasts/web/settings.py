"""The web app's settings, parsed once (by ``mtasts web serve`` or the embedding program)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mtasts.check.limits import DEFAULT_LIMITS, CheckLimits
from mtasts.net.asgi_limits import AsgiLimits
from mtasts.net.ratelimit import RateLimit
from mtasts.net.settings import NetworkSettings
from mtasts.publish.rollout import Rules
from mtasts.web.i18n import LANGUAGES

if TYPE_CHECKING:
    from mtasts.publish.config import ListenAddress

__all__ = ["PUBLIC_DEFAULTS", "PUBLIC_SERVE_LIMITS", "SERVE_LIMITS", "WebSettings"]


SERVE_LIMITS = AsgiLimits(max_connections=512)
"""What ``mtasts web serve`` lets one connection, one client and all clients hold, so that a
client opening sockets and sending half a request cannot keep them (or the server's memory) for
ever (:mod:`mtasts.net.asgi` enforces them): 512 connections in total, 32 per client, a head of
16 KiB within 10 s, a body that neither stalls 10 s nor comes slower than 1 KiB/s, keep-alive
connections idle 5 s; a client over a cap gets ``503`` with ``Retry-After: 5``. Behind a reverse
proxy (``--trusted-proxy``) every connection is the proxy's: only the total cap applies
(``behind_proxy``)."""

PUBLIC_SERVE_LIMITS = replace(SERVE_LIMITS, max_connections_per_client=8)
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
    serve: AsgiLimits = SERVE_LIMITS

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
