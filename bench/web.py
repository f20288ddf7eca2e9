"""Benchmark of the web pages over a large report store: the dashboard and the domain page.

Run from the repository root with mtasts installed::

    python bench/web.py                  # 1,000,000 session rows, SQLite and PostgreSQL (builds both stores)
    python bench/web.py --rows 100000    # quicker
    python bench/web.py --db sqlite:////tmp/m1.sqlite3   # reuse a SQLite store (built there first if absent)
    python bench/web.py --pg ''          # SQLite only
    python bench/web.py --json

PostgreSQL (``--pg URL``, default ``$MTASTS_BENCH_PG`` or the ``test`` database at
127.0.0.1:5432) gets a schema of its own, with a unique name, filled with the same reports and
dropped at the end (also when the run fails).

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
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report as report_bench  # bench/report.py: the generated reports (bench/ is not a package)
from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app

GOAL_P99 = 0.300
PG_URL = os.environ.get("MTASTS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
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


@contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A store URL on a fresh schema of ``base_url``'s database (its search path), dropped after."""
    import psycopg

    conninfo = base_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"mtasts_bench_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


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
    parser.add_argument("--db", help="a SQLite store to read (filled there first when the file does not exist)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL database for a fresh schema ('' to skip)")
    parser.add_argument("--runs", type=int, default=20, help="requests per page and mode (default 20)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    stores: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mtasts-bench-web-") as folder:
        url = options.db or f"sqlite:///{Path(folder) / 'reports.sqlite3'}"
        path = ReportStore(url).sqlite_path
        info: dict[str, Any] = {"url": url, "session_rows": options.rows}
        if path is None or not path.exists():
            info |= fill(url, options.rows)
        else:
            info["session_rows"] = "as stored"
        stores["sqlite"] = {"store": info, "pages": asyncio.run(measure(url, options.runs))}
    if options.pg:
        with pg_schema(options.pg) as pg_url:
            info = {"url": pg_url.split("?", 1)[0] + " (a fresh schema, dropped)", "session_rows": options.rows}
            info |= fill(pg_url, options.rows)
            stores["postgresql"] = {"store": info, "pages": asyncio.run(measure(pg_url, options.runs))}
    if options.json:
        print(json.dumps(stores, indent=2))
        return 0
    for backend, result in stores.items():
        print(f"{backend}: {result['store']}")
        print(f"{'page':<40} {'cold p50':>9} {'cold p99':>9} {'warm p50':>9} {'warm p99':>9}  goal p99 < 300 ms (cold)")
        for name, figures in result["pages"].items():
            cold, warm = figures["cold"], figures["warm"]
            met = "yes" if cold["p99_ms"] < GOAL_P99 * 1000 else "no"
            numbers = " ".join(f"{v:>8.0f} " for v in (cold["p50_ms"], cold["p99_ms"], warm["p50_ms"], warm["p99_ms"]))
            print(f"{name:<40} {numbers}  {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
