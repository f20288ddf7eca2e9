"""CPU cost of ``mtasts monitor``: per domain check, and per 10,000 monitored domains per hour.

The lab runs in its own process (``mtasts lab up``), so this process's CPU time
(``time.process_time()``, every thread: the store writes run in worker threads) is the
monitor's alone. Three measurements over the same domains, each the best of ``--repeat``:

- ``inspector``: the bare check (``Inspector.check``), what ``mtasts check`` costs;
- ``monitor``: ``Monitor.check``: the check, then the snapshot, the rules, the report events
  (reading the domain's rows from the store) and the run stored with its events, on SQLite;
- ``monitor-pg``: the same on PostgreSQL (``--pg URL``; skipped when it is unreachable).

"Per 10,000 domains per hour" is 10,000 checks an hour (the default interval, one hour) times
the CPU of one check: the CPU a monitor host spends on them, not counting the lab's.

    .venv/bin/python bench/monitor.py                 # about 300 checks per measurement
    .venv/bin/python bench/monitor.py --rounds 100 --pg postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mtasts.check.inspect import Inspector
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.monitor.service import Monitor
from mtasts.net.settings import NetworkSettings
from mtasts.store.store import ReportStore

SCENARIOS = ("enforce-ok", "testing-ok", "wildcard-ok", "cname-policy-host-ok", "split-txt-ok", "none-ok")
ROOT = Path(__file__).resolve().parent.parent


def start_lab(folder: Path, scenarios: Sequence[str] = SCENARIOS) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    """``mtasts lab up`` with ``scenarios`` in a process of its own, and its info once ready."""
    info = folder / "lab.json"
    command = [str(ROOT / ".venv/bin/mtasts"), "lab", "up", "--info", str(info)]
    for name in dict.fromkeys(scenarios):
        command += ["-s", name]
    lab = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not info.exists():
        if time.monotonic() > deadline or lab.poll() is not None:
            lab.kill()
            raise SystemExit("the lab did not start")
        time.sleep(0.05)
    time.sleep(0.1)  # the file is written whole once ready; let the writer close it
    return lab, json.loads(info.read_text())


def settings_of(info: dict[str, object]) -> NetworkSettings:
    address, port = str(info["nameserver"]).rsplit(":", 1)
    return NetworkSettings(
        nameserver=(address, int(port)),
        ca_file=Path(str(info["ca_file"])),
        timeout=5.0,
        https_port=int(str(info["https_port"])),
        smtp_port=int(str(info["smtp_port"])),
    )


async def cpu_per_check(check: Callable[[str], Awaitable[object]], domains: list[str], rounds: int) -> float:
    """CPU seconds per check, over ``rounds`` passes over ``domains`` (one at a time, as the
    schedule spreads checks)."""
    for domain in domains:  # warm up: imports, TLS contexts, the database's first pages
        await check(domain)
    start = time.process_time()
    for _ in range(rounds):
        for domain in domains:
            await check(domain)
    return (time.process_time() - start) / (rounds * len(domains))


async def measure(
    settings: NetworkSettings, domains: list[str], rounds: int, repeat: int, db: str, schema: str | None = None
) -> dict[str, float]:
    def clock() -> datetime:
        return datetime.now(UTC)

    inspector = Inspector(settings, clock=clock)
    results: dict[str, float] = {}
    results["inspector"] = min([await cpu_per_check(inspector.check, domains, rounds) for _ in range(repeat)])
    store = ReportStore(db, connect_args={"options": f"-csearch_path={schema}"} if schema else None)
    with store:
        monitor = Monitor(SqlMonitorHistory(store), inspector, reports=store, clock=clock)
        results["monitor"] = min([await cpu_per_check(monitor.check, domains, rounds) for _ in range(repeat)])
    return results


def measure_postgresql(settings: NetworkSettings, domains: list[str], args: argparse.Namespace) -> float:
    """The monitor on PostgreSQL, in a schema of its own, dropped afterwards (the database is shared)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(ReportStore(args.pg).url)
    conninfo = f"host={url.host or '127.0.0.1'} port={url.port or 5432} user={url.username} dbname={url.database}"
    schema = f"mtasts_bench_monitor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        return asyncio.run(measure(settings, domains, args.rounds, args.repeat, args.pg, schema))["monitor"]
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=50, help="passes over the lab's domains per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements; the best counts")
    parser.add_argument("--pg", help="also measure on this PostgreSQL database (a URL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtasts-bench-monitor-") as folder:
        lab, info = start_lab(Path(folder))
        try:
            zone = info["zone"]
            domains = [f"{name}.{zone}" for name in SCENARIOS]
            settings = settings_of(info)
            sqlite = f"sqlite:///{Path(folder) / 'monitor.sqlite3'}"
            results = asyncio.run(measure(settings, domains, args.rounds, args.repeat, sqlite))
            if args.pg:
                try:
                    results["monitor-pg"] = measure_postgresql(settings, domains, args)
                except Exception as exc:  # unreachable: said, and the SQLite figures still shown
                    print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            lab.terminate()
            lab.wait(10)
    checks = args.rounds * len(SCENARIOS)
    print(f"{checks} checks per measurement, best of {args.repeat}; lab in another process")
    base = results["inspector"]
    for name, cpu in results.items():
        per_hour = cpu * 10_000
        print(
            f"{name:>11}: {cpu * 1000:6.2f} ms CPU per check, {per_hour:7.1f} CPU s per 10,000 domains per hour "
            f"({per_hour / 3600:.1%} of one core), {cpu / base:.2f}× the bare check"
        )


if __name__ == "__main__":
    main()
