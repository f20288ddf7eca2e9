"""Benchmark of the web pages: the dashboard and the domain page over a large report store, the
inspector page's time to its first finding against the lab, and what the monitor costs.

Run from the repository root with mtasts installed::

    python bench/web.py                  # 1,000,000 session rows, SQLite and PostgreSQL (builds both stores)
    python bench/web.py --rows 100000    # quicker
    python bench/web.py --db sqlite:////tmp/m1.sqlite3   # reuse a SQLite store (built there first if absent)
    python bench/web.py --pg ''          # SQLite only
    python bench/web.py --only inspector,monitor   # the parts against the lab only
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

The inspector page (``inspector``) is timed as a browser with JavaScript uses it, against
``mtasts lab up`` in another process: ``GET /check?domain=D`` (a redirect to the result's
permanent link), the pending page, its server-sent events until ``done``, then the result page;
the time to the first finding is until that page, which holds every finding, has arrived. The
same domains checked by a bare :class:`~mtasts.check.inspect.Inspector` in the same process
give the page's own share (``page / bare``). The app runs on uvloop, as ``mtasts web serve``.

The monitor (``monitor``) is bench/monitor.py's measurement (CPU per domain check, and per
10,000 domains checked hourly), run here with fewer rounds; bench/monitor.py alone has more
options.
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
import monitor as monitor_bench  # bench/monitor.py: the lab in a process of its own, the monitor's CPU
import report as report_bench  # bench/report.py: the generated reports (bench/ is not a package)
from mtasts.check.inspect import Inspector
from mtasts.net.ratelimit import RateLimit
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
PARTS = ("pages", "inspector", "monitor")
# lab domains with findings of each kind: none but notes, the policy host, an MX, the record
INSPECTED = ("enforce-ok", "policy-cert-expired", "mx-no-starttls", "no-sts-record", "testing-ok")
UNLIMITED = RateLimit(per_minute=1e9, burst=1_000_000)  # the bench asks faster than a person


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


async def first_findings(settings: Any, domains: list[str], runs: int) -> dict[str, Any]:
    """The inspector page's time to its first finding, per domain (see the module), and the
    bare check's time for the same domains, ``runs`` times each, one at a time."""
    app = create_app(
        WebSettings(network=settings, reuse_seconds=0, per_client=UNLIMITED, total=UNLIMITED, max_results=10_000)
    )
    inspector = Inspector(settings)
    page: list[float] = []
    bare: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        for rounds in (1, runs):  # the first pass warms up (imports, TLS contexts, templates)
            page.clear()
            bare.clear()
            findings = 0
            for _ in range(rounds):
                for domain in domains:
                    begin = time.perf_counter()
                    found = await client.get("/check", params={"domain": domain})
                    assert found.status_code == 303, (domain, found.status_code)
                    result_url = found.headers["location"]
                    pending = await client.get(result_url)
                    assert pending.status_code == 200
                    job = result_url.rsplit("/", 1)[1]
                    events = await client.get("/check/events", params={"id": job})  # ends with "done"
                    assert "event: done" in events.text, events.text[-300:]
                    shown = await client.get(result_url)
                    page.append(time.perf_counter() - begin)
                    assert shown.status_code == 200
                    assert 'id="verdict"' in shown.text, shown.text[:300]  # the result, not the pending page
                    findings += shown.text.count('<li class="finding ')
                    begin = time.perf_counter()
                    await inspector.check(domain)
                    bare.append(time.perf_counter() - begin)
    await app.state.checks.close()
    app.state.reports.close()
    return {
        "domains": domains,
        "checks": len(page),
        "findings_shown": findings,
        "page_p50_ms": statistics.median(page) * 1000,
        "page_p99_ms": _quantile(page, 0.99) * 1000,
        "bare_p50_ms": statistics.median(bare) * 1000,
        "bare_p99_ms": _quantile(bare, 0.99) * 1000,
    }


