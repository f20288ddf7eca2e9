"""From what the network said to findings and a verdict. Pure: no I/O, the time is passed in.

Each section turns one kind of outcome into findings; the code tables say which outcome gets
which code, so a new case is a new row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mtasts.core.advice import policy_advice
from mtasts.core.fetch import FetchFailureKind
from mtasts.core.findings import Finding, mx_severity
from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import MultipleRecordsError, NoRecordError, ParseError, Severity
from mtasts.core.record import StsRecord, select_sts_record
from mtasts.core.tlsrpt_record import TlsRptRecord, select_tlsrpt_record
from mtasts.core.verdict import MxState, Verdict, nonexistent_verdict, sender_verdict, unknown_verdict
from mtasts.net.dns import Lookup, LookupStatus, MxHost
from mtasts.net.https import PolicyFetch
from mtasts.net.smtp import MxProbe, SmtpFailureKind
from mtasts.net.tls import TlsFailureKind

__all__ = ["InternalError", "Observations", "Unprobed", "analyse"]


@dataclass(frozen=True, slots=True)
class Unprobed:
    """An MX host (``address`` ``None``) or one of its addresses that was not probed, and why:
    ``budget`` when the domain's time ran out (the result is unknown: a warning), else a cap."""

    host: str
    address: str | None
    reason: str
    budget: bool = False


@dataclass(frozen=True, slots=True)
class InternalError:
    """An unexpected exception while looking at ``name`` (a bug of mtasts, said as a finding)."""

    name: str
    address: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything the inspector gathered about one domain. ``local_dns`` names our resolver
    when it answered nothing at all; ``port25_blocked`` is the connect error every MX of the
    run failed with when that looks like this machine's network."""

    domain: str
    sts_txt: Lookup[tuple[bytes, ...]]
    fetch: PolicyFetch
    mx: Lookup[MxHost]
    addresses: dict[str, Lookup[str]] = field(default_factory=dict)
    probes: tuple[MxProbe, ...] = ()
    tlsa: dict[str, Lookup[str]] = field(default_factory=dict)
    tlsrpt_txt: Lookup[tuple[bytes, ...]] | None = None
    unprobed: tuple[Unprobed, ...] = ()
    errors: tuple[InternalError, ...] = ()
    budget: float = 0.0
    local_dns: str = ""
    port25_blocked: str = ""


@dataclass(frozen=True, slots=True)
class Analysis:
    findings: tuple[Finding, ...]
    verdict: Verdict
    sts_record: StsRecord | None
    policy: Policy | None
    tlsrpt: TlsRptRecord | None


_FETCH_CODES: dict[FetchFailureKind, str] = {
    FetchFailureKind.UNRESOLVABLE: "policy-host-unresolvable",
    FetchFailureKind.LOOKUP_FAILED: "policy-host-lookup-failed",
    FetchFailureKind.CONNECT: "policy-fetch-failed",
    FetchFailureKind.TLS: "policy-fetch-failed",
    FetchFailureKind.PROTOCOL: "policy-fetch-failed",
    FetchFailureKind.TLS_CERTIFICATE: "policy-cert-invalid",
    FetchFailureKind.TIMEOUT: "policy-timeout",
    FetchFailureKind.HTTP_STATUS: "policy-fetch-http-status",
    FetchFailureKind.REDIRECT: "policy-fetch-redirect",
    FetchFailureKind.CONTENT_TYPE: "policy-content-type",
    FetchFailureKind.TOO_LARGE: "policy-too-large",
    FetchFailureKind.SYNTAX: "policy-syntax",
}

