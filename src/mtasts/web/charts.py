"""Charts of the report pages as SVG text: data in, markup out. Pure (no I/O, no clock).

The pages inline the SVG, so a chart costs no request and needs no JavaScript. Every text is
escaped here (a sending organisation's name is whatever a report said). The SVG carries no
``style`` attribute (the Content-Security-Policy refuses inline styles): colours and fonts are
presentation attributes.

Colours are Okabe-Ito's, which stay distinguishable with the common colour-vision deficiencies,
and colour is never the only sign: failed sessions are hatched and successful ones solid, each
series is named in a legend with its swatch, and breakdown bars carry their label and value as
text. Each chart is a ``role="img"`` with a title and a description, and the page puts the same
numbers in a table beside it (the chart says where).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Final

__all__ = [
    "OKABE_ITO",
    "Bar",
    "DailyLabels",
    "DayBar",
    "Marker",
    "breakdown_svg",
    "daily_svg",
]

OKABE_ITO: Final = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky-blue": "#56B4E9",
    "bluish-green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish-purple": "#CC79A7",
}
_SUCCESS: Final = OKABE_ITO["bluish-green"]
_FAILURE: Final = OKABE_ITO["vermillion"]
_MARKER: Final = OKABE_ITO["blue"]
_INK: Final = "#1b1b1b"
_GRID: Final = "#d4d4d4"
_FONT: Final = 'system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif'

_WIDTH: Final = 720
_LEFT: Final = 64  # room for the y-axis numbers
_RIGHT: Final = 12
_ID: Final = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True, slots=True)
class DayBar:
    """One day's sessions (a day with no report has no bar: a gap, not a zero)."""

    day: date
    successful: int
    failed: int


@dataclass(frozen=True, slots=True)
class Marker:
    """A day to mark with a vertical line and a short label (the policy changed that day)."""

    day: date
    label: str


