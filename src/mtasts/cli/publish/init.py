"""``mtasts publish init DOMAIN``: a starting ``[[domain]]`` entry from live DNS."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import (
    CaFileOption,
    ConfigOption,
    HttpsPortOption,
    NameserverOption,
    NowOption,
    SmtpPortOption,
    TimeoutOption,
    config_failed,
    network_settings,
    rollout_now,
    say,
    write_config,
)
from mtasts.i18n import current
from mtasts.i18n.words import counted
from mtasts.publish.config import ConfigError, default_config_path

if TYPE_CHECKING:
    from mtasts.check.analysis import Observations
    from mtasts.publish.init import InitFacts

CertOption = Annotated[
    Path | None,
    typer.Option("--cert", help="The PEM certificate chain of mta-sts.DOMAIN, written into the entry.", dir_okay=False),
]
KeyOption = Annotated[
    Path | None, typer.Option("--key", help="Its PEM private key, written into the entry.", dir_okay=False)
]


def init_command(
    domain: Annotated[str, typer.Argument(help="The mail domain to start publishing a policy for.")],
    config: ConfigOption = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the entry on stdout instead of appending it to --config.")
    ] = False,
    cert: CertOption = None,
    key: KeyOption = None,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    smtp_port: SmtpPortOption = 25,
    timeout: TimeoutOption = 10.0,
    now_text: NowOption = None,
) -> None:
    """Write a starting [[domain]] entry for DOMAIN from what is live, through the inspector.

    The entry lists the live MX hosts (a "*." pattern is suggested, as a comment, only when
    several share a parent), mode = "testing", max_age = 86400, the rua of a valid _smtp._tls
    record, and, as comments, any policy already live and the inspector's findings that would
    block enforce (its analysis as if the policy were enforced now, with codes and fixes; also
    on stderr). Appended to --config (created if missing; a domain already there is refused),
    or printed with --print. Exit 0 written, 1 the domain cannot have a policy (no MX, null MX,
    no such domain), 2 usage, 3 DNS or a file cannot be used."""
    from mtasts.check.inspect import normalize_domain

    name, why = normalize_domain(domain)
    if name is None:
        fail(say(why), ExitCode.USAGE)
    if (cert is None) != (key is None):
        fail(say(f"--cert and --key go together: the chain of mta-sts.{name} and its key"), ExitCode.USAGE)
    for option, path in (("--cert", cert), ("--key", key)):
        if path is not None and not path.is_file():
            fail(say(f"{option} {path}: no such file"), ExitCode.CANNOT_RUN)
    settings = network_settings(nameserver, ca_file, https_port, timeout, smtp_port)
    now = rollout_now(now_text)
    path = config or default_config_path()
    existing = None if print_only else _existing(path, name)

    from mtasts.cli._run import run_async
    from mtasts.publish.actions import observe
    from mtasts.publish.init import InitError, append_entry, entry_text

    observations = run_async(observe(name, settings))
    facts = _facts(
        name,
        observations,
        cert=None if cert is None else cert.resolve(),
        key=None if key is None else key.resolve(),
    )
    try:
        entry = entry_text(facts, now=now)
    except InitError as exc:
        fail(say(str(exc)), ExitCode.PROBLEMS)
    tr = current()
    for finding in facts.blocking:  # the message names the host and address itself
        line = tr.gettext("%(name)s: would block enforce: %(code)s: %(message)s; fix: %(fix)s") % {
            "name": name,
            "code": finding.code,
            "message": tr.text(finding.message),
            "fix": tr.text(finding.fix),
        }
        sys.stderr.write(f"mtasts: warning: {line}\n")
    sys.stderr.flush()
    if print_only:
        typer.echo(entry, nl=False)
        return
    try:
        text = append_entry(existing, entry, path, name)
    except InitError as exc:
        fail(say(str(exc)), ExitCode.USAGE)
    except ConfigError as exc:
        config_failed(exc)
    write_config(path, text)
    values = {"name": name, "path": path, "hosts": counted(len(set(facts.mx_hosts)), "MX host")}
    if facts.rua:
        added = tr.gettext("%(name)s: added to %(path)s (mode testing, max_age 86400, %(hosts)s, rua %(rua)s)")
        values["rua"] = ", ".join(facts.rua)
    else:
        added = tr.gettext("%(name)s: added to %(path)s (mode testing, max_age 86400, %(hosts)s, no rua)")
    blocking = ""
    if facts.blocking:
        blocking = tr.gettext("; %(findings)s would block enforce") % {
            "findings": counted(len(facts.blocking), "finding")
        }
    typer.echo(added % values + blocking)


def _existing(path: Path, name: str) -> str | None:
    """The configuration's text (``None``: no file yet), checked before any network work: it
    must load, and must not name the domain already."""
    from mtasts.publish.config import parse_config

    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        fail(say(f"cannot read {path}: {detail or exc}"), ExitCode.CANNOT_RUN)
    try:
        found = parse_config(text, path).domain(name)
    except ConfigError as exc:
        config_failed(exc)
    if found is not None:
        where = f" (line {found.line})" if found.line else ""
        fail(say(f"{name} is configured already in {path}{where}: edit that entry instead"), ExitCode.USAGE)
    return text


def _facts(name: str, observations: Observations, *, cert: Path | None, key: Path | None) -> InitFacts:
    """What the entry is written from; DNS trouble that leaves the MX unknown stops here."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from mtasts.check.analysis import analyse
    from mtasts.net.dns import LookupStatus
    from mtasts.publish.actions import as_if_enforced, enforce_blockers
    from mtasts.publish.init import InitFacts, LivePolicy, initial_policy

    if observations.local_dns:
        fail(say(f"{observations.local_dns}: nothing is known about {name}"), ExitCode.CANNOT_RUN)
    mx = observations.mx
    if mx.status is LookupStatus.FAILED:
        fail(say(f"the MX lookup of {name} failed: {mx.detail}"), ExitCode.CANNOT_RUN)
    if mx.nxdomain:
        fail(say(f"{name} does not exist (the DNS answers NXDOMAIN): check the spelling"), ExitCode.PROBLEMS)
    hosts = tuple(m.host for m in mx.values)
    if hosts == ("",):
        fail(
            say(f"{name} publishes a null MX (RFC 7505): it accepts no mail, MTA-STS has nothing to protect"),
            ExitCode.PROBLEMS,
        )
    now = datetime.now(UTC)  # certificates are judged by the real clock
    analysis = analyse(observations, now=now)
    tlsrpt_note = next((f.message for f in analysis.findings if f.code.startswith("tlsrpt-")), "")
    live = None
    if analysis.sts_record is not None and analysis.policy is not None:
        policy = analysis.policy
        live = LivePolicy(analysis.sts_record.id, policy.mode, policy.max_age)
    facts = InitFacts(
        name,
        hosts,
        rua=() if analysis.tlsrpt is None else analysis.tlsrpt.rua,
        tlsrpt_note=tlsrpt_note,
        live=live,
        cert=cert,
        key=key,
    )
    if not hosts:
        return facts  # entry_text says there is no MX
    preview = analyse(as_if_enforced(observations, initial_policy(facts)), now=now)
    return replace(facts, blocking=enforce_blockers(preview))
