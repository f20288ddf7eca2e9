"""The pure rules on hand-made snapshots: what is not known never opens or clears an event."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mtasts.core.problems import Severity
from mtasts.monitor.events import CHECK_CODES, EVENT_KINDS, REPORT_CODES, OpenEvent, Source
from mtasts.monitor.rules import check_conditions, transitions
from mtasts.monitor.snapshot import CertificateSeen, CheckSnapshot, FindingSeen, RecordState

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
GOOD = CheckSnapshot(
    domain="example.com",
    checked_at=NOW,
    status="ok",
    conclusive=True,
    record=RecordState.FOUND,
    record_id="20261202",
    policy_sha256="a" * 64,
    policy_mode="enforce",
    policy_mx=("mx1.example.com",),
    mx=("mx1.example.com",),
    certificates=(CertificateSeen("mx", "mx1.example.com", NOW + timedelta(days=5)),),
    tlsrpt=True,
)


def opened_event(code: str, subject: str = "", **data: str) -> OpenEvent:
    kind = EVENT_KINDS[code]
    return OpenEvent(1, "example.com", code, subject, kind.severity or Severity.WARNING, "m", kind.fix, NOW, data)


def keys(snapshot: CheckSnapshot, previous: CheckSnapshot | None = GOOD, *events: OpenEvent) -> set[tuple[str, str]]:
    return {c.key for c in check_conditions(previous, snapshot, events, now=NOW)}


def test_a_failed_record_lookup_neither_opens_nor_clears_the_record_gone() -> None:
    failed = replace(GOOD, record=RecordState.FAILED, record_id=None)
    assert ("sts-record-gone", "") not in keys(failed)
    assert ("sts-record-gone", "") in keys(failed, GOOD, opened_event("sts-record-gone"))
    absent = replace(GOOD, record=RecordState.ABSENT, record_id=None)
    assert ("sts-record-gone", "") in keys(absent)
    assert ("sts-record-gone", "") not in keys(absent, replace(GOOD, record=RecordState.ABSENT))  # never there


def test_a_certificate_not_seen_keeps_its_event_unless_its_mx_is_gone() -> None:
    event = opened_event("cert-expiry-7d", "mx mx1.example.com")
    unseen = replace(GOOD, certificates=())
    assert ("cert-expiry-7d", "mx mx1.example.com") in keys(unseen, GOOD, event)
    moved = replace(unseen, mx=("mx2.example.com",))
    assert ("cert-expiry-7d", "mx mx1.example.com") not in keys(moved, GOOD, event)


def test_the_same_id_event_stays_while_the_body_is_unknown_and_goes_when_the_original_is_back() -> None:
    event = opened_event("policy-changed-same-id", policy_id="20261202", original_sha256="b" * 64)
    assert ("policy-changed-same-id", "") in keys(replace(GOOD, policy_sha256=None), GOOD, event)
    assert ("policy-changed-same-id", "") not in keys(replace(GOOD, policy_sha256="b" * 64), GOOD, event)
    assert ("policy-changed-same-id", "") not in keys(replace(GOOD, record_id="20261203"), GOOD, event)


def test_info_findings_and_the_expiry_warnings_of_the_inspector_are_no_events() -> None:
    findings = (
        FindingSeen("policy-mode-testing", Severity.INFO, None, None, "m", "f"),
        FindingSeen("mx-cert-expiring-soon", Severity.WARNING, "mx1.example.com", "192.0.2.1", "m", "f"),
        FindingSeen("mx-cert-expired", Severity.ERROR, "mx1.example.com", "192.0.2.1", "m", "f"),
    )
    found = keys(replace(GOOD, findings=findings, certificates=()))
    assert found == {("finding", "mx-cert-expired mx1.example.com (192.0.2.1)")}


def test_an_expired_certificate_is_one_event_not_two() -> None:
    """The expired certificate of an MX is its cert-expiry-7d event ("expired ..."); the
    inspector's mx-cert-expired finding for that host is not a second event of the same cause.
    Another host's expired-certificate finding, whose certificate was not read, stays one."""
    expired = CertificateSeen("mx", "mx1.example.com", NOW - timedelta(days=1))
    findings = (
        FindingSeen("mx-cert-expired", Severity.ERROR, "mx1.example.com", "192.0.2.1", "m", "f"),
        FindingSeen("mx-cert-expired", Severity.ERROR, "mx2.example.com", "192.0.2.2", "m", "f"),
    )
    conditions = check_conditions(GOOD, replace(GOOD, findings=findings, certificates=(expired,)), (), now=NOW)
    assert {c.key for c in conditions} == {
        ("cert-expiry-7d", "mx mx1.example.com"),
        ("finding", "mx-cert-expired mx2.example.com (192.0.2.2)"),
    }
    (expiry,) = [c for c in conditions if c.code == "cert-expiry-7d"]
    assert "mx1.example.com expired (" in expiry.message
    assert EVENT_KINDS["cert-expiry-7d"].title == "a certificate expires within 7 days or has expired"


def test_events_of_codes_not_evaluated_are_kept_as_they_are() -> None:
    spike, finding = opened_event("failure-spike"), opened_event("finding", "x")
    change = transitions([spike, finding], [], evaluated=CHECK_CODES)  # reports not read this run
    assert change.cleared == (finding,)
    assert [event for event, _ in change.kept] == [spike]
    assert change.opened == ()


def test_every_code_has_one_source_an_explanation_and_a_fix() -> None:
    assert set(EVENT_KINDS) == CHECK_CODES | REPORT_CODES
    assert not CHECK_CODES & REPORT_CODES
    for kind in EVENT_KINDS.values():
        assert kind.explanation.endswith(".")
        assert kind.fix.endswith(".")
        assert kind.title
        assert (kind.severity is None) == bool(kind.severity_note), kind.code
        assert kind.source in Source