def run_uvloop(coroutine: Any) -> Any:
    """As ``mtasts web serve`` runs (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def against_lab(parts: set[str], runs: int, pg: str) -> dict[str, Any]:
    """The parts that need the lab, which runs in a process of its own meanwhile."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mtasts-bench-web-lab-") as folder:
        lab, info = monitor_bench.start_lab(Path(folder), (*monitor_bench.SCENARIOS, *INSPECTED))
        try:
            zone = info["zone"]
            settings = monitor_bench.settings_of(info)
            if "inspector" in parts:
                domains = [f"{name}.{zone}" for name in INSPECTED]
                results["inspector"] = run_uvloop(first_findings(settings, domains, runs))
            if "monitor" in parts:
                domains = [f"{name}.{zone}" for name in monitor_bench.SCENARIOS]
                sqlite = f"sqlite:///{Path(folder) / 'monitor.sqlite3'}"
                cpu = run_uvloop(monitor_bench.measure(settings, domains, rounds=10, repeat=3, db=sqlite))
                if pg:
                    arguments = argparse.Namespace(pg=pg, rounds=10, repeat=3)
                    try:
                        cpu["monitor-pg"] = monitor_bench.measure_postgresql(settings, domains, arguments)
                    except Exception as exc:  # unreachable: said, and the SQLite figures still shown
                        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
                results["monitor"] = {"checks_per_measurement": 10 * len(domains), "cpu_seconds_per_check": cpu}
        finally:
            lab.terminate()
            lab.wait(10)
    return results


def print_lab(results: dict[str, Any]) -> None:
    inspected = results.get("inspector")
    if inspected:
        page50, page99 = inspected["page_p50_ms"], inspected["page_p99_ms"]
        bare50, bare99 = inspected["bare_p50_ms"], inspected["bare_p99_ms"]
        print(
            f"inspector page, time to the result with its findings ({inspected['checks']} checks of "
            f"{len(inspected['domains'])} lab domains, {inspected['findings_shown']} findings shown): "
            f"p50 {page50:.0f} ms, p99 {page99:.0f} ms; the bare check p50 {bare50:.0f} ms, p99 {bare99:.0f} ms "
            f"(page / bare at p50: {page50 / bare50:.2f}×)"
        )
    monitored = results.get("monitor")
    if monitored:
        cpu = monitored["cpu_seconds_per_check"]
        print(f"monitor, {monitored['checks_per_measurement']} checks per measurement, best of 3:")
        for name, seconds in cpu.items():
            per_hour = seconds * 10_000
            print(
                f"{name:>11}: {seconds * 1000:6.2f} ms CPU per check, {per_hour:7.1f} CPU s per 10,000 domains "
                f"per hour ({per_hour / 3600:.1%} of one core), {seconds / cpu['inspector']:.2f}× the bare check"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="session rows to generate (default 1,000,000)")
    parser.add_argument("--db", help="a SQLite store to read (filled there first when the file does not exist)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL database for a fresh schema ('' to skip)")
    parser.add_argument("--runs", type=int, default=20, help="requests per page and mode (default 20)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"the parts to run, comma-separated (default {','.join(PARTS)})"
    )
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    parts = set(options.only.split(","))
    if not parts or not parts <= set(PARTS):
        parser.error(f"--only takes some of {', '.join(PARTS)}")
    stores: dict[str, dict[str, Any]] = {}
    if "pages" in parts:
        stores = pages(options)
    lab = against_lab(parts, options.runs, options.pg) if parts & {"inspector", "monitor"} else {}
    if options.json:
        print(json.dumps({**stores, **lab}, indent=2))
        return 0
    print_pages(stores)
    print_lab(lab)
    return 0


def pages(options: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The pages over a SQLite store and, unless ``--pg ''``, a PostgreSQL schema of their own."""
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
    return stores


def print_pages(stores: dict[str, dict[str, Any]]) -> None:
    for backend, result in stores.items():
        print(f"{backend}: {result['store']}")
        print(f"{'page':<40} {'cold p50':>9} {'cold p99':>9} {'warm p50':>9} {'warm p99':>9}  goal p99 < 300 ms (cold)")
        for name, figures in result["pages"].items():
            cold, warm = figures["cold"], figures["warm"]
            met = "yes" if cold["p99_ms"] < GOAL_P99 * 1000 else "no"
            numbers = " ".join(f"{v:>8.0f} " for v in (cold["p50_ms"], cold["p99_ms"], warm["p50_ms"], warm["p99_ms"]))
            print(f"{name:<40} {numbers}  {met}")


if __name__ == "__main__":
    raise SystemExit(main())
