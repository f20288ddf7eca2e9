"""What the ``mtasts publish`` commands share: their options, reading the configuration and
the published history, the network settings of the inspector, what a sender sees live, and the
inspector's prediction for a policy about to be enforced (:func:`as_if_enforced`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
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
    from mtasts.check.analysis import Analysis, Observations
    from mtasts.core.findings import Finding
    from mtasts.core.policy import Policy
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.history import Served
    from mtasts.publish.rollout import Evidence, LiveInspection, LiveState, Rules

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
        fail(f"--now {text!r}: not an ISO 8601 time such as 2026-12-01T12:00:00+00:00", ExitCode.USAGE)
    if moment.tzinfo is None:
        fail(f"--now {text!r}: give the zone (e.g. +00:00 or Z)", ExitCode.USAGE)
    shown = moment.astimezone(UTC).isoformat()
    sys.stderr.write(f"mtasts: warning: --now {shown}: the roll-out clock is set by hand\n")
    return moment.astimezone(UTC)


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
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    if ca_file is not None:
        check_ca_file(ca_file)
    try:
        return NetworkSettings(
            nameserver=server, ca_file=ca_file, timeout=timeout, https_port=https_port, smtp_port=smtp_port
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


def needs_inspection(known: Known, name: str) -> bool:
    """Whether ``plan``/``apply`` will weigh ``testing → enforce`` for ``name`` (configured
    ``enforce``, not enforced yet): only then is the live inspection (SMTP probes) worth its time."""
    from mtasts.publish.rollout import stage_of

    entry = known.config.domain(name)
    return entry is not None and entry.mode is Mode.ENFORCE and stage_of(known.histories[name]) is not Stage.ENFORCE


async def gather_live(
    names: list[str], settings: NetworkSettings, now: datetime, *, inspect: Known | None = None
) -> dict[str, LiveState]:
    """What a sender sees for each domain, through the inspector's adapters: the policy fetched
    as a sender fetches it (DNS, validated HTTPS, no redirect), the ``_mta-sts`` TXT, the MX;
    with ``inspect``, for each domain that :func:`needs_inspection`, the inspector's prediction
    for its ``enforce`` body too (:func:`inspect_enforce`)."""
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

    states = dict(zip(names, await asyncio.gather(*(one(name) for name in names)), strict=True))
    if inspect is None:
        return states
    wanted = {}
    for name in names:
        entry = inspect.config.domain(name)
        if entry is None or not needs_inspection(inspect, name):
            continue
        policy = entry.policy
        hosts = states[name].mx_hosts
        if policy is None and hosts is not None:  # mx = "from-dns": the policy lists the live MX
            from mtasts.core.policy import Policy

            policy = Policy(mode=entry.mode, max_age=entry.max_age, mx=hosts)
        if policy is not None:
            wanted[name] = policy
    inspected = await asyncio.gather(*(inspect_enforce(name, policy, settings) for name, policy in wanted.items()))
    for name, inspection in zip(wanted, inspected, strict=True):
        states[name] = replace(states[name], inspection=inspection)
    return states


def as_if_enforced(observations: Observations, policy: Policy) -> Observations:
    """The observations as a sender would make them once ``policy``, in mode ``enforce``, is
    served and announced: the fetch returns it and the ``_mta-sts`` record exists; the MX
    lookups and probes are the live ones. The inspector's analysis of these is its prediction
    for that policy (each MX: would a sender deliver over validated TLS, or skip it and why),
    with its own codes and fixes: nothing of the verdict is re-derived here."""
    from mtasts.core.policy import Policy as PolicyType
    from mtasts.net.dns import Lookup, LookupStatus

    enforced = PolicyType(mode=Mode.ENFORCE, max_age=policy.max_age, mx=policy.mx)
    fetch = replace(
        observations.fetch,
        policy=enforced,
        body=enforced.to_text().encode("utf-8"),
        problems=(),
        failure=None,
        detail="",
        internal_error="",
        status=200,
        content_type="text/plain",
    )
    announced: tuple[bytes, ...] = (b"v=STSv1; id=preview",)
    record = Lookup(f"_mta-sts.{observations.domain}", "TXT", LookupStatus.FOUND, values=(announced,))
    return replace(observations, fetch=fetch, sts_txt=record)


def enforce_blockers(analysis: Analysis) -> tuple[Finding, ...]:
    """The findings of an :func:`as_if_enforced` analysis that would stop mail: errors about
    the MX hosts (TLS, STARTTLS, certificates, not listed, unreachable when no MX is left) and
    trouble on this side that leaves them unknown."""
    from mtasts.core.findings import Area
    from mtasts.core.problems import Severity

    return tuple(f for f in analysis.findings if f.severity is Severity.ERROR and f.area in (Area.MX, Area.LOCAL))


async def observe(name: str, settings: NetworkSettings) -> Observations:
    """What the inspector gathers about ``name`` (its own lookups, fetch and MX probes), dated
    by the real clock: certificates are judged by the time they are used in."""
    from mtasts.check.inspect import Inspector

    return await Inspector(settings).observe(name, datetime.now(UTC))


async def inspect_enforce(name: str, policy: Policy, settings: NetworkSettings) -> LiveInspection:
    """The inspector's prediction for ``policy`` enforced on ``name`` now (the live guard's input)."""
    from mtasts.check.analysis import analyse
    from mtasts.publish.rollout import LiveInspection

    observations = await observe(name, settings)
    analysis = analyse(as_if_enforced(observations, policy), now=datetime.now(UTC))
    return LiveInspection(analysis.verdict, enforce_blockers(analysis))


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def write_config(path: Path, text: str) -> None:
    """Replace the configuration file with ``text`` in one step (a temporary file beside it,
    then a rename), so the host never reads half a file; its permissions are kept, and its
    directory is created for a first file. A file that cannot be written exits 3."""
    import shutil
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as handle:
            handle.write(text)
            temporary = Path(handle.name)
        try:
            if path.exists():
                shutil.copymode(path, temporary)
            else:
                temporary.chmod(0o644)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", ExitCode.CANNOT_RUN)
