"""``mtasts publish``: host MTA-STS policies (``serve``), reload the running host (``reload``),
plan the roll-out of each domain (``plan``) and show where each stands (``status``).

Mounted by :mod:`mtasts.cli.main` as ``mtasts publish``; runnable alone for tests
(``python -c "from mtasts.cli.publish import app; app()" serve ...``).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.text import plural
from mtasts.core.policy import Mode
from mtasts.publish.config import (
    Challenge,
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
    from mtasts.publish.rollout import DomainStatus, Evidence, LiveState, Plan, Rules

__all__ = ["app"]

app = typer.Typer(
    help="Host MTA-STS policies for many domains: serve them, reload the running host, plan their roll-out.",
    no_args_is_help=True,
)

_SHOWN_UNSERVED = 10  # unserved domains named at start; the rest are counted

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


def _config_failed(exc: ConfigError) -> NoReturn:
    """Every problem on its own line, then exit 3 when a file cannot be read, else 2."""
    for problem in exc.problems:
        sys.stderr.write(f"mtasts: error: {problem.to_text()}\n")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.CANNOT_RUN if exc.unreadable else ExitCode.USAGE))


def _address(text: str, option: str) -> ListenAddress:
    try:
        return parse_address(text)
    except ValueError as exc:
        fail(f"{option} {text}: {exc}", ExitCode.USAGE)


def _log_to_stderr() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("mtasts")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if os.environ.get("MTASTS_DEBUG") == "1" else logging.INFO)
    logger.propagate = False


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help="Listen on HOST:PORT ([IPv6]:PORT); repeatable; replaces [server] listen.",
            metavar="ADDR",
        ),
    ] = None,
    admin: AdminOption = None,
) -> None:
    """Serve https://mta-sts.<domain>/.well-known/mta-sts.txt for every configured domain.

    The certificate is chosen by SNI; a name that is not configured with cert and key gets a TLS
    alert (unrecognized_name), never a policy. SIGHUP or `mtasts publish reload` re-reads the
    configuration, bodies and certificates without dropping a connection; a configuration with
    any problem is refused and the previous state kept. One access-log line per request on
    stderr; metrics on the admin listener (GET /metrics, /healthz). With an [acme] section,
    domains without cert and key get certificates from the ACME CA (HTTP-01 on [acme] listen,
    port 80), renewed at two thirds of their lifetime and served without a restart."""
    import asyncio
    import signal

    from mtasts.cli._run import run_async
    from mtasts.publish.host import PolicyHost
    from mtasts.publish.snapshot import load_snapshot

    path = config or default_config_path()
    addresses = [_address(text, "--listen") for text in listen or []]
    admin_address: ListenAddress | bool | None = True
    if admin is not None:
        admin_address = None if admin == "off" else _address(admin, "--admin")
    try:
        snapshot = load_snapshot(path)
    except ConfigError as exc:
        _config_failed(exc)
    unserved = snapshot.unserved
    for name, why in unserved[:_SHOWN_UNSERVED]:
        sys.stderr.write(f"mtasts: warning: {name}: not served ({why}): its policy host gets no policy\n")
    if len(unserved) > _SHOWN_UNSERVED:
        more = plural(len(unserved) - _SHOWN_UNSERVED, "more domain")
        sys.stderr.write(f"mtasts: warning: and {more} not served (no certificate yet)\n")
    acme = snapshot.config.acme
    if acme is not None and acme.challenge is not Challenge.HTTP_01:
        fail(f"[acme] challenge = {acme.challenge.value!r} is not available yet; use 'http-01'", ExitCode.USAGE)
    _log_to_stderr()
    host = PolicyHost(
        snapshot,
        loader=lambda generation: load_snapshot(path, generation=generation),
        listen=addresses or None,
        admin=admin_address,
    )

    async def run() -> None:
        await host.start()
        manager = None
        if acme is not None:
            from mtasts.publish.acme import AcmeManager, managed_hosts

            manager = AcmeManager(host)
            try:
                await manager.start()
            except BaseException:
                await host.stop()
                raise
            challenge = ", ".join(f"http://{a.to_text()}" for a in manager.bound)
            sys.stderr.write(
                f"mtasts: ACME: {plural(len(managed_hosts(host)), 'domain')} from {acme.directory}, "
                f"http-01 on {challenge}; certificates in {acme.storage}\n"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[object]] = set()

        def reload() -> None:
            task: asyncio.Task[object] = loop.create_task(host.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        where = ", ".join(f"https://{a.to_text()}" for a in host.bound)
        admin_text = f"admin http://{host.admin_bound.to_text()}" if host.admin_bound else "no admin listener"
        sys.stderr.write(
            f"mtasts: serving {plural(len(host.snapshot.sites), 'domain')} on {where}; {admin_text}; "
            f"pid {os.getpid()} (reload: SIGHUP or mtasts publish reload; stop: Ctrl-C)\n"
        )
        sys.stderr.flush()
        try:
            await stop.wait()
        finally:
            if manager is not None:
                await manager.stop()
            await host.stop()

    try:
        run_async(run())
    except OSError as exc:
        wanted = ", ".join(a.to_text() for a in (*host.listen, *(acme.listen if acme is not None else ())))
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if exc.errno == 13 else ""
        fail(f"cannot listen on {wanted}: {exc.strerror or exc}{hint}", ExitCode.CANNOT_RUN)


@app.command("reload")
def reload_command(
    config: ConfigOption = None,
    admin: AdminOption = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the answer.")] = 60.0,
) -> None:
    """Make the running `mtasts publish serve` re-read its configuration, bodies and certificates.

    Asks its admin listener (POST /reload; the address comes from --admin or the configuration's
    [server] admin) and says whether the new state is served or, if not, every problem (the
    host then keeps serving the previous state). Exit 0 reloaded, 2 the configuration has
    problems, 3 a file cannot be read or the host cannot be reached."""
    from mtasts.publish.snapshot import read_config

    if admin is not None:
        if admin == "off":
            fail("--admin off: reload needs the admin listener's address", ExitCode.USAGE)
        address = _address(admin, "--admin")
    else:
        try:
            settings = read_config(config or default_config_path())
        except ConfigError as exc:
            _config_failed(exc)
        if settings.server.admin is None:
            fail("[server] admin is off: send SIGHUP to the serve process instead", ExitCode.USAGE)
        address = settings.server.admin
    connection = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        connection.request("POST", "/reload", headers={"Content-Length": "0"})
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        fail(
            f"cannot reach the admin listener at http://{address.to_text()}: {detail}; "
            "is `mtasts publish serve` running?",
            ExitCode.CANNOT_RUN,
        )
    finally:
        connection.close()
    try:
        outcome = json.loads(raw)
        ok, generation, served = bool(outcome["ok"]), int(outcome["generation"]), int(outcome["served"])
    except (ValueError, KeyError, TypeError):
        fail(f"unexpected answer from http://{address.to_text()}/reload: HTTP {response.status}", ExitCode.CANNOT_RUN)
    if ok:
        typer.echo(f"reloaded: generation {generation}, {plural(served, 'domain')} served")
        return
    for line in outcome.get("problems", []):
        sys.stderr.write(f"mtasts: error: {line}\n")
    sys.stderr.write(f"mtasts: error: reload refused: still serving generation {generation}\n")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.CANNOT_RUN if outcome.get("unreadable") else ExitCode.USAGE))


# --- the roll-out: plan and status ---------------------------------------------------------------

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
class _Known:
    """What ``plan`` and ``status`` read from the configuration and the store."""

    config: Config
    histories: dict[str, list[Served]]
    evidence: dict[str, Evidence]
    store_found: bool


def _read_known(config_path: Path | None, db: str | None, names: list[str], now: datetime, rules: Rules) -> _Known:
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
        _config_failed(exc)
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
                mx = _guard_mx(entry, known)
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
        return _Known(config, {name: [] for name in wanted}, {}, False)
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    return _Known(config, histories, evidence, True)


def _guard_mx(entry: DomainConfig | None, history: list[Served]) -> tuple[str, ...]:
    """The MX patterns whose failures the guard counts: the configured policy's, else the served one's."""
    from mtasts.core.policy import parse_policy

    if entry is not None and entry.policy is not None:
        return entry.policy.mx
    if history:
        return parse_policy(history[-1].body).mx
    return ()


def _check_force(force: bool, reason: str | None) -> None:
    """``--force`` and ``--reason`` of ``plan`` and ``apply``: together, and a reason that says something."""
    if force != (reason is not None):
        fail("--force and --reason TEXT go together: say why the guard is overridden", ExitCode.USAGE)
    if reason is not None and not reason.strip():
        fail("--reason: give a reason", ExitCode.USAGE)


def _planned_names(known: _Known) -> list[str]:
    """The domains ``plan`` and ``apply`` work on; a name neither configured nor ever published
    is a usage error (a typo would otherwise plan the removal of nothing)."""
    names = list(known.histories)
    unknown = [n for n in names if known.config.domain(n) is None and not known.histories[n]]
    if unknown:
        fail(f"{', '.join(unknown)}: not in the configuration and never published", ExitCode.USAGE)
    return names


def _network_settings(nameserver: str | None, ca_file: Path | None, https_port: int, timeout: float) -> NetworkSettings:
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


async def _gather_live(names: list[str], settings: NetworkSettings, now: datetime) -> dict[str, LiveState]:
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


@app.command("plan")
def plan_command(
    domains: Annotated[
        list[str] | None, typer.Argument(help="Only these domains (default: every configured one).")
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    force: Annotated[bool, typer.Option("--force", help="Plan past a refusing guard (needs --reason).")] = False,
    reason: ReasonOption = None,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Compare the configuration with what is live and print the ordered steps, with reasons.

    For each domain: what its policy host serves (fetched as a sender fetches it), its _mta-sts
    TXT record and MX records, against the configuration and the published history in --db.
    The steps follow RFC 8461 §8: serve the new body, verify it from outside, only then publish
    the new id in the TXT record, and confirm it. testing → enforce is refused before
    --testing-days in testing with reports from --reporters organisations and no sts,
    certificate or STARTTLS failures for the listed MX; max_age grows only after enforce has
    been served for its old value. mode = "none" retires a domain. Nothing is changed
    (`apply` comes next). Exit 0 planned, 1 a change is refused or cannot be planned, 2 usage,
    3 the configuration or database cannot be read."""
    from mtasts.cli._run import run_async
    from mtasts.publish.rollout import Rules, plan_rollout

    _check_force(force, reason)
    settings = _network_settings(nameserver, ca_file, https_port, timeout)
    now = datetime.now(UTC)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = _read_known(config, db, domains or [], now, rules)
    names = _planned_names(known)
    live = run_async(_gather_live(names, settings, now))
    plans = [
        plan_rollout(
            name,
            known.config.domain(name),
            known.histories[name],
            live[name],
            now=now,
            evidence=known.evidence.get(name),
            rules=rules,
            force_reason=reason,
        )
        for name in names
    ]
    if json_output:
        typer.echo(json.dumps([p.to_dict() for p in plans], indent=2, ensure_ascii=False))
    else:
        for plan in plans:
            typer.echo(_plan_text(plan))
    raise typer.Exit(int(ExitCode.PROBLEMS if any(p.refusals for p in plans) else ExitCode.OK))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _plan_text(plan: Plan) -> str:
    head = f"{plan.domain}: {plan.stage.value}"
    if plan.target is not None and plan.target is not plan.stage:
        head += f" → {plan.target.value}"
    lines = []
    if plan.nothing_to_do:
        lines.append(f"{head}: nothing to do" + (f" (id {plan.policy_id})" if plan.policy_id else ""))
    else:
        lines.append(f"{head}")
    lines.extend(f"  {refusal}" for refusal in plan.refusals)
    for number, step in enumerate(plan.steps, 1):
        lines.append(f"  {number}. {step.text}")
        lines.append(f"     why: {step.reason}")
    lines.extend(f"  note: {note}" for note in plan.notes)
    return "\n".join(lines)