_FETCH_FIXES: dict[FetchFailureKind, str] = {
    FetchFailureKind.UNRESOLVABLE: "Publish an A and/or AAAA record (or a CNAME) for {host}.",
    FetchFailureKind.LOOKUP_FAILED: "Make the DNS servers of {host} answer (the lookup failed, it did not say 'no').",
    FetchFailureKind.CONNECT: "Run an HTTPS server on {host} port 443 that serves {url}.",
    FetchFailureKind.TLS: "Serve {host} over TLS 1.2 or newer with a valid certificate.",
    FetchFailureKind.PROTOCOL: "Serve the policy over plain HTTP/1.1 semantics at {url}.",
    FetchFailureKind.TLS_CERTIFICATE: "Install a certificate for {host} from a public CA (with the full chain).",
    FetchFailureKind.TIMEOUT: "Make {url} answer within a few seconds; senders give up quickly.",
    FetchFailureKind.HTTP_STATUS: "Serve the policy file at exactly {url} with status 200.",
    FetchFailureKind.REDIRECT: "Serve the policy directly at {url}: senders never follow redirects.",
    FetchFailureKind.CONTENT_TYPE: "Serve the file with 'Content-Type: text/plain'.",
    FetchFailureKind.TOO_LARGE: "Serve only the policy file (a few hundred bytes), not another document.",
    FetchFailureKind.SYNTAX: "Fix the policy file; 'mtasts lint policy' checks a local copy.",
}

_TLS_CODES: dict[TlsFailureKind, str] = {
    TlsFailureKind.EXPIRED: "mx-cert-expired",
    TlsFailureKind.NOT_YET_VALID: "mx-cert-expired",
    TlsFailureKind.NAME_MISMATCH: "mx-cert-name-mismatch",
    TlsFailureKind.SELF_SIGNED: "mx-cert-untrusted",
    TlsFailureKind.UNTRUSTED: "mx-cert-untrusted",
    TlsFailureKind.CHAIN_INCOMPLETE: "mx-cert-chain-incomplete",
    TlsFailureKind.VERSION_TOO_OLD: "mx-tls-version-too-old",
    TlsFailureKind.TIMEOUT: "mx-starttls-failed",
    TlsFailureKind.HANDSHAKE: "mx-starttls-failed",
    TlsFailureKind.MALFORMED: "mx-cert-malformed",
}

_TLS_FIXES: dict[TlsFailureKind, str] = {
    TlsFailureKind.EXPIRED: "Renew the certificate of {host} and reload the MTA.",
    TlsFailureKind.NOT_YET_VALID: "Check the certificate dates and the server clock of {host}.",
    TlsFailureKind.NAME_MISMATCH: "Install a certificate whose subjectAltName includes {host}.",
    TlsFailureKind.SELF_SIGNED: "Replace the self-signed certificate of {host} with one from a public CA.",
    TlsFailureKind.UNTRUSTED: "Use a certificate for {host} from a publicly trusted CA.",
    TlsFailureKind.CHAIN_INCOMPLETE: "Configure the MTA with the full chain (leaf and intermediates: fullchain.pem).",
    TlsFailureKind.VERSION_TOO_OLD: "Enable TLS 1.2 and 1.3 on {host} (and disable TLS 1.0/1.1).",
    TlsFailureKind.TIMEOUT: "Check the TLS configuration of {host}: the handshake does not complete.",
    TlsFailureKind.HANDSHAKE: "Check the TLS configuration of {host}: the handshake fails.",
    TlsFailureKind.MALFORMED: "Reissue the certificate of {host} with subjectAltName DNS names in ASCII (A-labels).",
}

_SMTP_CODES: dict[SmtpFailureKind, str] = {
    SmtpFailureKind.UNREACHABLE: "mx-unreachable",
    SmtpFailureKind.TIMEOUT: "mx-unreachable",
    SmtpFailureKind.PROTOCOL: "mx-starttls-failed",
    SmtpFailureKind.NO_STARTTLS: "mx-no-starttls",
    SmtpFailureKind.STARTTLS_REFUSED: "mx-starttls-failed",
    SmtpFailureKind.INTERNAL: "mx-internal-error",
}

_BUG_FIX = (
    "This is a bug in mtasts (or input it does not handle yet): rerun with --debug for the traceback "
    "and report it; the other checks are not affected."
)

_SMTP_FIXES: dict[SmtpFailureKind, str] = {
    SmtpFailureKind.UNREACHABLE: "Make {host} accept connections on port 25 (firewall, service).",
    SmtpFailureKind.TIMEOUT: "Make {host} answer on port 25 without delay.",
    SmtpFailureKind.PROTOCOL: "Check the SMTP service on {host}: it does not complete EHLO and STARTTLS.",
    SmtpFailureKind.NO_STARTTLS: "Enable STARTTLS on {host} (e.g. Postfix smtpd_tls_security_level = may).",
    SmtpFailureKind.STARTTLS_REFUSED: "Fix the TLS set-up of {host}: it offers STARTTLS and then refuses it.",
    SmtpFailureKind.INTERNAL: _BUG_FIX,
}


