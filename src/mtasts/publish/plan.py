"""Plan a deployment: the policy file and the DNS records a domain must publish.

Pure: the caller passes the current time (it becomes the policy id), so the same inputs give
the same plan. :meth:`Deployment.files` is what ``mtasts generate --output-dir`` writes:
:data:`POLICY_FILE` (the exact bytes to serve) and :data:`ZONE_FILE` (zone-file lines to add to
the domain's zone, loadable as they are by an authoritative server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mtasts.core.advice import ONE_WEEK, policy_advice
from mtasts.core.hostname import check_host_name, to_alabel
from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import ParseError, Problem
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord

__all__ = [
    "ONE_WEEK",
    "POLICY_FILE",
    "ZONE_FILE",
    "Deployment",
    "DnsRecord",
    "PlanError",
    "plan_deployment",
    "policy_id_for",
    "zone_quote",
]

POLICY_PATH = "/.well-known/mta-sts.txt"
POLICY_FILE = "mta-sts.txt"  # served as is at https://mta-sts.<domain>/.well-known/mta-sts.txt
ZONE_FILE = "zone.txt"  # zone-file lines for the domain's zone (a fragment: no SOA, no $ORIGIN)
RECORD_TTL = 3600
_TXT_STRING_MAX = 255  # RFC 1035 §3.3: a <character-string> holds at most 255 bytes


class PlanError(ParseError):
    """The inputs cannot make a valid deployment (an invalid domain, MX, mode or max_age)."""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One DNS record to publish, with the TTL it is published with (``[dns] ttl`` when
    ``mtasts publish`` updates the zone itself, else :data:`RECORD_TTL`)."""

    name: str
    type: str
    value: str
    ttl: int = RECORD_TTL

    def to_zone_line(self, ttl: int | None = None) -> str:
        """The record in zone-file syntax (RFC 1035 §5.1): an absolute owner name (with its
        trailing dot, so no ``$ORIGIN`` can change it) and, for TXT, :func:`zone_quote`
        (``ttl``: another TTL than the record's)."""
        value = zone_quote(self.value) if self.type == "TXT" else self.value
        return f"{self.name}. {self.ttl if ttl is None else ttl} IN {self.type} {value}"

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

    @property
    def policy_bytes(self) -> bytes:
        """The policy file exactly as it is served: UTF-8, CRLF line ends (RFC 8461 §3.2)."""
        return self.policy.to_text().encode("utf-8")

    def host_lines(self) -> tuple[str, ...]:
        """The policy host's record, commented out: generate cannot know the web server's
        address, so each form has a ``<...>`` placeholder (a zone that still holds one fails
        to load, rather than pointing the host somewhere wrong)."""
        name = f"{self.policy_host}. {RECORD_TTL} IN"
        return (
            f";{name} A <IPv4 address of the HTTPS server>",
            f";{name} AAAA <IPv6 address of the HTTPS server>",
            f";{name} CNAME <host name of the HTTPS server, ending in a dot>",
        )

    def zone_text(self) -> str:
        """The zone-file fragment: the policy host's record (commented, to fill in), then the
        ``_mta-sts`` and ``_smtp._tls`` TXT records, each line ending in LF."""
        host = self.policy_host
        lines = [
            f"; MTA-STS (RFC 8461) for {self.domain}, written by mtasts generate.",
            f"; Add these lines to the zone of {self.domain}: the names are absolute (they end in a dot).",
            ";",
            f"; {host} needs an A and/or AAAA record, or a CNAME, for the HTTPS server that",
            f"; serves {self.policy_url}, and that server needs a",
            f"; certificate valid for {host}. Unless {host} has one already, fill in",
            "; one of these lines and remove its ';':",
            *self.host_lines(),
            ";",
            f"; Publish the _mta-sts record once {self.policy_url} serves",
            f"; {POLICY_FILE}; change its id whenever the policy changes.",
            *(record.to_zone_line() for record in self.records),
        ]
        return "\n".join(lines) + "\n"

    def files(self) -> dict[str, bytes]:
        """What to deploy, by file name: the policy file and the zone-file fragment."""
        return {POLICY_FILE: self.policy_bytes, ZONE_FILE: self.zone_text().encode("utf-8")}

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
            "zone_text": self.zone_text(),
        }


def zone_quote(value: str) -> str:
    """``value`` as the quoted character-strings of a TXT record in zone-file syntax.

    Encoded as UTF-8 and cut every 255 bytes (one string holds no more; senders join a TXT
    record's strings without spaces, RFC 8461 §3.1, RFC 8460 §3); inside the quotes ``"`` and
    ``\\`` are escaped and any byte outside printable ASCII is written ``\\DDD`` (RFC 1035 §5.1).
    """
    raw = value.encode("utf-8")
    chunks = [raw[i : i + _TXT_STRING_MAX] for i in range(0, len(raw), _TXT_STRING_MAX)] or [b""]
    return " ".join('"' + "".join(_zone_char(byte) for byte in chunk) + '"' for chunk in chunks)


def _zone_char(byte: int) -> str:
    if byte in (0x22, 0x5C):  # '"' and '\\'
        return "\\" + chr(byte)
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return f"\\{byte:03d}"


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
    about choices that risk mail flow, with the rules ``mtasts lint policy`` uses
    (:func:`~mtasts.core.advice.policy_advice`): ``max_age`` under a week with ``enforce`` or a
    day with ``testing``, ``enforce`` for a first deployment, no TLS reporting.
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
        warnings=policy_advice(policy, reporting=tlsrpt is not None, first_deployment=first_deployment),
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
