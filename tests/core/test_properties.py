"""Property-based tests: round trips, total parsers (records, policies, TLSRPT reports and report
e-mails, hostile shapes included), and matching against a direct reading of RFC 8461 §4.1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from hypothesis import example, given, settings
from hypothesis import strategies as st

import mtasts
from mtasts.core.policy import Policy
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportParseError, parse_report
from mtasts.report.mail import MAX_HEADER, MAX_MIME_DEPTH, extract_reports, parse_any
from tests.strategies import (
    REPORT_BODY,
    extreme_datetimes,
    folded_messages,
    gzip_member_bodies,
    host_names,
    labels,
    mx_patterns,
    nested_messages,
    policies,
    report_with_dates,
    sts_records,
    tlsrpt_records,
)

_V = TypeVar("_V")


@given(policies())
def test_policy_round_trip(policy: Policy) -> None:
    text = policy.to_text()
    assert mtasts.parse_policy(text) == policy
    assert mtasts.parse_policy(text.encode("utf-8")) == policy
    assert mtasts.parse_policy(text).to_text() == text
    assert hash(mtasts.parse_policy(text)) == hash(policy)


@given(policies())
def test_policy_round_trip_with_lf_line_ends(policy: Policy) -> None:
    assert mtasts.parse_policy(policy.to_text().replace("\r\n", "\n")) == policy


@given(sts_records())
def test_sts_record_round_trip(record: StsRecord) -> None:
    assert mtasts.parse_sts_record(record.to_text()) == record
    assert mtasts.select_sts_record([record.to_text(), "v=spf1 -all"]) == record


@given(sts_records(), st.integers(1, 20))
def test_sts_record_split_anywhere(record: StsRecord, size: int) -> None:
    text = record.to_text()
    strings = [text[i : i + size].encode("ascii") for i in range(0, len(text), size)]
    assert mtasts.select_sts_record([strings]) == record


@given(tlsrpt_records())
def test_tlsrpt_record_round_trip(record: TlsRptRecord) -> None:
    assert mtasts.parse_tlsrpt_record(record.to_text()) == record


def _total(parse: object, data: object) -> None:
    """``parse(data)`` returns a value or raises ParseError with a code; anything else fails."""
    error: mtasts.ParseError | None = None
    try:
        parse(data)  # type: ignore[operator]
    except mtasts.ParseError as exc:
        error = exc
    if error is not None:
        assert error.code
        assert error.problems
        assert str(error)


@given(st.text())
@example("version: STSv1\r\nmode: enforce\r\nmx: a\u0085b\r\nmax_age: 1")
@example("\ufeff")
@example("mx:\u2028")
def test_policy_parser_is_total_on_text(text: str) -> None:
    _total(mtasts.parse_policy, text)


@given(st.binary())
@example(b"\xff\xfe")
@example(b"version: STSv1\nmode: none\nmax_age: 1\n\xc3")
def test_policy_parser_is_total_on_bytes(data: bytes) -> None:
    _total(mtasts.parse_policy, data)


@given(policies(), st.data())
def test_policy_parser_is_total_on_mutations(policy: Policy, data: st.DataObject) -> None:
    """Valid text with one character replaced, inserted or deleted: a value or ParseError."""
    text = policy.to_text()
    index = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.characters())
    for mutated in (
        text[:index] + char + text[index + 1 :],
        text[:index] + char + text[index:],
        text[:index] + text[index + 1 :],
    ):
        _total(mtasts.parse_policy, mutated)


@given(st.text())
@example("v=STSv1;\u00a0id=1")
def test_record_parsers_are_total(text: str) -> None:
    _total(mtasts.parse_sts_record, text)
    _total(mtasts.parse_tlsrpt_record, text)
    _total(mtasts.select_sts_record, [text])
    _total(mtasts.parse_sts_record, "v=STSv1; " + text)
    _total(mtasts.parse_tlsrpt_record, "v=TLSRPTv1; rua=" + text)


@given(st.lists(st.lists(st.binary(max_size=40), max_size=3), max_size=4))
def test_rrset_selection_is_total(rrset: list[list[bytes]]) -> None:
    _total(mtasts.select_sts_record, rrset)
    _total(mtasts.select_tlsrpt_record, rrset)


def _reference_match(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1 read directly: compare labels; a '*' label in the pattern stands for
    exactly one left-most label of the host."""
    host = host.removesuffix(".").lower()
    pattern = pattern.lower()
    if not host or "*" in host:
        return False
    host_labels = host.split(".")
    pattern_labels = pattern.split(".")
    if len(host_labels) != len(pattern_labels):
        return False
    if pattern_labels[0] == "*":
        return host_labels[0] != "" and host_labels[1:] == pattern_labels[1:]
    return host_labels == pattern_labels


