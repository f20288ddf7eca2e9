"""What an HTTP/1.1 server of :mod:`mtasts.net.asgi` bounds, apart from the server itself.

A module of its own, with no uvicorn in it, so that the settings of an app that is served
through :mod:`mtasts.net.asgi` (``mtasts.web.settings``) can hold its bounds without importing
the server: an embedding program that mounts the app never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mtasts.net.server import ServerLimits

__all__ = ["DEFAULT_ASGI_LIMITS", "KIB", "AsgiLimits"]

KIB: Final = 1024


@dataclass(frozen=True, slots=True)
class AsgiLimits:
    """What one HTTP/1.1 server bounds; times are seconds, sizes bytes.

    ``behind_proxy``: every connection comes from a reverse proxy, so a per-client cap would be
    a second total cap: only ``max_connections`` applies then.
    """

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    min_body_rate: float = 1 * KIB
    keep_alive_timeout: int = 5
    max_head: int = 16 * KIB
    max_connections: int = 256
    max_connections_per_client: int = 32
    handshake_timeout: float = 10.0
    close_timeout: float = 5.0
    retry_after: int = 5
    behind_proxy: bool = False

    def __post_init__(self) -> None:
        positive = [
            *("header_timeout", "body_timeout", "keep_alive_timeout", "max_head", "max_connections"),
            *("max_connections_per_client", "handshake_timeout", "close_timeout", "retry_after"),
        ]
        wrong = [name for name in positive if not getattr(self, name) > 0]
        if wrong or self.min_body_rate < 0:
            raise ValueError(f"must be positive: {', '.join(wrong) or 'min_body_rate'}")

    def server_limits(self) -> ServerLimits:
        """The connection caps: handshakes in progress and open connections by the same two
        numbers; behind a proxy only the total."""
        total = self.max_connections
        per_client = total if self.behind_proxy else self.max_connections_per_client
        return ServerLimits(
            handshake_timeout=self.handshake_timeout,
            close_timeout=self.close_timeout,
            max_connections=total,
            max_connections_per_client=per_client,
            max_handshakes=total,
            max_handshakes_per_client=per_client,
        )


DEFAULT_ASGI_LIMITS: Final = AsgiLimits()