def analyse(obs: Observations, *, now: datetime, expiry_warning_days: float = 14) -> Analysis:
    """Turn the observations about one domain into findings and a sender's verdict."""
    early = _local_or_absent(obs)
    if early is not None:
        return early
    findings: list[Finding] = [
        Finding(
            "check-internal-error",
            Severity.ERROR,
            f"the check of {error.name} stopped on an unexpected error: {error.detail}",
            _BUG_FIX,
            host=error.name,
            address=error.address,
        )
        for error in obs.errors
    ]
    record = _record_findings(obs, findings)
    policy = _policy_findings(obs, findings, record_found=record is not None, now=now, warn_days=expiry_warning_days)
    states = _mx_findings(obs, findings, policy, now=now, warn_days=expiry_warning_days)
    tlsrpt = _tlsrpt_findings(obs, findings)
    # a sender applies a policy only when the record announces it (RFC 8461 §3.1, §3.3)
    effective = policy if record is not None else None
    null_mx = obs.mx.found and [mx.host for mx in obs.mx.values] == [""]
    verdict = sender_verdict(
        effective, states, accepts_mail=not null_mx, unannounced=policy is not None and record is None
    )
    if not states and obs.unprobed:  # there are MX hosts, but the budget ran out before any answer
        verdict = unknown_verdict("not known: no MX host was probed within the domain's time budget")
    if obs.port25_blocked:
        findings = [f for f in findings if f.code != "mx-unreachable"]
        findings.append(
            Finding(
                "local-port25-blocked",
                Severity.ERROR,
                f"no MX of {obs.domain} could be connected to ({obs.port25_blocked}), and neither could any other "
                "MX this run tried, in several domains: outbound port 25 is probably blocked on this machine "
                "or its network, so nothing is known about these MX hosts",
                "Run the check from a host that may connect to port 25 (many ISPs and clouds block it; ask for it "
                "to be opened, or check the local firewall).",
            )
        )
        verdict = unknown_verdict("not known: this machine cannot connect to port 25 (see local-port25-blocked)")
    elif not verdict.mail_flows and states:
        _escalate_unreachable(findings)
    return Analysis(_ordered(findings), verdict, record, policy, tlsrpt)


