"""The policy host's counters and their Prometheus text exposition (format 0.0.4).

Counting is plain dictionary work on the event loop; :func:`render_metrics` is pure (the
caller passes the current time and the gauges), so the exact text is testable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mtasts.net.admin import PROMETHEUS_TEXT as CONTENT_TYPE

__all__ = ["CONTENT_TYPE", "Gauges", "HostMetrics", "render_metrics"]


@dataclass(slots=True)
class HostMetrics:
    """What the host counts while it runs."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (domain, status)
    handshake_failures: Counter[str] = field(default_factory=Counter)  # reason
    reloads: Counter[str] = field(default_factory=Counter)  # "ok" / "failed"

    def request(self, domain: str, status: int) -> None:
        self.requests[(domain, status)] += 1

    def handshake_failed(self, reason: str) -> None:
        self.handshake_failures[reason] += 1


@dataclass(frozen=True, slots=True)
class Gauges:
    """The values read at scrape time."""

    generation: int
    served: int
    unserved: int
    connections: int
    refused: int
    certificates_loaded: int
    expiry: Mapping[str, datetime]
    unusable: Iterable[str]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(metrics: HostMetrics, gauges: Gauges, now: datetime) -> str:
    """The ``/metrics`` page."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{labels} {value:g}" if isinstance(value, float) else f"{name}{labels} {value}")

    family(
        "mtasts_publish_requests_total",
        "counter",
        "Requests answered, by policy domain and HTTP status.",
        (
            (f'{{domain="{_label(domain)}",status="{status}"}}', count)
            for (domain, status), count in sorted(metrics.requests.items())
        ),
    )
    family(
        "mtasts_publish_tls_handshake_failures_total",
        "counter",
        "TLS handshakes refused by the policy host, by reason (unknown_name, no_sni, certificate_unusable).",
        ((f'{{reason="{_label(reason)}"}}', count) for reason, count in sorted(metrics.handshake_failures.items())),
    )
    family(
        "mtasts_publish_certificate_days_left",
        "gauge",
        "Days until the certificate of each policy host expires (negative once expired).",
        (
            (f'{{name="{_label(name)}"}}', round((expiry - now).total_seconds() / 86400, 3))
            for name, expiry in sorted(gauges.expiry.items())
        ),
    )
    family(
        "mtasts_publish_certificate_unusable",
        "gauge",
        "1 for each policy host whose certificate or key cannot be loaded (it gets no policy).",
        ((f'{{name="{_label(name)}"}}', 1) for name in sorted(gauges.unusable)),
    )
    family(
        "mtasts_publish_domains",
        "gauge",
        "Configured domains, served or not (not: no certificate configured).",
        (('{state="served"}', gauges.served), ('{state="unserved"}', gauges.unserved)),
    )
    family("mtasts_publish_connections", "gauge", "Open connections.", (("", gauges.connections),))
    family(
        "mtasts_publish_connections_refused_total",
        "counter",
        "Connections turned away by the connection caps.",
        (("", gauges.refused),),
    )
    family(
        "mtasts_publish_certificates_loaded",
        "gauge",
        "Certificates loaded and kept in memory.",
        (("", gauges.certificates_loaded),),
    )
    family(
        "mtasts_publish_snapshot_generation",
        "gauge",
        "The generation of the served state (1 at start, +1 per successful reload).",
        (("", gauges.generation),),
    )
    family(
        "mtasts_publish_reloads_total",
        "counter",
        "Reloads, by result (ok, failed: the previous state kept).",
        ((f'{{result="{result}"}}', metrics.reloads[result]) for result in ("ok", "failed")),
    )
    return "\n".join(out) + "\n"
