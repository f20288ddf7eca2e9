"""``mtasts publish apply``: carry a plan out in RFC 8461 §8 order."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import (
    AdminOption,
    CaFileOption,
    ConfigOption,
    DbOption,
    HttpsPortOption,
    NameserverOption,
    NowOption,
    ReasonOption,
    ReportersOption,
    SmtpPortOption,
    TestingDaysOption,
    TimeoutOption,
    check_force,
    listen_address,
    network_settings,
    planned_names,
    read_known,
    rollout_now,
    say,
)
from mtasts.publish import actions
from mtasts.publish.config import ListenAddress

if TYPE_CHECKING:
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.actions import Known
    from mtasts.publish.apply import Applied
    from mtasts.publish.rollout import Rules

# what retire adds to apply's effects (mtasts.publish.actions, shared with the web)
Reload = actions.Reload
Fetch = actions.Fetch
StopServing = actions.StopServing


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
    smtp_port: SmtpPortOption = 25,
    timeout: TimeoutOption = 10.0,
    now_text: NowOption = None,
) -> None:
    """Carry out the steps `plan` prints, in RFC 8461 §8 order, stopping at the first that fails.

    1. serve: reload the running `publish serve` (its admin listener: --admin or [server] admin);
    2. verify: fetch the body as a sender does (DNS, validated HTTPS, no redirect), byte for byte;
    3. record it in the history in --db under its new id (--force --reason: the reason too);
    4. publish the id: with a [dns] section, an RFC 2136 update signed with its TSIG key; without,
    print the exact TXT record and stop ("set this record, then run apply again");
    5. confirm the TXT record on the [dns] server. A failed step changes nothing after it (a body
    that does not verify is not recorded and its id not published). testing → enforce first runs
    the inspector against the live MX (its SMTP probes; --smtp-port for tests). Exit 0 done, 1 a
    step failed, a guard refused or a record waits to be set, 2 usage, 3 cannot read the
    configuration, database or TSIG secret."""
    from mtasts.publish.apply import Outcome
    from mtasts.publish.rollout import Rules

    check_force(force, reason)
    settings = network_settings(nameserver, ca_file, https_port, timeout, smtp_port)
    admin_address = admin_option(admin)
    now = rollout_now(now_text)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = read_known(config, db, domains or [], now, rules)
    names = planned_names(known)
    results = run_apply(
        known,
        names,
        settings=settings,
        admin=admin_address,
        admin_off=admin == "off",
        timeout=timeout,
        db=db,
        now=now,
        fixed_clock=now_text is not None,
        rules=rules,
        reason=reason,
    )
    print_results(results)
    raise typer.Exit(int(ExitCode.OK if all(r.outcome is Outcome.DONE for r in results) else ExitCode.PROBLEMS))


def admin_option(admin: str | None) -> ListenAddress | None:
    """``--admin``: an address, or ``None`` (``off``, or not given: the configuration's)."""
    if admin is not None and admin != "off":
        return listen_address(admin, "--admin")
    return None


def print_results(results: list[Applied]) -> None:
    """Per domain: what was done, one line a step, then how the run ended (a failure on stderr;
    a refused change: one line per refusing guard, as ``plan`` prints them)."""
    from mtasts.publish.apply import Outcome

    for result in results:
        typer.echo(f"{result.domain}:" + (f" {say(result.message)}" if result.outcome is Outcome.DONE else ""))
        for line in result.done:
            typer.echo(f"  {say(line)}")
        if result.outcome is Outcome.FAILED:
            sys.stderr.write(f"mtasts: error: {result.domain}: {say(result.message)}\n")
        elif result.outcome is Outcome.REFUSED and result.refusals:
            for line in result.refusals:
                typer.echo(f"  {say(line)}")
        elif result.outcome is not Outcome.DONE:
            typer.echo(f"  {say(result.message)}")
    sys.stderr.flush()


def run_apply(
    known: Known,
    names: list[str],
    *,
    settings: NetworkSettings,
    admin: ListenAddress | None,
    admin_off: bool,
    timeout: float,
    db: str | None,
    now: datetime,
    fixed_clock: bool,
    rules: Rules,
    reason: str | None,
    stop_serving: StopServing | None = None,
) -> list[Applied]:
    """Plan each of ``names`` and carry the plan out (``apply``, and ``retire`` with
    ``stop_serving``) by :func:`mtasts.publish.actions.carry_out`, as the web's publish actions
    do; anticipated trouble exits with one line."""
    from mtasts.cli._run import run_async
    from mtasts.publish.history import SqlPublishHistory
    from mtasts.store.errors import StoreError, UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    admin_address = actions.admin_address(known.config, admin, off=admin_off)
    try:
        secret = actions.read_tsig_secret(known.config)
    except actions.CannotRun as exc:
        fail(say(str(exc)), ExitCode.CANNOT_RUN)
    try:
        store = ReportStore(db or default_db_url(os.environ))
    except UnsupportedDatabase as exc:
        fail(say(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}"), ExitCode.USAGE)
    except StoreError as exc:
        fail(say(exc.message), ExitCode.CANNOT_RUN)

    def clock() -> datetime:
        """When a step happens: the real time, or the fixed --now of a test."""
        return now if fixed_clock else datetime.now(UTC)

    async def run() -> list[Applied]:
        live = await actions.gather_live(names, settings, now, inspect=known)
        with SqlPublishHistory(store) as history:
            return await actions.carry_out(
                known,
                names,
                history=history,
                secret=secret,
                settings=settings,
                admin=admin_address,
                timeout=timeout,
                now=now,
                clock=clock,
                rules=rules,
                reason=reason,
                stop_serving=stop_serving,
                live=live,
            )

    try:
        return run_async(run())
    except StoreError as exc:
        fail(say(exc.message), ExitCode.CANNOT_RUN)