def _ordered(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return tuple(sorted(findings, key=lambda f: (order[f.severity], f.area.value)))


def _local_or_absent(obs: Observations) -> Analysis | None:
    """When our own resolver is dead, or the domain does not exist, one finding says so and
    nothing else is concluded: every other finding would blame the domain for nothing."""
    if obs.local_dns:
        finding = Finding(
            "local-dns-unreachable",
            Severity.ERROR,
            f"{obs.local_dns}: the trouble is on this side, nothing is known about the domain",
            "Point --nameserver at a working recursive resolver, or fix /etc/resolv.conf (is the resolver "
            "running, reachable from here, listening on that port, answering for this machine?).",
        )
        return Analysis(
            (finding,), unknown_verdict("not known: the nameserver this check uses does not answer"), None, None, None
        )
    if obs.mx.nxdomain and obs.mx.name == obs.domain:
        finding = Finding(
            "domain-nxdomain",
            Severity.ERROR,
            f"{obs.domain} does not exist (the DNS answers NXDOMAIN): check the spelling",
            f"Check the spelling of {obs.domain}; if it is right, the domain is not registered or not delegated.",
        )
        return Analysis((finding,), nonexistent_verdict(), None, None, None)
    return None


def _record_findings(obs: Observations, findings: list[Finding]) -> StsRecord | None:
    name = f"_mta-sts.{obs.domain}"
    lookup = obs.sts_txt
    if lookup.status is LookupStatus.FAILED:
        findings.append(
            Finding(
                "sts-record-lookup-failed",
                Severity.ERROR,
                f"the TXT lookup of {name} failed: {lookup.detail}",
                f"Make the DNS servers of {obs.domain} answer for {name}.",
                host=name,
            )
        )
        return None
    try:
        return select_sts_record(lookup.values)
    except NoRecordError:
        findings.append(
            Finding(
                "no-sts-record",
                Severity.ERROR,
                f"{name} has no TXT record beginning with 'v=STSv1;': senders will not look for a policy",
                f"Publish the policy, then the TXT record {name} \"v=STSv1; id=<id>\" ('mtasts generate' prints it).",
                host=name,
            )
        )
    except MultipleRecordsError as exc:
        findings.append(
            Finding(
                "multiple-sts-records",
                Severity.ERROR,
                f"{name}: {exc.message}",
                "Delete all but one 'v=STSv1' TXT record.",
                host=name,
                details=tuple(_txt_text(r) for r in lookup.values),
            )
        )
    except ParseError as exc:
        findings.append(
            Finding(
                "sts-record-syntax",
                Severity.ERROR,
                f"{name} is invalid: {exc.message}; senders treat the domain as having no policy",
                exc.fix,
                host=name,
                details=(*(_txt_text(r) for r in lookup.values), *(str(p.message) for p in exc.errors[1:])),
            )
        )
    return None


def _lint_finding(fetch: PolicyFetch) -> Finding:
    """A policy that senders accept (:func:`~mtasts.core.policy.parse_policy`) whose file the
    owner's lint still faults: an error for a malformed repeat senders ignore (RFC 8461 §3.2),
    a warning for a harmless repeat. The verdict follows the sender's reading."""
    first = next((p for p in fetch.problems if p.severity is Severity.ERROR), fetch.problems[0])
    where = f"{first.location}: " if first.location else ""
    return Finding(
        "policy-lint",
        Severity.ERROR if first.severity is Severity.ERROR else Severity.WARNING,
        f"{fetch.url}: {where}{first.message} [{first.code}]",
        f"{first.fix} ('mtasts lint policy' checks a local copy.)",
        host=fetch.host,
        address=fetch.address,
        details=tuple(f"{p.location or 'policy'}: {p.message} [{p.code}]" for p in fetch.problems if p is not first),
    )


def _policy_findings(
    obs: Observations, findings: list[Finding], *, record_found: bool, now: datetime, warn_days: float
) -> Policy | None:
    fetch = obs.fetch
    values = {"host": fetch.host, "url": fetch.url}
    if fetch.internal_error:
        findings.append(
            Finding(
                "policy-internal-error",
                Severity.ERROR,
                f"the fetch of {fetch.url} stopped on an unexpected error: {fetch.internal_error}",
                _BUG_FIX,
                host=fetch.host,
                address=fetch.address,
            )
        )
        return None
    if fetch.failure is not None:
        if not record_found and fetch.failure in (FetchFailureKind.UNRESOLVABLE, FetchFailureKind.CONNECT):
            return None  # no record and no policy host: the domain simply does not use MTA-STS
        code = _FETCH_CODES[fetch.failure]
        if fetch.tls is not None and fetch.tls.failure is TlsFailureKind.MALFORMED:
            code = "policy-cert-malformed"
        details: tuple[str, ...] = ()
        message = f"{fetch.url}: {fetch.detail}"
        fix = _FETCH_FIXES[fetch.failure].format(**values)
        if code == "policy-cert-malformed":
            fix = f"Reissue the certificate of {fetch.host} with subjectAltName DNS names in ASCII (A-labels)."
        if fetch.failure is FetchFailureKind.SYNTAX:
            errors = [p for p in fetch.problems if p.severity is Severity.ERROR]
            if errors:
                first = errors[0]
                where = f"{first.location}: " if first.location else ""
                message = f"{fetch.url}: the policy is invalid: {where}{first.message}"
                fix = f"{first.fix} ('mtasts lint policy' checks a local copy.)"
                details = tuple(
                    f"{p.location or 'policy'}: {p.message} [{p.code}]" for p in fetch.problems if p is not first
                )
        findings.append(
            Finding(
                code,
                Severity.ERROR,
                message,
                fix,
                host=fetch.host,
                address=fetch.address,
                details=details,
            )
        )
        return None
    policy = fetch.policy
    if policy is None:
        return None
    if fetch.problems:
        findings.append(_lint_finding(fetch))
    certificate = fetch.tls.certificate if fetch.tls is not None else None
    if certificate is not None and certificate.days_left(now) < warn_days:
        findings.append(
            Finding(
                "policy-cert-expiring-soon",
                Severity.WARNING,
                f"the certificate of {fetch.host} expires on {certificate.not_after:%Y-%m-%d} "
                f"(in {max(certificate.days_left(now), 0):.0f} days); then senders cannot refresh the policy",
                f"Renew the certificate of {fetch.host} (automate renewal, e.g. ACME).",
                host=fetch.host,
                address=fetch.address,
            )
        )
    findings.extend(_max_age_findings(policy, fetch.host))
    if policy.mode is Mode.TESTING:
        findings.append(
            Finding(
                "policy-mode-testing",
                Severity.INFO,
                "the policy is in testing mode: senders deliver even when validation fails, and report it",
                "Watch the TLS reports; switch to 'mode: enforce' (and change the id) once no sender fails.",
                host=fetch.host,
            )
        )
    elif policy.mode is Mode.NONE:
        findings.append(
            Finding(
                "policy-mode-none",
                Severity.INFO,
                "the policy is in mode none: MTA-STS is switched off for this domain",
                "Use 'mode: testing' to start protecting and monitoring mail (and change the id).",
                host=fetch.host,
            )
        )
    return policy


def _max_age_findings(policy: Policy, host: str) -> list[Finding]:
    """A ``max_age`` too short for the policy's mode, in the words ``mtasts lint policy`` and
    ``mtasts generate`` use for it (:func:`mtasts.core.advice.policy_advice`: one rule table).
    Only that advice: the inspector reports TLS reporting in its own findings (``tlsrpt-*``)."""
    return [
        Finding("policy-max-age-short", Severity.WARNING, advice.message, advice.fix, host=host)
        for advice in policy_advice(policy, reporting=True)
        if advice.code == "policy.max_age.short"
    ]


def _mx_findings(
    obs: Observations, findings: list[Finding], policy: Policy | None, *, now: datetime, warn_days: float
) -> list[MxState]:
    mode = None if policy is None else policy.mode
    lookup = obs.mx
    if lookup.status is LookupStatus.FAILED:
        findings.append(
            Finding(
                "mx-lookup-failed",
                Severity.ERROR,
                f"the MX lookup of {obs.domain} failed: {lookup.detail}",
                f"Make the DNS servers of {obs.domain} answer MX queries.",
            )
        )
        return []
    hosts = [mx.host for mx in lookup.values]
    if not hosts:
        findings.append(
            Finding(
                "mx-missing",
                Severity.ERROR,
                f"{obs.domain} has no MX records; MTA-STS protects delivery to MX hosts only",
                f"Publish MX records for {obs.domain}.",
            )
        )
        return []
    if hosts == [""]:
        findings.append(
            Finding(
                "mx-null",
                Severity.INFO,
                f"{obs.domain} publishes a null MX (RFC 7505): it accepts no mail, so MTA-STS has nothing to protect",
                "Nothing to do, unless the domain should receive mail.",
            )
        )
        return []
    states: list[MxState] = []
    _unprobed_findings(obs, findings)
    not_probed = {u.host for u in obs.unprobed if u.address is None}
    for host in dict.fromkeys(hosts):
        if policy is not None and policy.mode is not Mode.NONE and not policy.matches(host):
            findings.append(
                Finding(
                    "mx-not-in-policy",
                    mx_severity(mode),
                    f"the MX {host} matches no 'mx' line of the policy"
                    + ("; senders refuse to deliver to it" if mode is Mode.ENFORCE else ""),
                    f"Add 'mx: {host}' (or a '*.' pattern covering it) to the policy and change the policy id.",
                    host=host,
                    details=tuple(f"policy mx: {p}" for p in policy.mx),
                )
            )
        if host in not_probed:
            continue  # nothing is known: no verdict on it (mx-not-probed says so)
        states.append(_probe_findings(obs, findings, host, mode, now, warn_days))
    if policy is not None:
        # each host's matching pattern once: a policy and an MX set of hundreds each must not
        # cost hundreds cubed
        used = {policy.matching_pattern(h) for h in dict.fromkeys(hosts)}
        for pattern in policy.mx:
            if pattern not in used:
                findings.append(
                    Finding(
                        "policy-mx-unused",
                        Severity.INFO,
                        f"the policy pattern 'mx: {pattern}' matches none of the MX hosts",
                        "Remove it unless it is for an MX you are about to add.",
                        host=obs.fetch.host,
                    )
                )
    for host, tlsa in obs.tlsa.items():
        if tlsa.found:
            findings.append(
                Finding(
                    "mx-dane",
                    Severity.INFO,
                    f"{host} publishes TLSA records at _25._tcp.{host}: senders that support DANE validate with "
                    "DANE instead of MTA-STS (RFC 8461 §2)",
                    "Keep the TLSA records in step with the MX certificates.",
                    host=host,
                    details=tlsa.values,
                )
            )
    return states


_LISTED_HOSTS = 20  # hosts named in the details of one finding about many


def _unprobed_findings(obs: Observations, findings: list[Finding]) -> None:
    """``mx-not-probed``: information when a cap left something out, a warning when the
    domain's time budget ran out (something was slow; the result is unknown). The MX hosts
    beyond ``--max-mx`` are one finding, however many there are; the rest one per host."""
    over_cap = [u.host for u in obs.unprobed if u.address is None and not u.budget]
    if over_cap:
        reason = next(u.reason for u in obs.unprobed if u.address is None and not u.budget)
        shown = over_cap[:_LISTED_HOSTS]
        more = len(over_cap) - len(shown)
        findings.append(
            Finding(
                "mx-not-probed",
                Severity.INFO,
                f"{len(over_cap)} MX host{'s' * (len(over_cap) != 1)} of {obs.domain} "
                f"{'were' if len(over_cap) != 1 else 'was'} not probed: {reason}",
                "Nothing to fix on the domain; raise --max-mx to probe more (senders rarely try more than a few).",
                host=over_cap[0] if len(over_cap) == 1 else None,
                details=(*(f"not probed: {h}" for h in shown), *((f"and {more} more",) if more else ())),
            )
        )
    groups: dict[tuple[str, str, bool], list[str | None]] = {}
    for item in obs.unprobed:
        if item.address is None and not item.budget:
            continue
        groups.setdefault((item.host, item.reason, item.budget), []).append(item.address)
    for (host, reason, budget), addresses in groups.items():
        listed = [a for a in addresses if a is not None]
        what = f"{host} ({', '.join(listed)})" if listed else host
        fix = (
            f"Make the DNS and MX hosts of {obs.domain} answer promptly, or give the check more time "
            "(--domain-timeout)."
            if budget
            else "Nothing to fix on the domain; raise --max-addresses to probe more."
        )
        findings.append(
            Finding(
                "mx-not-probed",
                Severity.WARNING if budget else Severity.INFO,
                f"{what} {'was' if len(listed) < 2 else 'were'} not probed: {reason}",
                fix,
                host=host,
                address=listed[0] if len(listed) == 1 else None,
            )
        )


def _probe_findings(
    obs: Observations, findings: list[Finding], host: str, mode: Mode | None, now: datetime, warn_days: float
) -> MxState:
    severity = mx_severity(mode)
    addresses = obs.addresses.get(host)
    if addresses is None or not addresses.found:
        detail = "no address lookup" if addresses is None else addresses.detail
        findings.append(
            Finding(
                "mx-unreachable",
                Severity.WARNING,
                f"the MX {host} has no usable address: {detail}",
                f"Publish A/AAAA records for {host}, or remove the MX record.",
                host=host,
            )
        )
        return MxState(host, reachable=False, tls_valid=False, tls_problem="no address")
    probes = [p for p in obs.probes if p.host == host]
    reachable = False
    valid = False
    first_problem = ""
    for probe in probes:
        values = {"host": host}
        kind = probe.failure
        if kind is not None and kind in _SMTP_CODES:
            reachable = reachable or kind not in (SmtpFailureKind.UNREACHABLE, SmtpFailureKind.TIMEOUT)
            code = _SMTP_CODES[kind]
            level = Severity.WARNING if code == "mx-unreachable" else severity
            findings.append(
                Finding(
                    code,
                    level,
                    f"{host} ({probe.address}): {probe.detail}",
                    _SMTP_FIXES[kind].format(**values),
                    host,
                    probe.address,
                )
            )
            first_problem = first_problem or probe.detail
            continue
        reachable = True
        tls = probe.tls
        if tls is None:
            continue
        if not tls.ok and tls.failure is not None:
            findings.append(
                Finding(
                    _TLS_CODES[tls.failure],
                    severity,
                    f"{host} ({probe.address}): {tls.detail}",
                    _TLS_FIXES[tls.failure].format(**values),
                    host,
                    probe.address,
                    details=_tls_details(probe),
                )
            )
            first_problem = first_problem or tls.detail
            continue
        valid = True
        certificate = tls.certificate
        if certificate is not None and certificate.days_left(now) < warn_days:
            findings.append(
                Finding(
                    "mx-cert-expiring-soon",
                    Severity.WARNING,
                    f"{host} ({probe.address}): the certificate expires on {certificate.not_after:%Y-%m-%d} "
                    f"(in {max(certificate.days_left(now), 0):.0f} days)",
                    f"Renew the certificate of {host} before then (automate renewal).",
                    host,
                    probe.address,
                )
            )
    return MxState(host, reachable=reachable, tls_valid=valid, tls_problem=first_problem)


def _tlsrpt_findings(obs: Observations, findings: list[Finding]) -> TlsRptRecord | None:
    lookup = obs.tlsrpt_txt
    if lookup is None:
        return None
    name = f"_smtp._tls.{obs.domain}"
    fix_missing = f'Publish {name} TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{obs.domain}" to receive daily TLS reports.'
    if lookup.status is LookupStatus.FAILED:
        findings.append(
            Finding(
                "tlsrpt-lookup-failed",
                Severity.WARNING,
                f"the TXT lookup of {name} failed: {lookup.detail}",
                fix_missing,
                host=name,
            )
        )
        return None
    try:
        return select_tlsrpt_record(lookup.values)
    except ParseError as exc:
        if exc.code == "tlsrpt.rrset.none":
            code, message, fix = (
                "tlsrpt-missing",
                f"{name} has no TLSRPT record: nobody will tell you when senders fail",
                fix_missing,
            )
        elif exc.code == "tlsrpt.rrset.multiple":
            code, message, fix = (
                "tlsrpt-multiple",
                f"{name}: {exc.message}",
                "Keep one record; list several rua URIs in it.",
            )
        else:
            code, message, fix = "tlsrpt-syntax", f"{name} is invalid: {exc.message}; senders send no reports", exc.fix
        findings.append(
            Finding(code, Severity.WARNING, message, fix, host=name, details=tuple(_txt_text(r) for r in lookup.values))
        )
    return None


def _escalate_unreachable(findings: list[Finding]) -> None:
    """When no MX can take mail at all, unreachable MXs are errors, not warnings."""
    for index, finding in enumerate(findings):
        if finding.code == "mx-unreachable" and finding.severity is not Severity.ERROR:
            findings[index] = Finding(
                finding.code,
                Severity.ERROR,
                finding.message,
                finding.fix,
                finding.host,
                finding.address,
                finding.details,
            )


def _tls_details(probe: MxProbe) -> tuple[str, ...]:
    tls = probe.tls
    if tls is None:
        return ()
    lines = []
    if tls.version:
        lines.append(f"TLS {tls.version}, cipher {tls.cipher}")
    certificate = tls.certificate
    if certificate is not None:
        names = ", ".join(certificate.dns_names) or "(none)"
        lines.append(f"certificate: subject {certificate.subject!r}, issuer {certificate.issuer!r}, names {names}")
        lines.append(f"valid {certificate.not_before:%Y-%m-%d} to {certificate.not_after:%Y-%m-%d}")
    return tuple(lines)


def _txt_text(record: Sequence[bytes]) -> str:
    return "".join(part.decode("ascii", "replace") for part in record)
