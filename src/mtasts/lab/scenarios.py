"""Scenarios as data: each one a correct MTA-STS domain with exactly one thing changed.

A :class:`Scenario` says what the lab publishes for one domain (DNS records, the policy host's
answer, the MX's behaviour, the certificates) as deviations from a correct deployment, and
what a checker and a sender must conclude (:class:`Expectation`). Tests, the demo and the
future inspector read the same table, so a new case is a new row in :data:`CATALOGUE`, not new
code. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from mtasts.core.findings import CATALOGUE as FINDINGS
from mtasts.core.policy import Mode
from mtasts.core.problems import Severity
from mtasts.core.verdict import Delivery

__all__ = [
    "CATALOGUE",
    "FINDING_CODES",
    "INFO_CODES",
    "CertKind",
    "Delivery",
    "DnsFault",
    "Expectation",
    "MxFault",
    "PolicyFault",
    "Scenario",
    "get_scenario",
    "select_scenarios",
]

# The inspector's finding codes (docs/check.md); an expectation may only name these.
FINDING_CODES: frozenset[str] = frozenset(FINDINGS)
# The codes of severity "info": they say something true without anything being wrong.
INFO_CODES: frozenset[str] = frozenset(code for code, (_, severity, _) in FINDINGS.items() if severity is Severity.INFO)

DEFAULT_POLICY_ID = "20261129T081500"
DEFAULT_MAX_AGE = 604_800


class DnsFault(StrEnum):
    """How a name fails to resolve, beyond simply having no records."""

    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"  # the nameserver never answers queries for the name


class CertKind(StrEnum):
    """The certificate a TLS server presents."""

    GOOD = "good"
    WRONG_NAME = "wrong-name"
    EXPIRED = "expired"
    EXPIRING_SOON = "expiring-soon"
    UNTRUSTED = "untrusted"  # issued by a CA that is not in the lab's CA file
    SELF_SIGNED = "self-signed"
    CHAIN_INCOMPLETE = "chain-incomplete"  # issued by an intermediate CA the server does not send
    MALFORMED_SAN = "malformed-san"  # valid for OpenSSL, but a SAN DNS name has bytes >= 0x80 (not IA5String)


class PolicyFault(StrEnum):
    """How the policy host (``https://mta-sts.<domain>/.well-known/mta-sts.txt``) misbehaves."""

    NOT_FOUND = "404"
    SERVER_ERROR = "500"
    REDIRECT = "redirect"  # 301 to a URL that does serve the policy: following it is the bug
    CONTENT_TYPE = "content-type"  # the policy, as text/html
    TOO_LARGE = "too-large"  # a valid policy padded past 64 KiB
    HANG = "hang"  # the TLS handshake completes, the request is read, no answer ever comes
    REFUSED = "refused"  # nothing listens at the policy host's address


class MxFault(StrEnum):
    """How the MX host misbehaves before any certificate check."""

    NO_STARTTLS = "no-starttls"
    STARTTLS_454 = "starttls-454"
    TLS10_ONLY = "tls10-only"
    UNREACHABLE = "unreachable"  # nothing listens at the MX's address (connection refused)


TxtRecords = tuple[tuple[str, ...], ...]
"""A TXT RRset as published: one tuple of character-strings per record."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must be concluded about a scenario's domain.

    ``findings`` are the inspector's codes that ``mtasts check`` must report (errors, warnings,
    and the info codes of :data:`INFO_CODES`); ``delivery`` is what a sender does.
    """

    delivery: Delivery
    findings: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", frozenset(self.findings))
        unknown = self.findings - FINDING_CODES
        if unknown:
            raise ValueError(f"unknown finding codes: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One domain of the lab: a correct MTA-STS deployment plus the deviations given.

    Every field defaults to the correct deployment. Strings in ``sts_records``,
    ``tlsrpt_records``, ``policy_mx`` and ``policy_text`` may contain ``{domain}`` (the
    scenario's domain) and ``{zone}`` (the lab's zone), filled in when the lab is planned.
    ``sts_records=None`` means the correct record; ``()`` means no TXT record at all (the same
    for ``mx_records``: ``("0 .",)`` is a null MX).
    """

    name: str
    description: str
    expect: Expectation
    sts_records: TxtRecords | None = None
    sts_dns: DnsFault | None = None
    policy_host_dns: DnsFault | None = None
    policy_host_cname: bool = False
    policy_mode: Mode = Mode.ENFORCE
    policy_mx: tuple[str, ...] = ("mx1.{domain}",)
    policy_text: str | None = None
    policy_fault: PolicyFault | None = None
    policy_cert: CertKind = CertKind.GOOD
    mx_fault: MxFault | None = None
    mx_cert: CertKind = CertKind.GOOD
    mx_records: tuple[str, ...] | None = None  # the MX RRset's data; None: "10 mx1.<domain>."
    mx_dns: DnsFault | None = None  # a fault on the domain's own name (its MX lookup)
    # (N, K): MX hosts mx1..mxN (preferences 10, 20, ...; all listed in the default policy),
    # each with K addresses and a listener on each (when mx_records is None)
    mx_count: tuple[int, int] = (1, 1)
    domain_exists: bool = True  # False: nothing at or under the domain's name (NXDOMAIN)
    tlsa: tuple[str, ...] = ()  # TLSA records at _25._tcp.mx1.<domain>
    tlsrpt_records: TxtRecords | None = None
    tlsrpt_dns: DnsFault | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isascii() and (c.isalnum() or c == "-") for c in self.name):
            raise ValueError(f"a scenario name is one DNS label of letters, digits and '-': {self.name!r}")
        if min(self.mx_count) < 1:
            raise ValueError("a scenario has at least one MX host with at least one address")

    def domain(self, zone: str) -> str:
        """The scenario's mail domain under ``zone`` (``<name>.<zone>``)."""
        return f"{self.name}.{zone}"


def _expect(delivery: Delivery, *findings: str) -> Expectation:
    return Expectation(delivery, frozenset(findings))


# Long, realistic-looking verification records: together with the STS record they make the
# split-txt-ok RRset larger than 1232 bytes, so no UDP answer carries it and resolvers must
# retry over TCP.
_VERIFICATIONS: TxtRecords = tuple(
    (f"{vendor}-site-verification=" + (f"{vendor}{i:02d}" * 40)[:200], "x" * 40) for i, vendor in enumerate("abcdefgh")
)

_D = Delivery
_SCENARIOS: tuple[Scenario, ...] = (
    # --- correct deployments --------------------------------------------------------------
    Scenario("enforce-ok", "Correct deployment, mode enforce.", _expect(_D.VALIDATED)),
    Scenario(
        "testing-ok",
        "Correct deployment, mode testing.",
        _expect(_D.NOT_ENFORCED, "policy-mode-testing"),
        policy_mode=Mode.TESTING,
    ),
    Scenario(
        "none-ok",
        "Correct deployment, mode none (policy being withdrawn).",
        _expect(_D.NOT_ENFORCED, "policy-mode-none"),
        policy_mode=Mode.NONE,
    ),
    Scenario(
        "wildcard-ok",
        "Correct deployment whose policy allows the MX through a '*.' pattern.",
        _expect(_D.VALIDATED),
        policy_mx=("*.{domain}",),
    ),
    Scenario(
        "split-txt-ok",
        "STS record split over several strings, in an RRset too large for UDP (needs TCP).",
        _expect(_D.VALIDATED),
        sts_records=(("v=STSv1;", " id=", DEFAULT_POLICY_ID), *_VERIFICATIONS),
    ),
    Scenario(
        "cname-policy-host-ok",
        "mta-sts.<domain> is a CNAME to the host that serves the policy.",
        _expect(_D.VALIDATED),
        policy_host_cname=True,
    ),
    # --- the _mta-sts record ----------------------------------------------------------------
    Scenario(
        "no-sts-record",
        "No _mta-sts TXT record (NXDOMAIN); the policy host still answers.",
        _expect(_D.NO_POLICY, "no-sts-record"),
        sts_records=(),
    ),
    Scenario(
        "multiple-sts-records",
        "Two 'v=STSv1' TXT records at _mta-sts.",
        _expect(_D.NO_POLICY, "multiple-sts-records"),
        sts_records=((f"v=STSv1; id={DEFAULT_POLICY_ID}",), ("v=STSv1; id=20261128T000000",)),
    ),
    Scenario(
        "sts-record-bad-id",
        "The _mta-sts record's id contains characters other than letters and digits.",
        _expect(_D.NO_POLICY, "sts-record-syntax"),
        sts_records=(("v=STSv1; id=2026-11-29",),),
    ),
    Scenario(
        "sts-lookup-servfail",
        "The _mta-sts TXT lookup fails with SERVFAIL.",
        _expect(_D.NO_POLICY, "sts-record-lookup-failed"),
        sts_dns=DnsFault.SERVFAIL,
    ),
    Scenario(
        "sts-lookup-timeout",
        "The nameserver never answers the _mta-sts TXT lookup.",
        _expect(_D.NO_POLICY, "sts-record-lookup-failed"),
        sts_dns=DnsFault.TIMEOUT,
    ),
    # --- the policy host --------------------------------------------------------------------
    Scenario(
        "policy-host-nxdomain",
        "mta-sts.<domain> does not exist (NXDOMAIN).",
        _expect(_D.NO_POLICY, "policy-host-unresolvable"),
        policy_host_dns=DnsFault.NXDOMAIN,
    ),
    Scenario(
        "policy-host-servfail",
        "The nameserver answers SERVFAIL for mta-sts.<domain> (a temporary failure, not 'no host').",
        _expect(_D.NO_POLICY, "policy-host-lookup-failed"),
        policy_host_dns=DnsFault.SERVFAIL,
    ),
    Scenario(
        "policy-refused",
        "Nothing listens on the policy host (connection refused).",
        _expect(_D.NO_POLICY, "policy-fetch-failed"),
        policy_fault=PolicyFault.REFUSED,
    ),
    Scenario(
        "policy-404",
        "The policy URL answers 404 Not Found.",
        _expect(_D.NO_POLICY, "policy-fetch-http-status"),
        policy_fault=PolicyFault.NOT_FOUND,
    ),
    Scenario(
        "policy-500",
        "The policy URL answers 500 Internal Server Error.",
        _expect(_D.NO_POLICY, "policy-fetch-http-status"),
        policy_fault=PolicyFault.SERVER_ERROR,
    ),
    Scenario(
        "policy-redirect",
        "The policy URL redirects (301); senders must not follow redirects.",
        _expect(_D.NO_POLICY, "policy-fetch-redirect"),
        policy_fault=PolicyFault.REDIRECT,
    ),
    Scenario(
        "policy-content-type",
        "The policy is served as text/html instead of text/plain.",
        _expect(_D.NO_POLICY, "policy-content-type"),
        policy_fault=PolicyFault.CONTENT_TYPE,
    ),
    Scenario(
        "policy-cert-wrong-name",
        "The policy host's certificate is for another name.",
        _expect(_D.NO_POLICY, "policy-cert-invalid"),
        policy_cert=CertKind.WRONG_NAME,
    ),
    Scenario(
        "policy-cert-expired",
        "The policy host's certificate has expired.",
        _expect(_D.NO_POLICY, "policy-cert-invalid"),
        policy_cert=CertKind.EXPIRED,
    ),
    Scenario(
        "policy-cert-untrusted",
        "The policy host's certificate comes from an untrusted CA.",
        _expect(_D.NO_POLICY, "policy-cert-invalid"),
        policy_cert=CertKind.UNTRUSTED,
    ),
    Scenario(
        "policy-cert-expiring-soon",
        "The policy host's certificate expires in a few days.",
        _expect(_D.VALIDATED, "policy-cert-expiring-soon"),
        policy_cert=CertKind.EXPIRING_SOON,
    ),
    Scenario(
        "policy-too-large",
        "The policy body is larger than 64 KiB.",
        _expect(_D.NO_POLICY, "policy-too-large"),
        policy_fault=PolicyFault.TOO_LARGE,
    ),
    Scenario(
        "policy-hang",
        "The policy host accepts the request and never answers.",
        _expect(_D.NO_POLICY, "policy-timeout"),
        policy_fault=PolicyFault.HANG,
    ),
    Scenario(
        "policy-syntax",
        "The policy file is invalid (mode misspelt, no max_age).",
        _expect(_D.NO_POLICY, "policy-syntax"),
        policy_text="version: STSv1\r\nmode: enforcing\r\nmx: mx1.{domain}\r\n",
    ),
    Scenario(
        "policy-lint",
        "The policy repeats max_age with a malformed value: senders ignore the repeat (RFC 8461 §3.2), "
        "the owner should fix the file.",
        _expect(_D.VALIDATED, "policy-lint"),
        policy_text="version: STSv1\r\nmode: enforce\r\nmx: mx1.{domain}\r\nmax_age: 604800\r\nmax_age: forever\r\n",
    ),
    Scenario(
        "policy-max-age-short",
        "The enforce policy's max_age is an hour: valid, but senders keep it only that long.",
        _expect(_D.VALIDATED, "policy-max-age-short"),
        policy_text="version: STSv1\r\nmode: enforce\r\nmx: mx1.{domain}\r\nmax_age: 3600\r\n",
    ),
    # --- the MX hosts -------------------------------------------------------------------------
    Scenario(
        "mx-not-in-policy",
        "The MX host is not allowed by any 'mx' line of the enforce policy.",
        _expect(_D.DEFER, "mx-not-in-policy", "policy-mx-unused"),
        policy_mx=("mail.{domain}",),
    ),
    Scenario(
        "mx-no-starttls",
        "The MX does not offer STARTTLS.",
        _expect(_D.DEFER, "mx-no-starttls"),
        mx_fault=MxFault.NO_STARTTLS,
    ),
    Scenario(
        "mx-starttls-454",
        "The MX offers STARTTLS but refuses it with 454.",
        _expect(_D.DEFER, "mx-starttls-failed"),
        mx_fault=MxFault.STARTTLS_454,
    ),
    Scenario(
        "mx-cert-wrong-name",
        "The MX's certificate is for another name.",
        _expect(_D.DEFER, "mx-cert-name-mismatch"),
        mx_cert=CertKind.WRONG_NAME,
    ),
    Scenario(
        "mx-cert-expired",
        "The MX's certificate has expired.",
        _expect(_D.DEFER, "mx-cert-expired"),
        mx_cert=CertKind.EXPIRED,
    ),
    Scenario(
        "mx-cert-untrusted",
        "The MX's certificate comes from an untrusted CA.",
        _expect(_D.DEFER, "mx-cert-untrusted"),
        mx_cert=CertKind.UNTRUSTED,
    ),
    Scenario(
        "mx-cert-self-signed",
        "The MX's certificate is self-signed.",
        _expect(_D.DEFER, "mx-cert-untrusted"),
        mx_cert=CertKind.SELF_SIGNED,
    ),
    Scenario(
        "mx-cert-chain-incomplete",
        "The MX's certificate comes from an intermediate CA the server does not send.",
        _expect(_D.DEFER, "mx-cert-chain-incomplete"),
        mx_cert=CertKind.CHAIN_INCOMPLETE,
    ),
    Scenario(
        "mx-tls10-only",
        "The MX only speaks TLS 1.0.",
        _expect(_D.DEFER, "mx-tls-version-too-old"),
        mx_fault=MxFault.TLS10_ONLY,
    ),
    Scenario(
        "mx-unreachable",
        "Nothing listens at the MX's address (connection refused).",
        _expect(_D.DEFER, "mx-unreachable"),
        mx_fault=MxFault.UNREACHABLE,
    ),
    Scenario(
        "mx-cert-expiring-soon",
        "The MX's certificate expires in a few days.",
        _expect(_D.VALIDATED, "mx-cert-expiring-soon"),
        mx_cert=CertKind.EXPIRING_SOON,
    ),
    # --- TLS reporting ----------------------------------------------------------------------
    Scenario(
        "tlsrpt-missing",
        "No _smtp._tls TXT record.",
        _expect(_D.VALIDATED, "tlsrpt-missing"),
        tlsrpt_records=(),
    ),
    Scenario(
        "tlsrpt-invalid",
        "The _smtp._tls record has no valid rua.",
        _expect(_D.VALIDATED, "tlsrpt-syntax"),
        tlsrpt_records=(("v=TLSRPTv1; rua=tlsrpt@{domain}",),),
    ),
    Scenario(
        "tlsrpt-multiple",
        "Two 'v=TLSRPTv1' records at _smtp._tls.",
        _expect(_D.VALIDATED, "tlsrpt-multiple"),
        tlsrpt_records=(
            ("v=TLSRPTv1; rua=https://tlsrpt.{zone}/v1/report",),
            ("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}",),
        ),
    ),
    Scenario(
        "tlsrpt-lookup-servfail",
        "The nameserver answers SERVFAIL for _smtp._tls.",
        _expect(_D.VALIDATED, "tlsrpt-lookup-failed"),
        tlsrpt_dns=DnsFault.SERVFAIL,
    ),
    # --- the MX set -------------------------------------------------------------------------
    Scenario(
        "mx-missing",
        "The domain has no MX records (only an A record, which is never contacted).",
        _expect(_D.DEFER, "mx-missing"),
        mx_records=(),
    ),
    Scenario(
        "mx-null",
        "The domain publishes a null MX (RFC 7505): it accepts no mail.",
        _expect(_D.UNDELIVERABLE, "mx-null"),
        mx_records=("0 .",),
    ),
    Scenario(
        "mx-lookup-servfail",
        "The nameserver answers SERVFAIL for the domain's own name (its MX lookup).",
        _expect(_D.DEFER, "mx-lookup-failed"),
        mx_dns=DnsFault.SERVFAIL,
    ),
    Scenario(
        "mx-many",
        "Twelve MX hosts, each with six addresses, all correct: more than a check probes per domain.",
        _expect(_D.VALIDATED, "mx-not-probed"),
        mx_count=(12, 6),
    ),
    Scenario(
        "domain-nxdomain",
        "The domain itself does not exist (NXDOMAIN), nor anything under it.",
        _expect(_D.UNDELIVERABLE, "domain-nxdomain"),
        domain_exists=False,
    ),
    Scenario(
        "policy-cert-malformed",
        "The policy host's certificate has a subjectAltName DNS name with a byte >= 0x80: OpenSSL accepts "
        "it, strict X.509 parsers do not.",
        _expect(_D.NO_POLICY, "policy-cert-malformed"),
        policy_cert=CertKind.MALFORMED_SAN,
    ),
    Scenario(
        "mx-cert-malformed",
        "The MX's certificate has a subjectAltName DNS name with a byte >= 0x80.",
        _expect(_D.DEFER, "mx-cert-malformed"),
        mx_cert=CertKind.MALFORMED_SAN,
    ),
    Scenario(
        "dane-ok",
        "Correct deployment whose MX also publishes DANE TLSA records.",
        _expect(_D.VALIDATED, "mx-dane"),
        tlsa=("3 1 1 " + "5b" * 32,),
    ),
)

CATALOGUE: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in _SCENARIOS})
"""The built-in scenarios by name, in catalogue order."""


def get_scenario(name: str) -> Scenario:
    """The catalogue scenario called ``name``; :class:`KeyError` names the unknown one."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; see 'mtasts lab list'") from None


def select_scenarios(items: Iterable[str | Scenario] | None = None) -> tuple[Scenario, ...]:
    """Scenarios from names or objects (the whole catalogue for ``None``); rejects duplicates."""
    chosen = (
        tuple(CATALOGUE.values())
        if items is None
        else tuple(get_scenario(item) if isinstance(item, str) else item for item in items)
    )
    names = [s.name for s in chosen]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"scenario names must be unique: {duplicates}")
    return chosen
