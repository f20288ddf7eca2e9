"""``mtasts publish retire DOMAIN``: take a domain out of MTA-STS in the only safe order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
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
    SmtpPortOption,
    TimeoutOption,
    network_settings,
    read_known,
    rollout_now,
    say,
    when,
    write_config,
)
from mtasts.cli.publish.apply import admin_option, print_results, run_apply
from mtasts.publish.actions import config_stopper, retire_edit_needed
from mtasts.publish.config import ConfigError, default_config_path

if TYPE_CHECKING:
    from mtasts.publish.rollout import Rules


def retire_command(
    domain: Annotated[str, typer.Argument(help="The domain to take out of MTA-STS.")],
    config: ConfigOption = None,
    db: DbOption = None,
    admin: AdminOption = None,
    max_age: Annotated[
        int, typer.Option("--max-age", min=0, help="The max_age of the mode none body, in seconds.", metavar="S")
    ] = 86400,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    smtp_port: SmtpPortOption = 25,
    timeout: TimeoutOption = 10.0,
    now_text: NowOption = None,
) -> None:
    """Retire DOMAIN in RFC 8461 §8's order; run it again until it says the domain is removed.

    First run: set the entry in --config to mode = "none" with a short max_age (--max-age,
    default a day), then as `apply`: serve the none body, verify it from outside, record it,
    publish its new id (RFC 2136 with [dns], else print the record) and confirm it. Then keep
    serving it until no sender can hold an earlier policy (each earlier body's end of serving
    plus its max_age, from the history): until then a run says when. After that: delete the
    _mta-sts record (RFC 2136, or print exactly what to delete), comment the entry out of
    --config, reload the host, check from outside that no policy is served, and record the
    domain removed. _smtp._tls is left alone (mtasts never publishes it). Exit 0 done or
    waiting, 1 a step failed or a record waits for you, 2 usage, 3 cannot read or write the
    configuration or database."""
    from mtasts.publish.actions import RetireStop, retire_stop
    from mtasts.publish.history import history_domain
    from mtasts.publish.retire import RetireEditError, retire_config_text
    from mtasts.publish.rollout import Rules, retire_entry

    settings = network_settings(nameserver, ca_file, https_port, timeout, smtp_port)
    admin_address = admin_option(admin)
    now = rollout_now(now_text)
    rules = Rules(retire_max_age=max_age)
    path = config or default_config_path()
    name = history_domain(domain)
    known = read_known(path, db, [name], now, rules)
    entry = known.config.domain(name)
    stop = retire_stop(name, path, known.histories[name], entry)
    if stop is not None:
        kind, message = stop
        if kind is RetireStop.REMOVED:
            typer.echo(f"{name}: {say(message)}")
            return
        fail(say(message), ExitCode.USAGE)
    configured: list[str] = []
    if entry is not None and retire_edit_needed(entry, rules):
        wanted = retire_entry(entry, rules)
        try:
            text = path.read_text("utf-8")
            write_config(path, retire_config_text(text, path, name, rules))
        except OSError as exc:
            fail(say(f"cannot read {path}: {exc.strerror or exc}"), ExitCode.CANNOT_RUN)
        except (RetireEditError, ConfigError) as exc:
            fail(say(str(exc)), ExitCode.USAGE)
        configured.append(f'configured: mode = "none", max_age = {wanted.max_age} in {path}')
        known = read_known(path, db, [name], now, rules)
    results = run_apply(
        known,
        [name],
        settings=settings,
        admin=admin_address,
        admin_off=admin == "off",
        timeout=timeout,
        db=db,
        now=now,
        fixed_clock=now_text is not None,
        rules=rules,
        reason=None,
        stop_serving=config_stopper(path, now, write_config),
    )
    from mtasts.publish.apply import Outcome

    (result,) = results
    result = replace(result, done=(*configured, *result.done))
    print_results([result])
    if result.outcome is Outcome.DONE:
        _say_next(path, db, name, now, rules)
    ok = result.outcome in (Outcome.DONE, Outcome.WAITING)
    raise typer.Exit(int(ExitCode.OK if ok else ExitCode.PROBLEMS))


def _say_next(path: Path, db: str | None, name: str, now: datetime, rules: Rules) -> None:
    """After a run that did all it could: removed, or when the next run can go on."""
    from mtasts.publish.actions import retire_progress

    removed, safe_at = retire_progress(read_known(path, db, [name], now, rules).histories[name], now)
    if removed:
        return
    if safe_at is not None:
        what = f"keep serving mode none until {when(safe_at)}, then run mtasts publish retire {name} again"
    else:
        what = f"run mtasts publish retire {name} again to delete the record and stop serving"
    typer.echo(f"  {say(f'next: {what}')}")
