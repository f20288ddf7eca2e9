"""What the monitor keeps of one check run: the facts later runs are compared with.

A :class:`CheckSnapshot` is small, frozen and JSON-round-trippable (it is stored with each run
in the history): the record's state and id, the policy's hash, mode and MX patterns, the MX
host names, each certificate's expiry and the findings. :func:`snapshot_of` builds it from the
inspector's :class:`~mtasts.check.inspect.DomainReport`; nothing here does I/O.

A run is *inconclusive* when the check could not look at the domain properly: trouble on this
machine (its nameserver answers nothing, port 25 blocked), an internal error, an invalid name.
Such a run is stored, but never compared: "our network was down" must not read as "every
finding resolved" or "the record is gone".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from mtasts.check.inspect import DomainReport
from mtasts.core.findings import Area
from mtasts.core.problems import Severity

__all__ = ["CertificateSeen", "CheckSnapshot", "FindingSeen", "RecordState", "snapshot_of"]


class RecordState(StrEnum):
    FOUND = "found"  # a valid _mta-sts record
    ABSENT = "absent"  # an authoritative no: NXDOMAIN, no TXT, or no v=STSv1 record among them
    FAILED = "failed"  # the lookup failed: nothing is known
    INVALID = "invalid"  # there, but not usable (syntax, several records)


@dataclass(frozen=True, slots=True)
class FindingSeen:
    code: str
    severity: Severity
    host: str | None
    address: str | None
    message: str
    fix: str

    @property
    def subject(self) -> str:
        """The event subject: the finding code, then the host and address it is about."""
        parts = [self.code]
        if self.host:
            parts.append(self.host)
        if self.address:
            parts.append(f"({self.address})")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class CertificateSeen:
    """The certificate a host presented: ``role`` ``policy`` (the policy host) or ``mx``."""

    role: str
    host: str
    not_after: datetime


@dataclass(frozen=True, slots=True)
class CheckSnapshot:
    domain: str
    checked_at: datetime
    status: str  # ok, warning, error
    conclusive: bool
    record: RecordState
    record_id: str | None = None
    policy_sha256: str | None = None  # None: no valid policy fetched
    policy_mode: str | None = None
    policy_mx: tuple[str, ...] = ()
    policy_failure: str = ""  # how the fetch failed (the finding's message), when it did
    mx: tuple[str, ...] | None = None  # host names, sorted; None: the lookup failed
    mx_unmatched: tuple[str, ...] = ()  # MX hosts the policy does not list
    certificates: tuple[CertificateSeen, ...] = ()
    findings: tuple[FindingSeen, ...] = ()
    tlsrpt: bool = False  # a valid TLSRPT record is published
    inconclusive_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "checked_at": self.checked_at.isoformat(),
            "status": self.status,
            "conclusive": self.conclusive,
            "inconclusive_reason": self.inconclusive_reason,
            "record": self.record.value,
            "record_id": self.record_id,
            "policy_sha256": self.policy_sha256,
            "policy_mode": self.policy_mode,
            "policy_mx": list(self.policy_mx),
            "policy_failure": self.policy_failure,
            "mx": None if self.mx is None else list(self.mx),
            "mx_unmatched": list(self.mx_unmatched),
            "certificates": [
                {"role": c.role, "host": c.host, "not_after": c.not_after.isoformat()} for c in self.certificates
            ],
            "findings": [
                {
                    "code": f.code,
                    "severity": f.severity.value,
                    "host": f.host,
                    "address": f.address,
                    "message": f.message,
                    "fix": f.fix,
                }
                for f in self.findings
            ],
            "tlsrpt": self.tlsrpt,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckSnapshot:
        """The inverse of :meth:`to_dict` (the history stores snapshots as JSON)."""
        mx = data.get("mx")
        return cls(
            domain=str(data["domain"]),
            checked_at=datetime.fromisoformat(data["checked_at"]),
            status=str(data["status"]),
            conclusive=bool(data["conclusive"]),
            inconclusive_reason=str(data.get("inconclusive_reason", "")),
            record=RecordState(data["record"]),
            record_id=data.get("record_id"),
            policy_sha256=data.get("policy_sha256"),
            policy_mode=data.get("policy_mode"),
            policy_mx=tuple(data.get("policy_mx", ())),
            policy_failure=str(data.get("policy_failure", "")),
            mx=None if mx is None else tuple(mx),
            mx_unmatched=tuple(data.get("mx_unmatched", ())),
            certificates=tuple(
                CertificateSeen(c["role"], c["host"], datetime.fromisoformat(c["not_after"]))
                for c in data.get("certificates", ())
            ),
            findings=tuple(
                FindingSeen(f["code"], Severity(f["severity"]), f["host"], f["address"], f["message"], f["fix"])
                for f in data.get("findings", ())
            ),
            tlsrpt=bool(data.get("tlsrpt", False)),
        )


_RECORD_STATES: Mapping[str, RecordState] = {
    "no-sts-record": RecordState.ABSENT,
    "domain-nxdomain": RecordState.ABSENT,
    "sts-record-lookup-failed": RecordState.FAILED,
    "sts-record-syntax": RecordState.INVALID,
    "multiple-sts-records": RecordState.INVALID,
}


def snapshot_of(report: DomainReport) -> CheckSnapshot:
    """The facts of one check run, for comparison with the next."""
    status = "error" if report.worst is Severity.ERROR else "warning" if report.worst else "ok"
    findings = tuple(FindingSeen(f.code, f.severity, f.host, f.address, f.message, f.fix) for f in report.findings)
    analysis, obs = report.analysis, report.observations
    local = [f for f in report.findings if f.area is Area.LOCAL]
    reason = ""
    if analysis is None or obs is None:
        reason = report.findings[0].message if report.findings else "the check did not run"
    elif local:
        reason = local[0].message
    elif any(f.code == "check-internal-error" for f in report.findings):
        reason = "the check stopped on an unexpected error"
    if analysis is None or obs is None:
        return CheckSnapshot(
            report.domain,
            report.checked_at,
            status,
            False,
            RecordState.FAILED,
            findings=findings,
            inconclusive_reason=reason,
        )
    codes = {f.code for f in report.findings}
    record = RecordState.FOUND if analysis.sts_record is not None else RecordState.INVALID
    for code, state in _RECORD_STATES.items():
        if code in codes and analysis.sts_record is None:
            record = state
            break
    policy = analysis.policy
    fetch = obs.fetch
    body_hash = None
    if policy is not None and fetch.body is not None:
        body_hash = hashlib.sha256(fetch.body).hexdigest()
    failure = ""
    if policy is None:
        failing = [f for f in report.findings if f.area.value == "policy" and f.severity is Severity.ERROR]
        failure = failing[0].message if failing else (fetch.detail or "no valid policy")
    mx: tuple[str, ...] | None = None
    if obs.mx.found:
        mx = tuple(sorted({m.host for m in obs.mx.values if m.host}))
    elif obs.mx.status.value == "absent":
        mx = ()
    unmatched = () if policy is None or mx is None else tuple(h for h in mx if not policy.matches(h))
    certificates: list[CertificateSeen] = []
    if fetch.tls is not None and fetch.tls.certificate is not None:
        certificates.append(CertificateSeen("policy", fetch.host, fetch.tls.certificate.not_after))
    earliest: dict[str, datetime] = {}
    for probe in obs.probes:
        if probe.tls is not None and probe.tls.certificate is not None:
            not_after = probe.tls.certificate.not_after
            earliest[probe.host] = min(earliest.get(probe.host, not_after), not_after)
    certificates.extend(CertificateSeen("mx", host, when) for host, when in sorted(earliest.items()))
    return CheckSnapshot(
        domain=report.domain,
        checked_at=report.checked_at,
        status=status,
        conclusive=not reason,
        inconclusive_reason=reason,
        record=record,
        record_id=None if analysis.sts_record is None else analysis.sts_record.id,
        policy_sha256=body_hash,
        policy_mode=None if policy is None else policy.mode.value,
        policy_mx=() if policy is None else policy.mx,
        policy_failure=failure,
        mx=mx,
        mx_unmatched=unmatched,
        certificates=tuple(certificates),
        findings=findings,
        tlsrpt=analysis.tlsrpt is not None,
    )
