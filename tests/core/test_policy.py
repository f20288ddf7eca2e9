"""The policy parser's behaviour beyond the shared vectors: messages, places, warnings,
construction and serialisation."""

from __future__ import annotations

from typing import Any

import pytest

import mtasts
from mtasts import Mode, Policy, PolicyParseError, Severity

RFC_EXAMPLE = (
    "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
    "mx: backupmx.example.com\nmax_age: 604800\n"
)


def test_rfc_example() -> None:
    policy = mtasts.parse_policy(RFC_EXAMPLE)
    assert policy.mode is Mode.ENFORCE
    assert policy.mx == ("mail.example.com", "*.example.net", "backupmx.example.com")
    assert policy.matches("smtp.example.net")
    assert not policy.matches("a.b.example.net")
    assert policy.matching_pattern("MAIL.example.COM.") == "mail.example.com"


def test_first_mode_wins_and_lint_warns() -> None:
    policy, problems = mtasts.lint_policy("version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 60\n")
    assert policy is not None
    assert policy.mode is Mode.ENFORCE
    [warning] = problems
    assert warning.code == "policy.field.duplicate"
    assert warning.severity is Severity.WARNING
    assert warning.line == 3
    assert "'enforce' is used" in warning.message


_MALFORMED_REPEATS = [
    pytest.param("max_age: 100\nmax_age: garbage\n", "policy.max_age.syntax", id="max_age-garbage"),
    pytest.param("max_age: 100\nmax_age: 99999999999\n", "policy.max_age.range", id="max_age-range"),
    pytest.param("max_age: 100\nversion: STSv2\n", "policy.version.value", id="version-STSv2"),
    pytest.param("max_age: 100\nmode: off\n", "policy.mode.value", id="mode-off"),
]


@pytest.mark.parametrize(("tail", "code"), _MALFORMED_REPEATS)
def test_sender_ignores_a_malformed_repeat(tail: str, code: str) -> None:
    # RFC 8461 §3.2: every entry but the first SHALL be ignored, so the policy stays valid
    text = "version: STSv1\nmode: enforce\nmx: a.example\n" + tail
    policy = mtasts.parse_policy(text)
    assert (policy.version, policy.mode, policy.max_age) == ("STSv1", mtasts.Mode.ENFORCE, 100)


@pytest.mark.parametrize(("tail", "code"), _MALFORMED_REPEATS)
def test_owner_lint_calls_a_malformed_repeat_an_error(tail: str, code: str) -> None:
    text = "version: STSv1\nmode: enforce\nmx: a.example\n" + tail
    policy, problems = mtasts.lint_policy(text)
    assert policy is None
    [problem] = [p for p in problems if p.severity is Severity.ERROR]
    assert (problem.code, problem.line) == (code, 5)
    assert "senders ignore it" in problem.message


def test_a_malformed_first_entry_is_still_an_error() -> None:
    # the first entry is the one that counts: a valid repeat does not rescue it
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy("version: STSv1\nmode: off\nmode: enforce\nmx: a.example\nmax_age: 60\n")
    assert caught.value.code == "policy.mode.value"
    assert (caught.value.line, caught.value.column) == (2, 7)


def test_a_repeated_version_is_a_warning() -> None:
    policy, problems = mtasts.lint_policy("version: STSv1\nversion: STSv1\nmode: none\nmax_age: 60\n")
    assert policy is not None
    assert [(p.code, p.severity) for p in problems] == [("policy.field.duplicate", Severity.WARNING)]


@pytest.mark.parametrize(
    ("parse", "lint", "text"),
    [
        pytest.param(mtasts.parse_sts_record, mtasts.lint_sts_record, "v=STSv1; id=abc; id=!!!", id="sts-id"),
        pytest.param(mtasts.parse_sts_record, mtasts.lint_sts_record, "v=STSv1; id=abc; id=", id="sts-id-empty"),
        pytest.param(
            mtasts.parse_tlsrpt_record,
            mtasts.lint_tlsrpt_record,
            "v=TLSRPTv1; rua=mailto:a@example.com; rua=garbage",
            id="tlsrpt-rua",
        ),
    ],
)
def test_records_follow_the_same_rule(parse: Any, lint: Any, text: str) -> None:
    assert parse(text) is not None  # the sender keeps the first value
    record, problems = lint(text)
    assert record is None
    assert any(p.severity is Severity.ERROR and "senders ignore it" in p.message for p in problems)