@dataclass(frozen=True, slots=True)
class DailyLabels:
    """The texts of :func:`daily_svg`, already in the page's language."""

    title: str
    description: str
    successful: str
    failed: str
    all_sessions: str
    failed_sessions: str
    no_data: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a breakdown: its label and its value (both drawn as text)."""

    label: str
    value: int


def _id(text: str) -> str:
    return _ID.sub("-", text.lower()) or "chart"


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: int) -> str:
    """1,234 / 12.3k / 4.5M / 2T: the axis labels stay short whatever the volume."""
    for unit, size in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9)):
        if value >= size:
            return f"{value / size:.0f}{unit}" if value >= 10 * size else f"{value / size:.1f}{unit}"
    if value >= 10_000_000:
        return f"{value / 1_000_000:.0f}M"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 100_000:
        return f"{value / 1000:.0f}k"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:,}"


def _defs(chart: str) -> str:
    """The hatch of the failed series (diagonal lines over a light tint of its colour)."""
    return (
        f'<defs><pattern id="{chart}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fbe3d3"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{_FAILURE}" stroke-width="3"/></pattern></defs>'
    )


def _open(chart: str, height: int, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart}" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{chart}-title {chart}-desc" font-family="{_text(_FONT)}" '
        f'font-size="12" fill="{_INK}">',
        f'<title id="{chart}-title">{_text(title)}</title>',
        f'<desc id="{chart}-desc">{_text(description)}</desc>',
        _defs(chart),
    ]


def _ceiling(value: int) -> int:
    """A round top for an axis at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def daily_svg(days: Sequence[DayBar], *, chart_id: str, labels: DailyLabels, markers: Sequence[Marker] = ()) -> str:
    """Sessions per day, two panels on one time axis: all sessions (successful solid, failed
    hatched, stacked), and failed sessions alone on their own scale, so that 3 failures beside
    50,000 successes still show. ``markers``: vertical lines with a label (a policy change)."""
    chart = _id(chart_id)
    height = 300
    parts = _open(chart, height, labels.title, labels.description)
    plot_width = _WIDTH - _LEFT - _RIGHT
    legend_y = 14
    parts.append(
        f'<g class="legend"><rect x="{_LEFT}" y="{legend_y - 10}" width="14" height="12" fill="{_SUCCESS}" '
        f'stroke="{_INK}" stroke-width="0.5"/><text x="{_LEFT + 20}" y="{legend_y}">{_text(labels.successful)}</text>'
        f'<rect x="{_LEFT + 200}" y="{legend_y - 10}" width="14" height="12" fill="url(#{chart}-hatch)" '
        f'stroke="{_FAILURE}"/><text x="{_LEFT + 220}" y="{legend_y}">{_text(labels.failed)}</text></g>'
    )
    if not days:
        parts.append(
            f'<text x="{_WIDTH / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">{_text(labels.no_data)}</text>'
        )
        parts.append("</svg>")
        return "".join(parts)
    first = min(d.day for d in days)
    last = max(d.day for d in days)
    span = (last - first).days + 1
    step = plot_width / span
    bar = max(step * 0.8, 0.5)
    panels = ((44, 140, labels.all_sessions, True), (214, 56, labels.failed_sessions, False))
    for top, panel_height, name, stacked in panels:
        peak = max((d.successful + d.failed if stacked else d.failed) for d in days)
        ceiling = _ceiling(peak)
        bottom = top + panel_height
        parts.append(
            f'<text x="{_LEFT}" y="{top - 4}" font-weight="600">{_text(name)}</text>'
            f'<line x1="{_LEFT}" y1="{bottom}" x2="{_WIDTH - _RIGHT}" y2="{bottom}" stroke="{_INK}"/>'
            f'<line x1="{_LEFT}" y1="{top}" x2="{_WIDTH - _RIGHT}" y2="{top}" stroke="{_GRID}"/>'
            f'<text x="{_LEFT - 6}" y="{top + 4}" text-anchor="end">{_number(ceiling)}</text>'
            f'<text x="{_LEFT - 6}" y="{bottom}" text-anchor="end">0</text>'
        )
        for point in days:
            x = _LEFT + (point.day - first).days * step + (step - bar) / 2
            failed_height = point.failed / ceiling * panel_height
            parts.append(f"<g><title>{_text(point.day.isoformat())}: {point.successful:,} / {point.failed:,}</title>")
            if stacked:
                ok_height = point.successful / ceiling * panel_height
                parts.append(
                    f'<rect x="{x:.2f}" y="{bottom - ok_height - failed_height:.2f}" width="{bar:.2f}" '
                    f'height="{ok_height:.2f}" fill="{_SUCCESS}"/>'
                )
            if point.failed:
                parts.append(
                    f'<rect x="{x:.2f}" y="{bottom - failed_height:.2f}" width="{bar:.2f}" '
                    f'height="{max(failed_height, 1.0):.2f}" fill="url(#{chart}-hatch)" stroke="{_FAILURE}" '
                    f'stroke-width="0.5"/>'
                )
            parts.append("</g>")
    axis_y = 290
    parts.append(f'<text x="{_LEFT}" y="{axis_y}">{first.isoformat()}</text>')
    if last != first:
        parts.append(f'<text x="{_WIDTH - _RIGHT}" y="{axis_y}" text-anchor="end">{last.isoformat()}</text>')
    for number, marker in enumerate(m for m in markers if first <= m.day <= last):
        x = _LEFT + (marker.day - first).days * step + step / 2
        label_y = 56 + 12 * (number % 3)
        parts.append(
            f'<g class="marker"><line x1="{x:.2f}" y1="44" x2="{x:.2f}" y2="270" stroke="{_MARKER}" '
            f'stroke-width="1.5" stroke-dasharray="4 3"/><text x="{x + 3:.2f}" y="{label_y}" fill="{_MARKER}">'
            f"{_text(marker.label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def breakdown_svg(bars: Sequence[Bar], *, chart_id: str, title: str, description: str, limit: int = 10) -> str:
    """Horizontal bars, largest first, each with its label and value as text; past ``limit``
    bars the rest are summed into one more bar labelled ``…`` (the table lists them all)."""
    chart = _id(chart_id)
    shown = sorted(bars, key=lambda b: (-b.value, b.label))
    if len(shown) > limit:
        rest = sum(b.value for b in shown[limit - 1 :])
        shown = [*shown[: limit - 1], Bar("…", rest)]
    row = 22
    height = max(row * len(shown) + 10, 40)
    parts = _open(chart, height, title, description)
    label_width = 260
    plot_width = _WIDTH - label_width - 90
    peak = max((b.value for b in shown), default=0) or 1
    for index, item in enumerate(shown):
        y = 6 + index * row
        width = item.value / peak * plot_width
        label = item.label if len(item.label) <= 40 else item.label[:39] + "…"
        parts.append(
            f"<g><title>{_text(item.label)}: {item.value:,}</title>"
            f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">{_text(label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{max(width, 1.0):.2f}" height="14" '
            f'fill="url(#{chart}-hatch)" stroke="{_FAILURE}" stroke-width="0.5"/>'
            f'<text x="{label_width + width + 6:.2f}" y="{y + 14}">{item.value:,}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
