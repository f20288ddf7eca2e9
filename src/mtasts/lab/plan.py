"""From scenarios to a lab plan: the DNS records, addresses and per-host behaviour to serve.

Planning is pure (no sockets, no clock): :func:`plan_lab` turns scenarios into a :class:`Plan`
that the servers in :mod:`mtasts.lab.world` only execute. Every host gets its own loopback
address, so DNS A records alone decide which host a client reaches, and a host that must be
unreachable gets an address where nothing listens.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mtasts.core.policy import Policy
from mtasts.lab.scenarios import (
    DEFAULT_MAX_AGE,
    DEFAULT_POLICY_ID,
    CertKind,
    DnsFault,
    MxFault,
    PolicyFault,
    Scenario,
    TxtRecords,
)

__all__ = [
    "POLICY_PATH",
    "REPORT_PATH",
    "HttpAnswer",
    "HttpsHost",
    "Plan",
    "Record",
    "SmtpHost",
    "plan_lab",
    "txt_to_text",
]

POLICY_PATH = "/.well-known/mta-sts.txt"
REPORT_PATH = "/v1/report"
MOVED_PATH = "/.well-known/mta-sts-moved.txt"
POLICY_SIZE_CAP = 64 * 1024  # the size a sender is expected to accept at most
_PAD_LINE = 1000
_DEFAULT_POLICY_MX = ("mx1.{domain}",)


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record in zone-file text form (``data`` as ``dns.rdata.from_text`` reads it)."""

    name: str
    rdtype: str
    data: str
    ttl: int = 300


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A canned HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    location: str | None = None


@dataclass(frozen=True, slots=True)
class HttpsHost:
    """An HTTPS listener: the certificate it presents and its answer per path (else 404).

    ``hang`` hosts complete the TLS handshake, read the request and never answer; ``sink``
    hosts keep POSTed TLS reports.
    """

    name: str
    address: str
    cert: CertKind = CertKind.GOOD
    answers: Mapping[str, HttpAnswer] = field(default_factory=dict)
    hang: bool = False
    sink: bool = False


@dataclass(frozen=True, slots=True)
class SmtpHost:
    """An ESMTP listener for one MX host name."""

    name: str
    address: str
    cert: CertKind = CertKind.GOOD
    fault: MxFault | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a lab serves. ``faults`` maps a DNS name to how it fails; ``domains`` pairs
    each mail domain with its scenario's name."""

    zone: str
    nameserver_address: str
    records: tuple[Record, ...]
    faults: Mapping[str, DnsFault]
    https_hosts: tuple[HttpsHost, ...]
    smtp_hosts: tuple[SmtpHost, ...]
    domains: tuple[tuple[str, str], ...]
    addresses: Mapping[str, str]  # host name -> loopback address (listening or not)

    @property
    def sink_host(self) -> str:
        """The TLSRPT sink's host name (reports go to ``https://<sink_host>/v1/report``)."""
        return f"tlsrpt.{self.zone}"


def txt_to_text(strings: Iterable[str]) -> str:
    """One TXT record's character-strings in zone-file form (each quoted and escaped)."""
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)


