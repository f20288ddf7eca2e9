"""The monitor's Prometheus text exposition (format 0.0.4) and its admin listener.

:func:`render_metrics` is pure (the statuses and the time are passed in), so the exact text is
testable. :class:`AdminServer` serves it as ``GET /metrics`` beside ``GET /healthz`` over
plain HTTP, on the admin listener every daemon shares (:mod:`mtasts.net.admin`: capped
connections, an 8 KiB head, timeouts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from mtasts.core.problems import Severity
from mtasts.monitor.service import DomainStatus
from mtasts.net.admin import PROMETHEUS_TEXT as CONTENT_TYPE
from mtasts.net.admin import AdminListener
from mtasts.net.http11 import HttpRequest, HttpResponse

__all__ = ["CONTENT_TYPE", "STATUS_VALUES", "AdminServer", "render_metrics"]

STATUS_VALUES: Mapping[str, int] = {"ok": 0, "warning": 1, "error": 2, "unknown": 3}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in labels.items()) + "}"


def render_metrics(statuses: Mapping[str, DomainStatus], *, now: datetime, failed_runs: int = 0) -> str:
    """The ``/metrics`` page: per domain its status, days to each certificate's expiry, the
    TLS-report success rate and the open events by severity."""
    out: list[str] = []
    ordered = [statuses[name] for name in sorted(statuses)]

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float | int]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{labels} {value:.15g}" if isinstance(value, float) else f"{name}{labels} {value}")

    family(
        "mtasts_monitor_domain_status",
        "gauge",
        "The latest check of each domain: 0 ok, 1 warning, 2 error, 3 unknown (inconclusive run).",
        ((_labels(domain=s.domain), STATUS_VALUES[s.status]) for s in ordered),
    )
    family(
        "mtasts_monitor_last_check_timestamp_seconds",
        "gauge",
        "When each domain was last checked (Unix time).",
        ((_labels(domain=s.domain), float(round(s.checked_at.timestamp(), 3))) for s in ordered),
    )
    family(
        "mtasts_monitor_check_duration_seconds",
        "gauge",
        "How long the latest check of each domain took.",
        ((_labels(domain=s.domain), float(round(s.elapsed, 3))) for s in ordered),
    )
    family(
        "mtasts_monitor_certificate_days_left",
        "gauge",
        "Days until each certificate seen at the latest check expires (role policy or mx; negative once expired).",
        (
            (_labels(domain=s.domain, role=role, host=host), float(round((not_after - now).total_seconds() / 86400, 3)))
            for s in ordered
            for role, host, not_after in s.certificates
        ),
    )
    family(
        "mtasts_monitor_tlsrpt_success_rate",
        "gauge",
        "Share of successful sessions in the stored TLS reports of the last days (absent: no sessions).",
        ((_labels(domain=s.domain), float(round(s.success_rate, 6))) for s in ordered if s.success_rate is not None),
    )
    family(
        "mtasts_monitor_open_events",
        "gauge",
        "Events open for each domain, by severity.",
        (
            (_labels(domain=s.domain, severity=severity.value), s.open_events.get(severity.value, 0))
            for s in ordered
            for severity in Severity
        ),
    )
    family("mtasts_monitor_domains", "gauge", "Domains checked since the monitor started.", (("", len(ordered)),))
    family(
        "mtasts_monitor_failed_runs_total",
        "counter",
        "Runs that could not be completed or stored (database trouble, a bug), each logged.",
        (("", failed_runs),),
    )
    return "\n".join(out) + "\n"


class AdminServer(AdminListener):
    """``GET /metrics`` (``page()``) and ``GET /healthz``; nothing is bound before :meth:`start`."""

    def __init__(self, page: Callable[[], str], host: str, port: int) -> None:
        super().__init__("monitor admin", self.app, host, port)
        self.page = page

    async def app(self, request: HttpRequest) -> HttpResponse:
        if request.path not in ("/metrics", "/healthz"):
            return HttpResponse(404, b"not found: GET /metrics, GET /healthz\n")
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"method not allowed\n", (("Content-Type", "text/plain"), ("Allow", "GET, HEAD")))
        if request.path == "/healthz":
            return HttpResponse(200, b"ok\n")
        return HttpResponse(200, self.page().encode(), (("Content-Type", CONTENT_TYPE),))
