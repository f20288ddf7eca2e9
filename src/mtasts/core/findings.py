"""Findings: what an inspection concluded, as data every renderer shows the same way.

Codes are a public contract (scripts and monitoring match on them); the table below is the
catalogue of every code with its area and usual severity. Some severities depend on the policy
mode (an MX failure blocks mail only under ``enforce``): :func:`mx_severity` decides those.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mtasts.core.policy import Mode
from mtasts.core.problems import Severity

__all__ = ["CATALOGUE", "SEVERITY_NOTES", "Area", "Finding", "mx_severity", "severity_text"]


class Area(StrEnum):
    """Where a finding belongs, for grouping in reports."""

    DOMAIN = "domain"
    RECORD = "_mta-sts record"
    POLICY = "policy"
    MX = "MX hosts"
    TLSRPT = "TLS reporting"
    LOCAL = "this machine"  # trouble on the checking side, not the domain's


# code -> (area, severity when it does not depend on the mode, one-line title)
CATALOGUE: dict[str, tuple[Area, Severity | None, str]] = {
    "domain-invalid": (Area.DOMAIN, Severity.ERROR, "the domain name is not valid"),
    "domain-nxdomain": (Area.DOMAIN, Severity.ERROR, "the domain does not exist (NXDOMAIN): check the spelling"),
    "check-internal-error": (Area.DOMAIN, Severity.ERROR, "the check stopped on an unexpected error (a bug)"),
    "local-dns-unreachable": (Area.LOCAL, Severity.ERROR, "the nameserver this check uses does not answer"),
    "local-port25-blocked": (Area.LOCAL, Severity.ERROR, "this machine seems unable to connect to port 25"),
    "no-sts-record": (Area.RECORD, Severity.ERROR, "no _mta-sts TXT record"),
    "multiple-sts-records": (Area.RECORD, Severity.ERROR, "several _mta-sts TXT records"),
    "sts-record-syntax": (Area.RECORD, Severity.ERROR, "the _mta-sts TXT record is invalid"),
    "sts-record-lookup-failed": (Area.RECORD, Severity.ERROR, "the _mta-sts TXT lookup failed"),
    "policy-host-unresolvable": (Area.POLICY, Severity.ERROR, "the policy host has no address"),
    "policy-host-lookup-failed": (
        Area.POLICY,
        Severity.ERROR,
        "the policy host's address lookup failed (SERVFAIL, timeout: nothing is known, which is not the same as "
        "'no host')",
    ),
    "policy-fetch-failed": (Area.POLICY, Severity.ERROR, "the policy could not be fetched"),
    "policy-fetch-http-status": (Area.POLICY, Severity.ERROR, "the policy URL does not answer 200"),
    "policy-fetch-redirect": (Area.POLICY, Severity.ERROR, "the policy URL redirects"),
    "policy-content-type": (Area.POLICY, Severity.ERROR, "the policy is not served as text/plain"),
    "policy-cert-invalid": (Area.POLICY, Severity.ERROR, "the policy host's certificate is invalid"),
    "policy-cert-expiring-soon": (Area.POLICY, Severity.WARNING, "the policy host's certificate expires soon"),
    "policy-too-large": (Area.POLICY, Severity.ERROR, "the policy is larger than 64 KiB"),
    "policy-timeout": (Area.POLICY, Severity.ERROR, "the policy fetch timed out"),
    "policy-syntax": (Area.POLICY, Severity.ERROR, "the policy file is invalid"),
    "policy-lint": (Area.POLICY, None, "the policy is valid for senders, but its file has mistakes to fix"),
    "policy-mode-testing": (Area.POLICY, Severity.INFO, "the policy is in testing mode"),
    "policy-mode-none": (Area.POLICY, Severity.INFO, "the policy is in mode none"),
    "policy-max-age-short": (Area.POLICY, Severity.WARNING, "the policy's max_age is short for its mode"),
    "policy-mx-unused": (Area.POLICY, Severity.INFO, "a policy mx pattern matches no MX"),
    "policy-cert-malformed": (Area.POLICY, Severity.ERROR, "the policy host's certificate is not valid X.509"),
    "policy-internal-error": (Area.POLICY, Severity.ERROR, "the policy fetch stopped on an unexpected error (a bug)"),
    "mx-lookup-failed": (Area.MX, Severity.ERROR, "the MX lookup failed"),
    "mx-missing": (Area.MX, Severity.ERROR, "the domain has no MX records"),
    "mx-null": (Area.MX, Severity.INFO, "the domain has a null MX (it accepts no mail)"),
    "mx-not-in-policy": (Area.MX, None, "an MX is not listed in the policy"),
    "mx-no-starttls": (Area.MX, None, "an MX does not offer STARTTLS"),
    "mx-starttls-failed": (Area.MX, None, "STARTTLS fails on an MX"),
    "mx-cert-name-mismatch": (Area.MX, None, "an MX certificate does not name the MX"),
    "mx-cert-expired": (Area.MX, None, "an MX certificate has expired"),
    "mx-cert-untrusted": (Area.MX, None, "an MX certificate is not from a trusted CA"),
    "mx-cert-chain-incomplete": (Area.MX, None, "an MX sends an incomplete certificate chain"),
    "mx-tls-version-too-old": (Area.MX, None, "an MX only speaks TLS older than 1.2"),
    "mx-unreachable": (Area.MX, None, "an MX cannot be reached"),
    "mx-cert-expiring-soon": (Area.MX, Severity.WARNING, "an MX certificate expires soon"),
    "mx-dane": (Area.MX, Severity.INFO, "an MX publishes DANE TLSA records"),
    "mx-cert-malformed": (Area.MX, None, "an MX certificate is not valid X.509"),
    "mx-internal-error": (Area.MX, Severity.ERROR, "the probe of an MX stopped on an unexpected error (a bug)"),
    "mx-not-probed": (Area.MX, None, "an MX host or address was not probed (per-domain caps or time budget)"),
    "tlsrpt-missing": (Area.TLSRPT, Severity.WARNING, "no TLS reporting record"),
    "tlsrpt-syntax": (Area.TLSRPT, Severity.WARNING, "the TLS reporting record is invalid"),
    "tlsrpt-multiple": (Area.TLSRPT, Severity.WARNING, "several TLS reporting records"),
    "tlsrpt-lookup-failed": (Area.TLSRPT, Severity.WARNING, "the TLS reporting lookup failed"),
}


# how the severity is decided for the codes whose CATALOGUE severity is None, when it is not
# simply the policy mode (mx_severity)
SEVERITY_NOTES: dict[str, str] = {
    "mx-unreachable": "warning while another MX takes mail, else error",
    "mx-not-probed": "info when a cap left it out, warning when the time budget ran out",
    "policy-lint": "error for a malformed repeat senders ignore, warning for a harmless one",
}


def severity_text(code: str) -> str:
    """The severity of ``code`` in words, as docs/check.md shows it (generated from here)."""
    severity = CATALOGUE[code][1]
    if severity is not None:
        return severity.value
    return SEVERITY_NOTES.get(code, "error under enforce, else warning")


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion: a stable ``code``, a ``severity``, the ``host`` and ``address`` it is
    about (``None`` where not applicable), a plain ``message`` and a concrete ``fix``;
    ``details`` are evidence lines (what was seen)."""

    code: str
    severity: Severity
    message: str
    fix: str
    host: str | None = None
    address: str | None = None
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown finding code {self.code!r}")

    @property
    def area(self) -> Area:
        return CATALOGUE[self.code][0]

    def to_dict(self) -> dict[str, object]:
        """The JSON shape (keys are a public contract, see docs/check.md)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "host": self.host,
            "address": self.address,
            "message": self.message,
            "fix": self.fix,
            "details": list(self.details),
        }


def mx_severity(mode: Mode | None) -> Severity:
    """An MX that fails validation blocks mail under ``enforce`` (error); under ``testing``,
    ``none`` or without a policy, mail still flows and the failure is a warning."""
    return Severity.ERROR if mode is Mode.ENFORCE else Severity.WARNING
