"""What the ``mtasts publish`` commands share: their options, reading the configuration and
the published history, the network settings of the inspector, and what a sender sees live."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.core.policy import Mode
from mtasts.publish.config import (
    Config,
    ConfigError,
    DomainConfig,
    ListenAddress,
    default_config_path,
    parse_address,
)
from mtasts.publish.rollout import Stage

if TYPE_CHECKING:  # the network and the store load when a command needs them
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.history import Served
    from mtasts.publish.rollout import Evidence, LiveState, Rules

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=f"The configuration file (default: {default_config_path()}).",
        metavar="FILE",
        dir_okay=False,
    ),
]
AdminOption = Annotated[
    str | None,
    typer.Option(
        "--admin", help="The admin listener, HOST:PORT ('off': none); overrides [server] admin.", metavar="ADDR"
    ),
]


def config_failed(exc: ConfigError) -> NoReturn:
    """Every problem on its own line, then exit 3 when a file cannot be read, else 2."""
    for problem in exc.problems:
        sys.stderr.write(f"mtasts: error: {problem.to_text()}\n")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.CANNOT_RUN if exc.unreadable else ExitCode.USAGE))


def listen_address(text: str, option: str) -> ListenAddress:
    try:
        return parse_address(text)
    except ValueError as exc:
        fail(f"{option} {text}: {exc}", ExitCode.USAGE)


def log_to_stderr() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("mtasts")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if os.environ.get("MTASTS_DEBUG") == "1" else logging.INFO)
    logger.propagate = False


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The database holding the published history and the reports (sqlite:///path, postgresql://... "
        "or a SQLite file). Default: $MTASTS_DB, else reports.sqlite3 in the user data directory.",
        metavar="URL",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TestingDaysOption = Annotated[
    int, typer.Option("--testing-days", min=1, help="Days in testing before enforce is allowed.", metavar="N")
]
ReportersOption = Annotated[
    int,
    typer.Option("--reporters", min=0, help="Reporting organisations needed before enforce.", metavar="K"),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why the guard is overridden (recorded in the history).")
]
NameserverOption = Annotated[
    str | None, typer.Option("--nameserver", help="Resolve through this server, IP[:PORT].", metavar="IP")
]
CaFileOption = Annotated[
    Path | None, typer.Option("--ca-file", help="Trust the CAs in this PEM file instead of the system store.")
]
HttpsPortOption = Annotated[int, typer.Option("--https-port", help="Policy hosts' HTTPS port (RFC 8461: 443).")]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds for each lookup and fetch.")]


@dataclass(frozen=True, slots=True)
class Known:
    """What ``plan`` and ``status`` read from the configuration and the store."""

    config: Config
    histories: dict[str, list[Served]]
    evidence: dict[str, Evidence]
    store_found: bool


def read_known(config_path: Path | None, db: str | None, names: list[str], now: datetime, rules: Rules) -> Known:
    """The configuration, each domain's history and the report evidence for its guards; a
    database that does not exist yet is an empty history (nothing was ever published by mtasts)."""
    from mtasts.publish.history import SqlPublishHistory, history_domain
    from mtasts.publish.rollout import evidence_from_rows, evidence_window, stage_of
    from mtasts.publish.snapshot import read_config
    from mtasts.store.errors import StoreError, StoreMissing, UnsupportedDatabase, translate_store_errors
    from mtasts.store.store import ReportStore, default_db_url

    try:
        config = read_config(config_path or default_config_path())
    except ConfigError as exc:
        config_failed(exc)
    wanted = [history_domain(n) for n in names] or [d.name for d in config.domains]
    try:  # read only: plan and status create no database
        store = ReportStore(db or default_db_url(os.environ), create=False)
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    histories: dict[str, list[Served]] = {}
    evidence: dict[str, Evidence] = {}
    try:
        with SqlPublishHistory(store) as history, translate_store_errors(store.url):
            for name in dict.fromkeys([*wanted, *([] if names else history.domains())]):
                histories[name] = history.entries(name)
                entry = config.domain(name)
                known = histories[name]
                if stage_of(known) is not Stage.TESTING and (entry is None or entry.mode is not Mode.ENFORCE):
                    continue  # the guards read reports only for a domain in testing or asked to enforce
                mx = guard_mx(entry, known)
                since, until = evidence_window(known, now, rules)
                evidence[name] = evidence_from_rows(
                    name,
                    mx,
                    store.policy_rows(since=since, domain=name),
                    store.failure_rows(since=since, domain=name),
                    since=since,
                    until=until,
                )
    except StoreMissing:
        return Known(config, {name: [] for name in wanted}, {}, False)
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    return Known(config, histories, evidence, True)


def guard_mx(entry: DomainConfig | None, history: list[Served]) -> tuple[str, ...]:
    """The MX patterns whose failures the guard counts: the configured policy's, else the served one's."""
    from mtasts.core.policy import parse_policy

    if entry is not None and entry.policy is not None:
        return entry.policy.mx
    if history:
        return parse_policy(history[-1].body).mx
    return ()


def check_force(force: bool, reason: str | None) -> None:
    """``--force`` and ``--reason`` of ``plan`` and ``apply``: together, and a reason that says something."""
    if force != (reason is not None):
        fail("--force and --reason TEXT go together: say why the guard is overridden", ExitCode.USAGE)
    if reason is not None and not reason.strip():
        fail("--reason: give a reason", ExitCode.USAGE)


def planned_names(known: Known) -> list[str]:
    """The domains ``plan`` and ``apply`` work on; a name neither configured nor ever published
    is a usage error (a typo would otherwise plan the removal of nothing)."""
    names = list(known.histories)
    unknown = [n for n in names if known.config.domain(n) is None and not known.histories[n]]
    if unknown:
        fail(f"{', '.join(unknown)}: not in the configuration and never published", ExitCode.USAGE)
    return names


def network_settings(nameserver: str | None, ca_file: Path | None, https_port: int, timeout: float) -> NetworkSettings:
    """The settings ``mtasts check`` builds from the same options, checked the same way."""
    from mtasts.cli.cafile import check_ca_file
    from mtasts.net.settings import NetworkSettings, parse_nameserver

    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    if ca_file is not None:
        check_ca_file(ca_file)
    try:
        return NetworkSettings(nameserver=server, ca_file=ca_file, timeout=timeout, https_port=https_port)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


async def gather_live(names: list[str], settings: NetworkSettings, now: datetime) -> dict[str, LiveState]:
    """What a sender sees for each domain, through the inspector's adapters: the policy fetched
    as a sender fetches it (DNS, validated HTTPS, no redirect), the ``_mta-sts`` TXT, the MX."""
    import asyncio

    from mtasts.net.dns import DnsClient, LookupStatus
    from mtasts.net.https import fetch_policy
    from mtasts.publish.rollout import LiveState

    dns = DnsClient(settings)

    async def one(name: str) -> LiveState:
        txt, mx, fetched = await asyncio.gather(
            dns.txt(f"_mta-sts.{name}"), dns.mx(name), fetch_policy(name, dns, settings, now=now)
        )
        records: tuple[str, ...] | None = None
        if txt.status is not LookupStatus.FAILED:
            records = tuple(b"".join(strings).decode("utf-8", "replace") for strings in txt.values)
        hosts: tuple[str, ...] | None = None
        if mx.status is not LookupStatus.FAILED:
            hosts = tuple(m.host for m in mx.values if m.host)
        ok = fetched.failure is None and fetched.body is not None
        return LiveState(
            served_body=fetched.body if ok else None,
            fetch_error="" if ok else (fetched.detail or str(fetched.failure)),
            sts_records=records,
            txt_error=txt.detail,
            mx_hosts=hosts,
        )

    states = await asyncio.gather(*(one(name) for name in names))
    return dict(zip(names, states, strict=True))


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
