"""The owner's advice table: which valid policies are risky, one row per rule."""

from __future__ import annotations

import pytest

import mtasts
from mtasts import Mode, Policy, Severity
from mtasts.core.advice import RULES, policy_advice

MX = ("mx.example.com",)
ALL_THREE = [
    ("policy.max_age.short", "warning"),
    ("policy.enforce.first", "warning"),
    ("policy.tlsrpt.missing", "warning"),
]


@pytest.mark.parametrize(
    ("mode", "max_age", "reporting", "first", "expected"),
    [
        pytest.param(Mode.ENFORCE, 604800, True, False, [], id="enforce-clean"),
        pytest.param(Mode.ENFORCE, 604799, True, False, [("policy.max_age.short", "warning")], id="enforce-week-1s"),
        pytest.param(Mode.TESTING, 86400, True, False, [], id="testing-a-day"),
        pytest.param(Mode.TESTING, 86399, True, False, [("policy.max_age.short", "warning")], id="testing-day-1s"),
        pytest.param(Mode.NONE, 0, False, True, [], id="none-says-nothing"),
        pytest.param(Mode.ENFORCE, 604800, True, True, [("policy.enforce.first", "warning")], id="first-enforce"),
        pytest.param(Mode.ENFORCE, 604800, True, None, [], id="first-unknown"),
        pytest.param(Mode.TESTING, 604800, False, None, [("policy.tlsrpt.missing", "warning")], id="no-reports"),
        pytest.param(Mode.ENFORCE, 604800, None, None, [("policy.tlsrpt.missing", "info")], id="reports-unknown"),
        pytest.param(
            Mode.ENFORCE,
            60,
            False,
            True,
            ALL_THREE,
            id="all-three-in-table-order",
        ),
    ],
)
def test_rules(
    mode: Mode, max_age: int, reporting: bool | None, first: bool | None, expected: list[tuple[str, str]]
) -> None:
    policy = Policy(mode=mode, max_age=max_age, mx=() if mode is Mode.NONE else MX)
    advice = policy_advice(policy, reporting=reporting, first_deployment=first)
    assert [(p.code, p.severity.value) for p in advice] == expected
    assert [p.code for p in advice] == [code for code in RULES if code in {p.code for p in advice}]


def test_texts_come_from_the_table() -> None:
    [short] = policy_advice(Policy(mode=Mode.ENFORCE, max_age=60, mx=MX), reporting=True)
    rule = RULES["policy.max_age.short"]
    assert short.fix == rule.fix
    assert short.message.startswith("max_age 60 is under a week with mode 'enforce': ")
    assert short.line is None


def test_the_senders_reading_is_unchanged() -> None:
    # a risky value is advice for the owner, never a problem for a sender (RFC 8461 allows it)
    policy, problems = mtasts.lint_policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 60\n")
    assert policy is not None
    assert problems == ()
    assert mtasts.parse_policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 0\n").max_age == 0
    assert all(p.severity is not Severity.ERROR for p in policy_advice(policy))