def test_every_error_is_reported_with_its_place() -> None:
    text = "version: STSv2\nmode: Enforce\nmx: mail.example.com.\nmax_age: 1e3\n"
    _, problems = mtasts.lint_policy(text)
    assert [(p.code, p.line, p.column) for p in problems] == [
        ("policy.version.value", 1, 10),
        ("policy.mode.value", 2, 7),
        ("policy.mx.trailing_dot", 3, 5),
        ("policy.max_age.syntax", 4, 10),
    ]
    assert "lower case: 'enforce'" in problems[1].message
    assert "'mx: mail.example.com'" in problems[2].fix


def test_ulabel_fix_gives_the_alabel() -> None:
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy("version: STSv1\nmode: testing\nmx: *.bücher.example\nmax_age: 86400\n")
    assert caught.value.code == "policy.mx.ulabel"
    assert "*.xn--bcher-kva.example" in caught.value.fix


def test_case_variant_of_a_field_name_gets_a_hint() -> None:
    _, problems = mtasts.lint_policy("version: STSv1\nmode: none\nMax_Age: 60\n")
    codes = [p.code for p in problems]
    assert codes == ["policy.field.unknown", "policy.max_age.missing"]
    assert "'max_age'" in problems[0].fix


def test_invalid_utf8_points_at_the_byte() -> None:
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy(b"version: STSv1\nmode: none\ncomment: caf\xe9\nmax_age: 1\n")
    assert caught.value.code == "policy.encoding"
    assert (caught.value.line, caught.value.column) == (3, 13)


def test_bare_cr_is_named() -> None:
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy("version: STSv1\rmode: none\rmax_age: 1\r")
    assert caught.value.code == "policy.line.control"
    assert "carriage return" in caught.value.message


def test_missing_mx_for_enforce() -> None:
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy("version: STSv1\nmode: enforce\nmax_age: 86400\n")
    assert caught.value.code == "policy.mx.missing"
    assert caught.value.line is None


def test_str_of_parse_error_names_place_and_code() -> None:
    with pytest.raises(mtasts.ParseError) as caught:
        mtasts.parse_policy("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n")
    assert (
        str(caught.value) == "line 4, column 10: max_age 31557601 is above the maximum of 31557600 seconds (one year)"
        " [policy.max_age.range]"
    )
    assert isinstance(caught.value, ValueError)


def test_canonical_serialisation() -> None:
    policy = mtasts.parse_policy(
        "max_age:86400\nx-note: hi there\nmx:b.example\nmode:testing\nversion:STSv1\nmx:*.a.example"
    )
    assert policy.to_text() == (
        "version: STSv1\r\nmode: testing\r\nmx: b.example\r\nmx: *.a.example\r\nmax_age: 86400\r\nx-note: hi there\r\n"
    )


def test_constructor_validates() -> None:
    with pytest.raises(PolicyParseError) as caught:
        Policy(mode=Mode.ENFORCE, max_age=86400, mx=())
    assert caught.value.code == "policy.mx.missing"
    with pytest.raises(PolicyParseError):
        Policy(mode=Mode.TESTING, max_age=-1, mx=("a.example",))
    with pytest.raises(PolicyParseError):
        Policy(mode=Mode.TESTING, max_age=1, mx=("a..example",))
    with pytest.raises(PolicyParseError):
        Policy(mode=Mode.NONE, max_age=1, extensions={"mode": "enforce"})
    assert Policy(mode="none", max_age=1).mode is Mode.NONE  # type: ignore[arg-type]


def test_values_are_immutable_and_hashable() -> None:
    policy = mtasts.parse_policy(RFC_EXAMPLE + "x-a: b\n")
    with pytest.raises(AttributeError):
        policy.mode = Mode.NONE  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.extensions["x-a"] = "c"  # type: ignore[index]
    assert len({policy, mtasts.parse_policy(policy.to_text())}) == 1


def test_a_final_bare_cr_is_not_a_line_end() -> None:
    with pytest.raises(PolicyParseError) as caught:
        mtasts.parse_policy("version: STSv1\nmode: none\nmax_age: 1\r")
    assert caught.value.code == "policy.line.control"
    assert (caught.value.line, caught.value.column) == (3, 11)
    assert mtasts.parse_policy("version: STSv1\nmode: none\nmax_age: 1\r\n").max_age == 1
