"""``mtasts publish verify``: drift findings for cron. This module gathers the facts (the policy
fetched as a sender fetches it, each address's certificate, the TXT and MX records, the published
history, the configuration) and prints what :func:`mtasts.publish.verify.verify_domain` judges."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import FailOn, exit_for
from mtasts.cli.publish._common import (
    CaFileOption,
    ConfigOption,
    DbOption,
    HttpsPortOption,
    JsonOption,
    NameserverOption,
    TimeoutOption,
    network_settings,
    planned_names,
    read_known,
)
from mtasts.core.problems import Severity
from mtasts.core.untrusted import printable
from mtasts.i18n import current
from mtasts.i18n.words import counted, plural

if TYPE_CHECKING:
    from mtasts.net.dns import DnsClient
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.history import Served
    from mtasts.publish.verify import DomainFacts, DomainVerdict, HostCertificate


def verify_command(
    domains: Annotated[
        list[str] | None,
        typer.Argument(help="Only these domains (default: every configured one and every one still served)."),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    expiry_days: Annotated[
        float,
        typer.Option(
            "--expiry-days", min=0, help="Report a policy host certificate with this many days left or fewer."
        ),
    ] = 14,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe ('never': only 0, 2, 3, 4)."),
    ] = FailOn.WARNING,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Check that what senders see still agrees with what was published (for cron).

    For each domain: the policy is fetched as a sender fetches it (DNS, validated HTTPS, no
    redirect) and must be the body the live _mta-sts id was published for, per the history in
    --db; the TXT record must be unique and valid; every live MX must match the policy; the
    certificate at every address of mta-sts.<domain> must validate and have more than
    --expiry-days left. It also finds the dangerous cases: the body changed but the id did not,
    and an earlier body senders may still hold (within its max_age) that refuses a live MX.
    Read-only: nothing is changed. Exit 0 no finding at --fail-on or above, 1 findings, 2 usage,
    3 the configuration or database cannot be read."""
    from mtasts.cli._run import run_async
    from mtasts.publish.rollout import Rules
    from mtasts.publish.verify import verify_domain

    settings = network_settings(nameserver, ca_file, https_port, timeout)
    now = datetime.now(UTC)
    known = read_known(config, db, domains or [], now, Rules())
    names = planned_names(known)
    if not domains:  # a domain neither configured nor served any more (removed) has nothing to verify
        names = [n for n in names if known.config.domain(n) is not None or _served(known.histories[n])]
    bodies = {}
    for name in names:
        entry = known.config.domain(name)
        bodies[name] = entry.body if entry is not None else None
    facts = run_async(_gather(names, known.histories, bodies, settings, now))
    verdicts = [verify_domain(f, now=now, expiry_days=expiry_days) for f in facts]
    if json_output:
        typer.echo(json.dumps([v.to_dict() for v in verdicts], indent=2, ensure_ascii=False))
    else:
        for verdict in verdicts:
            typer.echo(_verdict_text(verdict))
        typer.echo(_summary(verdicts))
    raise typer.Exit(int(exit_for((f.severity for v in verdicts for f in v.findings), fail_on)))


def _served(history: list[Served]) -> bool:
    return bool(history) and history[-1].current


def _verdict_text(verdict: DomainVerdict) -> str:
    """One domain's findings as ``mtasts check`` shows its own: severity, message and fix in the
    language of ``--lang`` / ``LANG``, the code and the evidence as they are."""
    tr = current()
    what = []
    if verdict.live_id is not None:
        what.append(f"id {verdict.live_id}")
    if verdict.served_sha256 is not None:
        what.append(f"sha256 {verdict.served_sha256[:12]}")
    problems = [f for f in verdict.findings if f.severity is not Severity.INFO]
    if problems:
        head = f"{verdict.domain}: {counted(len(problems), 'problem')}"
    else:
        head = tr.gettext("%(domain)s: ok") % {"domain": verdict.domain}
    lines = [head + (f" ({', '.join(what)})" if what else "")]
    for finding in verdict.findings:
        lines.append(f"  {tr.gettext(finding.severity.value)} {finding.code}: {tr.text(finding.message)}")
        lines.extend(f"    {detail}" for detail in finding.details)
        lines.append("    " + tr.gettext("why: %(reason)s") % {"reason": tr.text(finding.why)})
        lines.append(f"    {tr.gettext('fix: ')}{tr.text(finding.fix)}")
    return "\n".join(map(printable, lines))  # records and replies: the domain's text


