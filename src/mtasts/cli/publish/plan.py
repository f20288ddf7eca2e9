"""``mtasts publish plan`` and ``mtasts publish status``: the ordered steps of each domain's
roll-out with their reasons, and where each domain stands."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.publish._common import (
    CaFileOption,
    ConfigOption,
    DbOption,
    HttpsPortOption,
    JsonOption,
    NameserverOption,
    NowOption,
    ReasonOption,
    ReportersOption,
    SmtpPortOption,
    TestingDaysOption,
    TimeoutOption,
    check_force,
    network_settings,
    planned_names,
    read_known,
    rollout_now,
    say,
    when,
)
from mtasts.core.untrusted import printable
from mtasts.i18n import current
from mtasts.i18n.words import counted

if TYPE_CHECKING:
    from mtasts.publish.rollout import DomainStatus, Plan


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
    smtp_port: SmtpPortOption = 25,
    timeout: TimeoutOption = 10.0,
    now_text: NowOption = None,
) -> None:
    """Compare the configuration with what is live and print the ordered steps, with reasons.

    For each domain: what its policy host serves (fetched as a sender fetches it), its _mta-sts
    TXT record and MX records, against the configuration and the published history in --db.
    The steps follow RFC 8461 §8: serve the new body, verify it from outside, only then publish
    the new id in the TXT record, and confirm it. testing → enforce is refused before
    --testing-days in testing with reports from --reporters organisations and no sts,
    certificate or STARTTLS failures for the listed MX, and unless the inspector, probing the live
    MX (--smtp-port for tests), predicts that enforce would block none of the listed MX; max_age
    grows only after enforce has
    been served for its old value. mode = "none" retires a domain. Nothing is changed
    (`apply` comes next). Exit 0 planned, 1 a change is refused or cannot be planned, 2 usage,
    3 the configuration or database cannot be read."""
    from mtasts.cli._run import run_async
    from mtasts.publish.actions import gather_live, plan_of
    from mtasts.publish.rollout import Rules

    check_force(force, reason)
    settings = network_settings(nameserver, ca_file, https_port, timeout, smtp_port)
    now = rollout_now(now_text)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = read_known(config, db, domains or [], now, rules)
    names = planned_names(known)
    live = run_async(gather_live(names, settings, now, inspect=known))
    plans = [plan_of(known, name, live[name], now=now, rules=rules, reason=reason) for name in names]
    if json_output:
        typer.echo(json.dumps([p.to_dict() for p in plans], indent=2, ensure_ascii=False))
    else:
        for plan in plans:
            typer.echo(_plan_text(plan))
    raise typer.Exit(int(ExitCode.PROBLEMS if any(p.refusals for p in plans) else ExitCode.OK))


def _plan_text(plan: Plan) -> str:
    """The plan in the language of ``--lang`` / ``LANG``: the domain, stages and ids as they are."""
    tr = current()
    head = f"{plan.domain}: {plan.stage.value}"
    if plan.target is not None and plan.target is not plan.stage:
        head += f" → {plan.target.value}"
    lines = []
    if plan.nothing_to_do:
        done = tr.gettext("nothing to do (id %(id)s)") % {"id": plan.policy_id} if plan.policy_id else ""
        lines.append(f"{head}: {done or tr.gettext('nothing to do')}")
    else:
        lines.append(f"{head}")
    lines.extend(f"  {tr.text(refusal)}" for refusal in plan.refusals)
    for number, step in enumerate(plan.steps, 1):
        lines.append(f"  {number}. {tr.text(step.text)}")
        lines.append("     " + tr.gettext("why: %(reason)s") % {"reason": tr.text(step.reason)})
    lines.extend("  " + tr.gettext("note: %(detail)s") % {"detail": tr.text(note)} for note in plan.notes)
    return "\n".join(map(printable, lines))  # guards quote TLS reports: a sender's name is its text


def status_command(
    domains: Annotated[list[str] | None, typer.Argument(help="Only these domains (default: all).")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
    now_text: NowOption = None,
) -> None:
    """Each domain's roll-out state, the guard values (days in testing, reporters, failures)
    and what comes next and when, from the configuration, the history and the reports in --db
    (no network: quick, and cron-able). Exit 0, 2 usage, 3 cannot read the configuration or
    database."""
    from mtasts.publish.rollout import Rules, domain_status

    now = rollout_now(now_text)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = read_known(config, db, domains or [], now, rules)
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
    typer.echo(f"{counted(len(statuses), 'domain')}" + (f": {counts}" if counts else ""))


def _status_text(status: DomainStatus) -> str:
    """Where a domain stands, in the language of ``--lang`` / ``LANG`` (stages, guard names and
    ids as they are)."""
    tr = current()
    current_entry = status.current
    head = f"{status.domain}: {status.stage.value}"
    if current_entry is not None:
        head += tr.gettext(" since %(when)s (id %(id)s, max_age %(max_age)s)") % {
            "when": when(current_entry.since),
            "id": current_entry.policy_id,
            "max_age": current_entry.max_age,
        }
    elif status.removed_at is not None:
        head += tr.gettext(" on %(when)s") % {"when": when(status.removed_at)}
    if status.configured is not None and status.configured is not status.stage:
        head += tr.gettext("; configured: %(stage)s") % {"stage": status.configured.value}
    lines = [head]
    if status.guards:
        values = ", ".join(
            f"{g.guard.value} {say(str(g.value))}/{say(str(g.required))}"
            + ("" if g.passed else tr.gettext(" (not yet)"))
            for g in status.guards
        )
        lines.append("  " + tr.gettext("guards: %(values)s") % {"values": values})
    what = tr.text(status.next)
    if status.next_at:
        lines.append(
            "  " + tr.gettext("next: %(detail)s, from %(when)s") % {"detail": what, "when": when(status.next_at)}
        )
    else:
        lines.append("  " + tr.gettext("next: %(detail)s") % {"detail": what})
    return "\n".join(map(printable, lines))  # guards quote TLS reports: a sender's name is its text
