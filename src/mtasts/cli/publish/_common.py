"""What the ``mtasts publish`` commands share: their options, reading the configuration and
the published history, the network settings of the inspector. What a sender sees live and the
inspector's prediction for a policy about to be enforced are :mod:`mtasts.publish.actions`'s,
shared with the web's publish actions."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.i18n import current
from mtasts.publish.actions import Known
from mtasts.publish.config import (
    ConfigError,
    ListenAddress,
    default_config_path,
    parse_address,
)

if TYPE_CHECKING:  # the network and the store load when a command needs them
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.rollout import Rules

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The configuration file [default: publish.toml in the user config directory, ~/.config/mtasts on Linux].",
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


def say(english: str) -> str:
    """A finished English sentence in the language of ``--lang`` / ``LANG`` (:mod:`mtasts.i18n`:
    recognised by its shape in :mod:`mtasts.i18n.messages`; English stays as it is)."""
    return current().text(english)


def config_failed(exc: ConfigError) -> NoReturn:
    """Every problem on its own line, then exit 3 when a file cannot be read, else 2."""
    for problem in exc.problems:
        sys.stderr.write(f"mtasts: error: {say(problem.to_text())}\n")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.CANNOT_RUN if exc.unreadable else ExitCode.USAGE))


def listen_address(text: str, option: str) -> ListenAddress:
    try:
        return parse_address(text)
    except ValueError as exc:
        fail(say(f"{option} {text}: {exc}"), ExitCode.USAGE)


def log_to_stderr() -> None:
    """The policy host's log lines (its access log, reloads, ACME) on stderr."""
    import logging

    from mtasts.cli._run import log_to_stderr as to_stderr

    to_stderr("%(asctime)s %(levelname)s %(name)s %(message)s", {"mtasts": logging.INFO})


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
SmtpPortOption = Annotated[int, typer.Option("--smtp-port", help="MX hosts' SMTP port (RFC 8461: 25).")]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        hidden=True,
        help="Testing only: the roll-out clock (ISO 8601 with a zone) instead of the system clock.",
        metavar="TIME",
    ),
]


def rollout_now(text: str | None) -> datetime:
    """The roll-out's clock: the system's, or the hidden ``--now`` of the lab tests, which move
    time across the weeks of a roll-out without sleeping. It dates the history and drives the
    guards (never the certificate checks, which use the real time), so it says so on stderr
    every time: a history dated by hand would make the guards' days fiction."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(say(f"--now {text!r}: not an ISO 8601 time such as 2026-12-01T12:00:00+00:00"), ExitCode.USAGE)
    if moment.tzinfo is None:
        fail(say(f"--now {text!r}: give the zone (e.g. +00:00 or Z)"), ExitCode.USAGE)
    shown = moment.astimezone(UTC).isoformat()
    sys.stderr.write(f"mtasts: warning: {say(f'--now {shown}: the roll-out clock is set by hand')}\n")
    return moment.astimezone(UTC)


def read_known(config_path: Path | None, db: str | None, names: list[str], now: datetime, rules: Rules) -> Known:
    """The configuration, each domain's history and the report evidence for its guards
    (:func:`mtasts.publish.actions.read_histories`); a database that does not exist yet is an
    empty history (nothing was ever published by mtasts)."""
    from mtasts.publish.actions import read_histories, wanted_names
    from mtasts.publish.history import SqlPublishHistory
    from mtasts.publish.snapshot import read_config
    from mtasts.store.errors import StoreError, StoreMissing, UnsupportedDatabase, translate_store_errors
    from mtasts.store.store import ReportStore, default_db_url

    try:
        config = read_config(config_path or default_config_path())
    except ConfigError as exc:
        config_failed(exc)
    try:  # read only: plan and status create no database
        store = ReportStore(db or default_db_url(os.environ), create=False)
    except UnsupportedDatabase as exc:
        fail(say(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}"), ExitCode.USAGE)
    try:
        with SqlPublishHistory(store) as history, translate_store_errors(store.url):
            return read_histories(config, history, store, names, now=now, rules=rules)
    except StoreMissing:
        return Known(config, {name: [] for name in wanted_names(config, names)}, {}, False)
    except StoreError as exc:
        fail(say(exc.message), ExitCode.CANNOT_RUN)


def check_force(force: bool, reason: str | None) -> None:
    """``--force`` and ``--reason`` of ``plan`` and ``apply``: together, and a reason that says something."""
    if force != (reason is not None):
        fail(say("--force and --reason TEXT go together: say why the guard is overridden"), ExitCode.USAGE)
    if reason is not None and not reason.strip():
        fail(say("--reason: give a reason"), ExitCode.USAGE)


def planned_names(known: Known) -> list[str]:
    """The domains ``plan`` and ``apply`` work on; a name neither configured nor ever published
    is a usage error (a typo would otherwise plan the removal of nothing)."""
    from mtasts.publish.actions import unknown_names

    names = list(known.histories)
    unknown = unknown_names(known)
    if unknown:
        fail(say(f"{', '.join(unknown)}: not in the configuration and never published"), ExitCode.USAGE)
    return names


def network_settings(
    nameserver: str | None, ca_file: Path | None, https_port: int, timeout: float, smtp_port: int = 25
) -> NetworkSettings:
    """The settings ``mtasts check`` builds from the same options, checked the same way."""
    from mtasts.cli.cafile import check_ca_file
    from mtasts.net.settings import NetworkSettings, parse_nameserver

    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(say(f"--nameserver {nameserver!r}: {exc}"), ExitCode.USAGE)
    if ca_file is not None:
        check_ca_file(ca_file)
    try:
        return NetworkSettings(
            nameserver=server, ca_file=ca_file, timeout=timeout, https_port=https_port, smtp_port=smtp_port
        )
    except ValueError as exc:
        fail(say(str(exc)), ExitCode.USAGE)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def write_config(path: Path, text: str) -> None:
    """Replace the configuration file with ``text`` in one step
    (:func:`mtasts.publish.actions.write_config_file`); a file that cannot be written exits 3."""
    from mtasts.publish.actions import write_config_file

    try:
        write_config_file(path, text)
    except OSError as exc:
        fail(say(f"cannot write {path}: {exc.strerror or exc}"), ExitCode.CANNOT_RUN)