class _Addresses:
    """Hands out consecutive addresses of ``network``, skipping its network address."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self._hosts = iter(network.hosts())
        self.by_name: dict[str, str] = {}

    def take(self, name: str) -> str:
        try:
            address = str(next(self._hosts))
        except StopIteration:
            raise ValueError("the lab's address network is too small for these scenarios") from None
        self.by_name.setdefault(name, address)  # a host with several addresses is known by its first
        return address


def plan_lab(scenarios: Iterable[Scenario], *, zone: str, network: ipaddress.IPv4Network) -> Plan:
    """The records, listeners and addresses that make ``scenarios`` real under ``zone``."""
    addresses = _Addresses(network)
    ns = addresses.take(f"ns.{zone}")
    sink = f"tlsrpt.{zone}"
    records = [
        Record(zone, "SOA", f"ns.{zone}. hostmaster.{zone}. 2026112901 3600 600 86400 60"),
        Record(zone, "NS", f"ns.{zone}."),
        Record(f"ns.{zone}", "A", ns),
        Record(sink, "A", addresses.take(sink)),
    ]
    https = [HttpsHost(sink, addresses.by_name[sink], sink=True)]
    smtp: list[SmtpHost] = []
    faults: dict[str, DnsFault] = {}
    domains: list[tuple[str, str]] = []
    for scenario in scenarios:
        builder = _DomainBuilder(scenario, zone, addresses)
        records.extend(builder.records())
        faults.update(builder.faults)
        https.extend(builder.https_hosts())
        smtp.extend(builder.smtp_hosts())
        domains.append((builder.domain, scenario.name))
    return Plan(
        zone=zone,
        nameserver_address=ns,
        records=tuple(records),
        faults=MappingProxyType(faults),
        https_hosts=tuple(https),
        smtp_hosts=tuple(smtp),
        domains=tuple(domains),
        addresses=MappingProxyType(dict(addresses.by_name)),
    )


class _DomainBuilder:
    """The pieces of one scenario's domain (a correct deployment, then the deviation)."""

    def __init__(self, scenario: Scenario, zone: str, addresses: _Addresses) -> None:
        self.s = scenario
        self.zone = zone
        self.domain = scenario.domain(zone)
        self.policy_host = f"mta-sts.{self.domain}"
        self.serving_host = f"policy.{self.domain}" if scenario.policy_host_cname else self.policy_host
        self.mx_host = f"mx1.{self.domain}"
        hosts, per_host = scenario.mx_count if scenario.domain_exists else (0, 0)
        self.mx_names = [f"mx{i}.{self.domain}" for i in range(1, hosts + 1)]
        self.faults: dict[str, DnsFault] = {}
        if scenario.sts_dns is not None:
            self.faults[f"_mta-sts.{self.domain}"] = scenario.sts_dns
        if scenario.policy_host_dns is not None:
            self.faults[self.policy_host] = scenario.policy_host_dns
        if scenario.mx_dns is not None:
            self.faults[self.domain] = scenario.mx_dns
        if scenario.tlsrpt_dns is not None:
            self.faults[f"_smtp._tls.{self.domain}"] = scenario.tlsrpt_dns
        exists = scenario.domain_exists
        self.policy_address = None if scenario.policy_host_dns or not exists else addresses.take(self.serving_host)
        self.mx_addresses = {name: [addresses.take(name) for _ in range(per_host)] for name in self.mx_names}

    def fill(self, text: str) -> str:
        return text.replace("{domain}", self.domain).replace("{zone}", self.zone)

    def txt(self, name: str, rrset: TxtRecords) -> list[Record]:
        return [Record(name, "TXT", txt_to_text(self.fill(s) for s in strings)) for strings in rrset]

    def records(self) -> list[Record]:
        if not self.s.domain_exists:
            return []  # no name at or under the domain: the nameserver answers NXDOMAIN for all
        d = self.domain
        mx_records = self.s.mx_records
        if mx_records is None:
            mx_records = tuple(f"{10 * i} {name}." for i, name in enumerate(self.mx_names, 1))
        out = [Record(d, "MX", self.fill(data)) for data in mx_records]
        out += [
            Record(d, "A", "192.0.2.1"),  # documentation addresses: present, never contacted
            Record(d, "AAAA", "2001:db8::1"),
        ]
        out += [Record(name, "A", address) for name, listed in self.mx_addresses.items() for address in listed]
        out += [Record(f"_25._tcp.{self.mx_host}", "TLSA", data) for data in self.s.tlsa]
        sts = self.s.sts_records
        if sts is None:
            sts = ((f"v=STSv1; id={DEFAULT_POLICY_ID}",),)
        if self.s.sts_dns is None:
            out.extend(self.txt(f"_mta-sts.{d}", sts))
        tlsrpt = self.s.tlsrpt_records
        if tlsrpt is None:
            tlsrpt = ((f"v=TLSRPTv1; rua=https://tlsrpt.{self.zone}{REPORT_PATH}",),)
        if self.s.tlsrpt_dns is None:
            out.extend(self.txt(f"_smtp._tls.{d}", tlsrpt))
        if self.policy_address is not None:
            if self.s.policy_host_cname:
                out.append(Record(self.policy_host, "CNAME", f"{self.serving_host}."))
            out.append(Record(self.serving_host, "A", self.policy_address))
        return out

    def policy_body(self) -> bytes:
        if self.s.policy_text is not None:
            return self.fill(self.s.policy_text).encode()
        mx = tuple(self.fill(p) for p in self.s.policy_mx)
        if self.s.policy_mx == _DEFAULT_POLICY_MX and len(self.mx_names) > 1:
            mx = tuple(self.mx_names)  # a correct deployment lists every MX it has
        text = Policy(mode=self.s.policy_mode, max_age=DEFAULT_MAX_AGE, mx=mx).to_text()
        if self.s.policy_fault is PolicyFault.TOO_LARGE:
            lines = POLICY_SIZE_CAP // _PAD_LINE + 8
            text += "".join(f"x-padding-{i:04d}: {'p' * (_PAD_LINE - 20)}\r\n" for i in range(lines))
        return text.encode()

    def https_hosts(self) -> list[HttpsHost]:
        fault = self.s.policy_fault
        if self.policy_address is None or fault is PolicyFault.REFUSED:
            return []
        good = HttpAnswer(200, self.policy_body())
        answers: dict[str, HttpAnswer] = {POLICY_PATH: good}
        if fault is PolicyFault.NOT_FOUND:
            answers[POLICY_PATH] = HttpAnswer(404, b"not found\n")
        elif fault is PolicyFault.SERVER_ERROR:
            answers[POLICY_PATH] = HttpAnswer(500, b"internal server error\n")
        elif fault is PolicyFault.REDIRECT:
            answers[MOVED_PATH] = good
            answers[POLICY_PATH] = HttpAnswer(301, b"moved\n", location=f"https://{self.policy_host}{MOVED_PATH}")
        elif fault is PolicyFault.CONTENT_TYPE:
            answers[POLICY_PATH] = HttpAnswer(200, good.body, content_type="text/html; charset=utf-8")
        # the certificate is for the name the client asked for, even behind a CNAME
        return [
            HttpsHost(
                self.policy_host,
                self.policy_address,
                cert=self.s.policy_cert,
                answers=MappingProxyType(answers),
                hang=fault is PolicyFault.HANG,
            )
        ]

    def smtp_hosts(self) -> list[SmtpHost]:
        if self.s.mx_fault is MxFault.UNREACHABLE:
            return []
        return [
            SmtpHost(name, address, cert=self.s.mx_cert, fault=self.s.mx_fault)
            for name, listed in self.mx_addresses.items()
            for address in listed
        ]