def _summary(verdicts: list[DomainVerdict]) -> str:
    counts = dict.fromkeys((Severity.ERROR, Severity.WARNING, Severity.INFO), 0)
    for verdict in verdicts:
        for finding in verdict.findings:
            counts[finding.severity] += 1
    parts = [
        counted(counts[Severity.ERROR], "error"),
        counted(counts[Severity.WARNING], "warning"),
        counted(counts[Severity.INFO], "note"),
    ]
    tr = current()
    if tr.tag == "en":
        return f"{plural(len(verdicts), 'domain')} verified: {', '.join(parts)}"
    # a plural form, not a shape: a sentence shape beginning with a count would swallow others
    forms = ("%(num)d domain verified: %(counts)s", "%(num)d domains verified: %(counts)s")
    return tr.ngettext(*forms, len(verdicts)) % {"num": len(verdicts), "counts": ", ".join(parts)}


async def _gather(
    names: list[str],
    histories: dict[str, list[Served]],
    bodies: dict[str, bytes | None],
    settings: NetworkSettings,
    now: datetime,
) -> list[DomainFacts]:
    """The facts of every domain, gathered concurrently through the inspector's adapters."""
    import asyncio

    from mtasts.net.dns import DnsClient

    dns = DnsClient(settings)
    return list(
        await asyncio.gather(
            *(_facts(name, tuple(histories[name]), bodies[name], dns, settings, now) for name in names)
        )
    )


async def _facts(
    name: str,
    history: tuple[Served, ...],
    configured_body: bytes | None,
    dns: DnsClient,
    settings: NetworkSettings,
    now: datetime,
) -> DomainFacts:
    import asyncio

    from mtasts.core.fetch import FetchFailureKind
    from mtasts.net.dns import LookupStatus
    from mtasts.net.https import fetch_policy
    from mtasts.publish.verify import DomainFacts

    txt, mx, fetched = await asyncio.gather(
        dns.txt(f"_mta-sts.{name}"), dns.mx(name), fetch_policy(name, dns, settings, now=now)
    )
    records: tuple[str, ...] | None = None
    if txt.status is not LookupStatus.FAILED:
        records = tuple(b"".join(strings).decode("utf-8", "replace") for strings in txt.values)
    hosts: tuple[str, ...] | None = None
    if mx.status is not LookupStatus.FAILED:
        hosts = tuple(m.host for m in mx.values if m.host)
    invalid = ""
    if fetched.failure is FetchFailureKind.SYNTAX:
        problems = [p.message for p in fetched.problems if p.severity is Severity.ERROR]
        invalid = "; ".join(problems[:3]) or fetched.detail
    certificates = await asyncio.gather(
        *(_certificate(fetched.host, address, settings, now) for address in fetched.addresses.values)
    )
    return DomainFacts(
        domain=name,
        history=history,
        configured_body=configured_body,
        served_body=fetched.body if fetched.failure in (None, FetchFailureKind.SYNTAX) else None,
        fetch_error="" if fetched.failure is None else (fetched.detail or str(fetched.failure)),
        policy_invalid=invalid,
        sts_records=records,
        txt_error=txt.detail,
        mx_hosts=hosts,
        mx_error=mx.detail,
        null_mx=any(not m.host for m in mx.values),
        certificates=tuple(certificates),
    )


async def _certificate(host: str, address: str, settings: NetworkSettings, now: datetime) -> HostCertificate:
    """The certificate ``address`` presents for ``host``, validated as a sender validates it
    (each address: a host behind several addresses can serve a stale certificate on one)."""
    import asyncio

    from mtasts.net._streams import Streams, close_quietly, open_stream
    from mtasts.net.tls import inspect_tls
    from mtasts.publish.verify import HostCertificate

    async def connect() -> Streams:
        return await open_stream(
            address, settings.https_port, refuse_non_public=not settings.allow_private, limit=2**16
        )

    try:
        async with asyncio.timeout(settings.timeout):
            tls, opened = await inspect_tls(connect, host, settings.ca_file, settings.timeout, now)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return HostCertificate(address, failure=f"cannot connect: {reason}")
    if opened is not None:
        await close_quietly(opened[1])
    not_after = tls.certificate.not_after if tls.certificate is not None else None
    return HostCertificate(address, not_after=not_after, failure="" if tls.ok else tls.detail)
