"""The SVG charts: data in, escaped markup out; never colour alone, nothing from elsewhere."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from mtasts.web.charts import OKABE_ITO, Bar, DailyLabels, DayBar, Marker, breakdown_svg, daily_svg

LABELS = DailyLabels(
    "Sessions", "Same numbers below.", "Successful", "Failed (hatched)", "All", "Failed only", "No data"
)
SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_daily_chart_stacks_days_and_leaves_gaps() -> None:
    first = date(2026, 11, 1)
    days = [DayBar(first, 90, 10), DayBar(first + timedelta(days=2), 50, 0)]
    svg = daily_svg(days, chart_id="chart-daily", labels=LABELS)
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Sessions"  # type: ignore[union-attr]
    groups = [g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None]
    tooltips = [g.find(f"{SVG}title").text for g in groups]  # type: ignore[union-attr]
    # two panels (all sessions, failed only), one group per reported day each: the gap has none
    assert tooltips == ["2026-11-01: 90 / 10", "2026-11-03: 50 / 0"] * 2
    assert "2026-11-01" in svg
    assert "2026-11-03" in svg
    assert OKABE_ITO["bluish-green"] in svg
    assert OKABE_ITO["vermillion"] in svg
    assert 'fill="url(#chart-daily-hatch)"' in svg  # failures hatched, not only coloured
    assert ">Successful<" in svg
    assert ">Failed (hatched)<" in svg


def test_text_is_escaped_and_nothing_is_styled_inline_or_fetched() -> None:
    hostile = '<script>alert("x")</script> & "quotes"'
    svg = breakdown_svg([Bar(hostile, 3), Bar("ok", 1)], chart_id='x" onload="evil', title=hostile, description="d")
    _parse(svg)
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'onload="' not in svg
    assert "style=" not in svg  # the pages' CSP refuses inline styles
    assert not re.search(r'(href|src)="(?!#)', svg)
    daily = daily_svg(
        [DayBar(date(2026, 1, 1), 1, 1)], chart_id="d", labels=LABELS, markers=[Marker(date(2026, 1, 1), hostile)]
    )
    assert "&lt;script&gt;" in daily
    assert "style=" not in daily


def test_breakdown_labels_every_bar_and_sums_the_rest() -> None:
    bars = [Bar(f"sender {n}", 100 - n) for n in range(15)]
    svg = breakdown_svg(bars, chart_id="orgs", title="By sender", description="d", limit=5)
    _parse(svg)
    assert ">sender 0<" in svg
    assert ">100<" in svg
    assert ">sender 5<" not in svg
    assert ">…<" in svg
    assert f">{sum(100 - n for n in range(4, 15)):,}<" in svg


def test_empty_and_huge() -> None:
    assert ">No data<" in daily_svg([], chart_id="e", labels=LABELS)
    big = daily_svg([DayBar(date(2026, 1, 1), 3 * 10**12, 5)], chart_id="b", labels=LABELS)
    assert ">5.0T<" in big  # a short axis label (the top of 3 * 10^12 rounds to 5 * 10^12)
    year = [DayBar(date(2025, 1, 1) + timedelta(days=n), 10, n % 2) for n in range(365)]
    assert _parse(daily_svg(year, chart_id="y", labels=LABELS)).get("viewBox") == "0 0 720 300"
