"""Benchmark of the web pages over a large report store: the dashboard and the domain page.

Run from the repository root with mtasts installed::

    python bench/web.py                  # 1,000,000 session rows (builds the store: about a minute)
    python bench/web.py --rows 100000    # quicker
    python bench/web.py --db sqlite:////tmp/m1.sqlite3   # reuse a store built before
    python bench/web.py --json

The store is filled with bench/report.py's generated reports (``session_reports``: 30 senders,
100 domains, 90 days, half the reports with both an ``sts`` and a ``tlsa`` policy, failures
concentrated on a tenth of the sender-domain pairs) until the *session rows* (policy results
plus failure details) reach ``--rows``. The app runs in this process and is called over ASGI
(httpx), so the figures are the server's: routing, reading the store, the analysis, the charts
and the template, without a network.

Each page is timed ``--runs`` times, two ways:

* ``cold``: the view's cache is emptied before each request, so each one reads the store and
  computes everything (the first view after new reports arrive);
* ``warm``: the cached view (the store has not changed), i.e. the charts and the template only.

Goal (issue 13): the dashboard and the domain page render in < 300 ms p99 over 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report as report_bench  # bench/report.py: the generated reports (bench/ is not a package)
from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app

GOAL_P99 = 0.300
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # just after the generated 90 days (from 2026-09-01)
PAGES = {
    "dashboard, every domain, all stored": "/reports",
    "dashboard, every domain, last 30 days": "/reports?days=30",
    "dashboard, one domain, all stored": "/reports/d7.example",
    "dashboard, one domain, last 30 days": "/reports/d7.example?days=30",
    "domain page, all stored": "/domains/d7.example",
    "domain page, last 30 days": "/domains/d7.example?days=30",
    "JSON, every domain, all stored": "/api/reports",
}


def fill(url: str, rows: int) -> dict[str, Any]:
    start = time.perf_counter()
    reports = 0
    with ReportStore(url) as store:
        batch = []
        for report in report_bench.session_reports(rows):
            batch.append(report)
            if len(batch) == 5000:
                store.add_reports(batch, source="bench", now=report_bench.NOW)
                reports += len(batch)
                batch = []
        store.add_reports(batch, source="bench", now=report_bench.NOW)
        reports += len(batch)
    return {"reports": reports, "fill_seconds": time.perf_counter() - start}


def _quantile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, runs: int) -> dict[str, Any]:
    app = create_app(WebSettings(db=url, publish_config=Path("/nonexistent/publish.toml")))
    service = app.state.reports
    service.clock = lambda: NOW
    transport = httpx.ASGITransport(app=app)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        for name, path in PAGES.items():
            response = await client.get(path)  # warm-up: opens the store, fills caches
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            timings: dict[str, list[float]] = {"cold": [], "warm": []}
            for mode in ("cold", "warm"):
                for _ in range(runs):
                    if mode == "cold":
                        service._views.clear()
                    begin = time.perf_counter()
                    response = await client.get(path)
                    timings[mode].append(time.perf_counter() - begin)
                    assert response.status_code == 200
            results[name] = {
                "path": path,
                "bytes": len(response.content),
                **{
                    mode: {
                        "p50_ms": statistics.median(t) * 1000,
                        "p99_ms": _quantile(t, 0.99) * 1000,
                        "max_ms": max(t) * 1000,
                    }
                    for mode, t in timings.items()
                },
            }
    service.close()
    await app.state.checks.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="session rows to generate (default 1,000,000)")
    parser.add_argument("--db", help="an existing store to read instead of generating one")
    parser.add_argument("--runs", type=int, default=20, help="requests per page and mode (default 20)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mtasts-bench-web-") as folder:
        url = options.db or f"sqlite:///{Path(folder) / 'reports.sqlite3'}"
        if options.db is None:
            info = fill(url, options.rows)
        info["session_rows"] = None if options.db else options.rows
        results = asyncio.run(measure(url, options.runs))
    if options.json:
        print(json.dumps({"store": info, "pages": results}, indent=2))
        return 0
    print(f"store: {url if options.db else 'fresh SQLite'}, {info}")
    print(f"{'page':<40} {'cold p50':>9} {'cold p99':>9} {'warm p50':>9} {'warm p99':>9}  goal p99 < 300 ms (cold)")
    for name, figures in results.items():
        cold, warm = figures["cold"], figures["warm"]
        met = "yes" if cold["p99_ms"] < GOAL_P99 * 1000 else "no"
        figures_text = " ".join(f"{v:>8.0f} " for v in (cold["p50_ms"], cold["p99_ms"], warm["p50_ms"], warm["p99_ms"]))
        print(f"{name:<40} {figures_text}  {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