@given(mx_patterns, host_names())
def test_matching_agrees_with_section_4_1(pattern: str, host: str) -> None:
    assert mtasts.mx_pattern_matches(pattern, host) is _reference_match(pattern, host)


@given(mx_patterns, st.data())
def test_matching_agrees_on_hosts_built_from_the_pattern(pattern: str, data: st.DataObject) -> None:
    """Hosts near the pattern: its suffix, one or two extra labels, case changes, a root dot."""
    suffix = pattern.removeprefix("*.")
    label = data.draw(labels())
    candidates = [
        suffix,
        f"{label}.{suffix}",
        f"{label}.{label}.{suffix}",
        f"{label}{suffix}",
        (f"{label}.{suffix}" if pattern.startswith("*.") else suffix).upper() + ".",
    ]
    for host in candidates:
        assert mtasts.mx_pattern_matches(pattern, host) is _reference_match(pattern, host), host
        policy = mtasts.Policy(mode=mtasts.Mode.ENFORCE, max_age=1, mx=(pattern,))
        assert policy.matches(host) is _reference_match(pattern, host)


# --- the report parsers on the hostile shapes of issue #8 -------------------------------------
# Each of these once escaped as another exception or took seconds: OverflowError from a date,
# quadratic gzip members and header folds, RecursionError from deep MIME nesting. Here any of
# them gives a value or a ParseError with a code, and the value is the right one.

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _outcome(parse: Callable[[bytes], _V], data: bytes) -> tuple[_V | None, str]:
    """What ``parse(data)`` gives: (value, "ok") or (None, the ReportParseError's code).
    Any other exception fails the test."""
    try:
        return parse(data), "ok"
    except ReportParseError as exc:
        return None, f"{exc.code}" if exc.message and exc.fix else "(no message or fix)"


@settings(max_examples=300, deadline=None)
@given(extreme_datetimes(), extreme_datetimes())
@example("2026-11-28T00:00:00Z", "9999-12-31T23:59:59-23:59")
@example("0001-01-01T00:00:00+23:59", "2026-11-28T00:00:00Z")
def test_report_parser_is_total_on_extreme_dates(start: str, end: str) -> None:
    report, code = _outcome(parse_report, report_with_dates(start, end))
    assert code in {"ok", "report.date.invalid", "report.date.range", "report.date_range.order"}
    if report is not None:
        assert _EARLIEST <= report.start <= report.end < _LATEST
        assert report.to_dict()["date_range"]["start"].endswith("Z")


@settings(max_examples=100, deadline=None)
@given(gzip_member_bodies())
def test_report_parser_reads_or_refuses_many_gzip_members(shape: tuple[bytes, int]) -> None:
    body, members = shape
    report, code = _outcome(parse_report, body)
    if members > DEFAULT_LIMITS.max_gzip_members:
        assert code == "report.gzip.members"
    else:
        assert report == parse_report(REPORT_BODY)
        assert report.raw == REPORT_BODY


@settings(max_examples=60, deadline=None)
@given(nested_messages())
def test_mail_reader_reads_or_refuses_deep_nesting(shape: tuple[bytes, int]) -> None:
    message, depth = shape
    reports, code = _outcome(extract_reports, message)
    if depth > MAX_MIME_DEPTH:
        assert code == "mail.mime.depth"
    else:
        assert reports == (parse_report(REPORT_BODY),)


@settings(max_examples=40, deadline=None)
@given(folded_messages())
def test_mail_reader_reads_or_refuses_long_folds(shape: tuple[bytes, int]) -> None:
    message, size = shape
    reports, code = _outcome(extract_reports, message)
    if size > MAX_HEADER:
        assert code == "mail.header.too_large"
    elif size < MAX_HEADER - 200:  # in between, the field with the other headers may pass the cap
        assert reports == (parse_report(REPORT_BODY),)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=400), st.sampled_from([b"", b"From: a@b\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"])
)
def test_mail_reader_is_total_on_bytes(data: bytes, prefix: bytes) -> None:
    _total(parse_any, prefix + data)
