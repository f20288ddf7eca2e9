"""Property-based tests: round trips, total parsers, and matching against a direct reading of
RFC 8461 §4.1."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

import mtasts
from mtasts.core.policy import Policy
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord
from tests.strategies import host_names, labels, mx_patterns, policies, sts_records, tlsrpt_records


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
