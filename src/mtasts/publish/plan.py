"""Plan a deployment: the policy file and the DNS records a domain must publish.

Pure: the caller passes the current time (it becomes the policy id), so the same inputs give
the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mtasts.core.hostname import check_host_name, to_alabel
from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import ParseError, Problem, Severity
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord

__all__ = ["ONE_WEEK", "Deployment", "DnsRecord", "PlanError", "plan_deployment", "policy_id_for"]

ONE_WEEK = 7 * 24 * 3600
POLICY_PATH = "/.well-known/mta-sts.txt"


class PlanError(ParseError):
    """The inputs cannot make a valid deployment (an invalid domain, MX, mode or max_age)."""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One DNS record to publish."""

    name: str
    type: str
    value: str

    def to_zone_line(self, ttl: int = 3600) -> str:
        """The record in zone-file syntax (TXT values quoted)."""
        value = f'"{self.value}"' if self.type == "TXT" else self.value
        return f"{self.name}. {ttl} IN {self.type} {value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value}


@dataclass(frozen=True, slots=True)
class Deployment:
    """What to publish for ``domain``: the policy, where to serve it, and the DNS records."""

    domain: str
    policy: Policy
    sts_record: DnsRecord
    tlsrpt_record: DnsRecord | None
    policy_host: str
    policy_url: str
    warnings: tuple[Problem, ...]

    @property
    def records(self) -> tuple[DnsRecord, ...]:
        return (self.sts_record,) if self.tlsrpt_record is None else (self.sts_record, self.tlsrpt_record)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a plan (keys are a public contract)."""
        return {
            "domain": self.domain,
            "policy": self.policy.to_dict(),
            "policy_text": self.policy.to_text(),
            "policy_host": self.policy_host,
            "policy_url": self.policy_url,
            "records": [r.to_dict() for r in self.records],
            "warnings": [w.to_dict() for w in self.warnings],
        }


def policy_id_for(now: datetime) -> str:
    """A policy id from a time: UTC, ``YYYYMMDDTHHMMSS`` (15 letters and digits)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def plan_deployment(
    domain: str,
    mx: Sequence[str],
    mode: Mode | str,
    max_age: int,
    rua: Sequence[str] = (),
    *,
    now: datetime,
    first_deployment: bool = True,
) -> Deployment:
    """Build a deployment plan; raises :class:`PlanError` listing every invalid input.

    Unicode domain and MX names are converted to A-labels; the plan warns (without failing)
    about choices that risk mail flow: ``max_age`` under a week, ``enforce`` for a first
    deployment, no TLS reporting.
    """
    problems: list[Problem] = []
    name = _domain(domain, problems)
    patterns = [_mx(host, problems) for host in mx]
    policy: Policy | None = None
    tlsrpt: TlsRptRecord | None = None
    if mode not in Mode._value2member_map_:
        problems.append(
            Problem("policy.mode.value", f"the mode {mode!r} is not one of 'enforce', 'testing', 'none'", "Pick one.")
        )
    else:
        try:
            policy = Policy(mode=Mode(mode), max_age=max_age, mx=tuple(patterns))
        except ParseError as exc:
            problems.extend(exc.problems)
    if rua:
        try:
            tlsrpt = TlsRptRecord(rua=tuple(rua))
        except ParseError as exc:
            problems.extend(exc.problems)
    if problems or policy is None:
        raise PlanError(problems or [Problem("generate.invalid", "invalid input", "Check the options.")])
    sts = StsRecord(policy_id_for(now))
    return Deployment(
        domain=name,
        policy=policy,
        sts_record=DnsRecord(f"_mta-sts.{name}", "TXT", sts.to_text()),
        tlsrpt_record=None if tlsrpt is None else DnsRecord(f"_smtp._tls.{name}", "TXT", tlsrpt.to_text()),
        policy_host=f"mta-sts.{name}",
        policy_url=f"https://mta-sts.{name}{POLICY_PATH}",
        warnings=tuple(_warnings(policy, tlsrpt, first_deployment)),
    )


def _domain(domain: str, problems: list[Problem]) -> str:
    name = to_alabel(domain.strip())
    issue = check_host_name(name) if name is not None else ("syntax", "not a valid IDNA host name")
    if name is None or issue is not None:
        detail = issue[1] if issue else "invalid"
        problems.append(
            Problem(
                "generate.domain",
                f"the domain {domain!r} is not valid: {detail}",
                "Give the mail domain, e.g. example.com.",
            )
        )
        return domain
    return name


def _mx(host: str, problems: list[Problem]) -> str:
    wildcard = host.startswith("*.")
    name = to_alabel(host[2:] if wildcard else host)
    if name is None:
        problems.append(Problem("generate.mx", f"the MX {host!r} is not a valid host name", "Give the MX host names."))
        return host
    return "*." + name if wildcard else name


def _warnings(policy: Policy, tlsrpt: TlsRptRecord | None, first_deployment: bool) -> list[Problem]:
    warnings: list[Problem] = []
    if policy.max_age < ONE_WEEK:
        warnings.append(
            Problem(
                "generate.max_age.short",
                f"max_age {policy.max_age} is under a week: senders re-fetch often and an attacker who "
                "blocks the fetch for that long can downgrade delivery",
                "Use at least 604800 (one week) once the policy is stable; 86400 is fine while testing.",
                severity=Severity.WARNING,
            )
        )
    if policy.mode is Mode.ENFORCE and first_deployment:
        warnings.append(
            Problem(
                "generate.enforce.first",
                "mode 'enforce' on a first deployment: a sender that cannot validate an MX will defer mail",
                "Start with 'testing' and TLS reporting, read the reports for a few weeks, then switch to "
                "'enforce' (pass --existing if this domain already runs MTA-STS).",
                severity=Severity.WARNING,
            )
        )
    if tlsrpt is None:
        warnings.append(
            Problem(
                "generate.tlsrpt.missing",
                "no --rua given: without TLS reports you cannot see which senders fail",
                "Add --rua mailto:tlsrpt@<domain> (or an https:// endpoint).",
                severity=Severity.WARNING,
            )
        )
    return warnings