@app.command("status")
def status_command(
    domains: Annotated[list[str] | None, typer.Argument(help="Only these domains (default: all).")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
) -> None:
    """Each domain's roll-out state, the guard values (days in testing, reporters, failures)
    and what comes next and when, from the configuration, the history and the reports in --db
    (no network: quick, and cron-able). Exit 0, 2 usage, 3 cannot read the configuration or
    database."""
    from mtasts.publish.rollout import Rules, domain_status

    now = datetime.now(UTC)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = _read_known(config, db, domains or [], now, rules)
    statuses = [
        domain_status(name, known.config.domain(name), history, now=now, evidence=known.evidence.get(name), rules=rules)
        for name, history in known.histories.items()
    ]
    if json_output:
        typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2, ensure_ascii=False))
        return
    for status in statuses:
        typer.echo(_status_text(status))
    stages: dict[str, int] = {}
    for status in statuses:
        stages[status.stage.value] = stages.get(status.stage.value, 0) + 1
    counts = ", ".join(f"{n} {stage}" for stage, n in stages.items())
    typer.echo(f"{plural(len(statuses), 'domain')}" + (f": {counts}" if counts else ""))


def _status_text(status: DomainStatus) -> str:
    current = status.current
    head = f"{status.domain}: {status.stage.value}"
    if current is not None:
        head += f" since {_when(current.since)} (id {current.policy_id}, max_age {current.max_age})"
    if status.configured is not None and status.configured is not status.stage:
        head += f"; configured: {status.configured.value}"
    lines = [head]
    if status.guards:
        values = ", ".join(
            f"{g.guard.value} {g.value}/{g.required}" + ("" if g.passed else " (not yet)") for g in status.guards
        )
        lines.append(f"  guards: {values}")
    lines.append(f"  next: {status.next}" + (f", from {_when(status.next_at)}" if status.next_at else ""))
    return "\n".join(lines)


# --- the roll-out: apply -------------------------------------------------------------------------


def _reload_via_admin(address: ListenAddress, timeout: float) -> str:
    """``POST /reload`` on the running host's admin listener (what ``reload`` does); a line
    saying what is served, or :class:`~mtasts.publish.apply.StepFailed` saying why not."""
    from mtasts.publish.apply import StepFailed

    connection = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        connection.request("POST", "/reload", headers={"Content-Length": "0"})
        response = connection.getresponse()
        outcome = json.loads(response.read())
        ok, generation, served = bool(outcome["ok"]), int(outcome["generation"]), int(outcome["served"])
    except (OSError, http.client.HTTPException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise StepFailed(
            f"cannot reach the admin listener at http://{address.to_text()}: {detail}; "
            "is `mtasts publish serve` running?"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise StepFailed(f"unexpected answer from http://{address.to_text()}/reload") from None
    finally:
        connection.close()
    if not ok:
        problems = "; ".join(str(p) for p in outcome.get("problems", []))
        raise StepFailed(f"reload refused ({problems}): still serving generation {generation}")
    return f"reloaded the policy host: generation {generation}, {plural(served, 'domain')} served"


@app.command("apply")
def apply_command(
    domains: Annotated[
        list[str] | None, typer.Argument(help="Only these domains (default: every configured one).")
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    admin: AdminOption = None,
    force: Annotated[bool, typer.Option("--force", help="Apply past a refusing guard (needs --reason).")] = False,
    reason: ReasonOption = None,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Carry out the steps `plan` prints, in RFC 8461 §8 order, stopping at the first that fails.

    1. serve: reload the running `publish serve` (its admin listener: --admin or [server] admin);
    2. verify: fetch the body as a sender does (DNS, validated HTTPS, no redirect), byte for byte;
    3. record it in the history in --db under its new id (--force --reason: the reason too);
    4. publish the id: with a [dns] section, an RFC 2136 update signed with its TSIG key; without,
    print the exact TXT record and stop ("set this record, then run apply again");
    5. confirm the TXT record on the [dns] server. A failed step changes nothing after it (a body
    that does not verify is not recorded and its id not published). Exit 0 done, 1 a step failed,
    a guard refused or a record waits to be set, 2 usage, 3 cannot read the configuration,
    database or TSIG secret."""
    from mtasts.cli._run import run_async
    from mtasts.net.dns import DnsClient
    from mtasts.net.https import fetch_policy
    from mtasts.publish.apply import Applied, HostEffects, Outcome, StepFailed, apply_plan
    from mtasts.publish.history import SqlPublishHistory
    from mtasts.publish.plan import DnsRecord
    from mtasts.publish.rfc2136 import UpdateFailed, query_txt, read_secret, replace_txt
    from mtasts.publish.rollout import Rules, plan_rollout
    from mtasts.store.errors import StoreError, UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    _check_force(force, reason)
    settings = _network_settings(nameserver, ca_file, https_port, timeout)
    admin_address: ListenAddress | None = None
    if admin is not None and admin != "off":
        admin_address = _address(admin, "--admin")
    now = datetime.now(UTC)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = _read_known(config, db, domains or [], now, rules)
    names = _planned_names(known)
    if admin_address is None and admin != "off":
        admin_address = known.config.server.admin
    dns_settings = known.config.dns
    secret = b""
    if dns_settings is not None:
        try:
            secret = read_secret(dns_settings)
        except UpdateFailed as exc:
            fail(str(exc), ExitCode.CANNOT_RUN)
    try:
        store = ReportStore(db or default_db_url(os.environ))
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    ttl = dns_settings.ttl if dns_settings is not None else None

    def zone_line(record: DnsRecord) -> str:
        return record.to_zone_line() if ttl is None else record.to_zone_line(ttl)

    async def reload() -> str:
        import asyncio

        if admin_address is None:
            raise StepFailed("[server] admin is off: reload the host (SIGHUP), then run apply again")
        return await asyncio.to_thread(_reload_via_admin, admin_address, timeout)

    async def run() -> list[Applied]:
        live = await _gather_live(names, settings, now)
        dns = DnsClient(settings)

        async def fetch(name: str) -> bytes:
            fetched = await fetch_policy(name, dns, settings, now=datetime.now(UTC))
            if fetched.failure is not None or fetched.body is None:
                raise StepFailed(f"{fetched.url}: {fetched.detail or fetched.failure}")
            return fetched.body

        async def publish(record: DnsRecord) -> None:
            assert dns_settings is not None
            try:
                await replace_txt(dns_settings, secret, record.name + ".", record.value)
            except UpdateFailed as exc:
                raise StepFailed(str(exc)) from None

        async def confirm(record: DnsRecord) -> tuple[str, ...]:
            assert dns_settings is not None
            try:
                return await query_txt(dns_settings, record.name + ".")
            except UpdateFailed as exc:
                raise StepFailed(str(exc)) from None

        results = []
        with SqlPublishHistory(store) as history:
            effects = HostEffects(
                reload=reload,
                fetch=fetch,
                history=history,
                publish=publish if dns_settings is not None else None,
                confirm=confirm if dns_settings is not None else None,
            )
            for name in names:
                plan = plan_rollout(
                    name,
                    known.config.domain(name),
                    known.histories[name],
                    live[name],
                    now=now,
                    evidence=known.evidence.get(name),
                    rules=rules,
                    force_reason=reason,
                )
                results.append(await apply_plan(plan, effects, now=datetime.now(UTC), zone_line=zone_line))
        return results

    try:
        results = run_async(run())
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    for result in results:
        typer.echo(f"{result.domain}:" + (f" {result.message}" if result.outcome is Outcome.DONE else ""))
        for line in result.done:
            typer.echo(f"  {line}")
        if result.outcome is Outcome.FAILED:
            sys.stderr.write(f"mtasts: error: {result.domain}: {result.message}\n")
        elif result.outcome is not Outcome.DONE:
            typer.echo(f"  {result.message}")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.OK if all(r.outcome is Outcome.DONE for r in results) else ExitCode.PROBLEMS))
