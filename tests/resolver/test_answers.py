"""Answers in Postfix's grammar, per profile, and the wildcard expansion it needs."""

from __future__ import annotations

import pytest

from mtasts.core.policy import Mode, Policy, parse_policy
from mtasts.resolver.answers import AnswerSettings, NoAnswer, Profile, policy_lines, render_answer

D = "example.com"
ENFORCE = Policy(Mode.ENFORCE, 86400, ("mx1.example.com", "mx2.example.com"))


@pytest.mark.parametrize(
    ("profile", "data"),
    [
        (Profile.POSTFIX, "secure match=mx1.example.com:mx2.example.com servername=hostname"),
        (Profile.POSTFIX_LEGACY, "secure match=mx1.example.com:mx2.example.com"),
    ],
)
def test_profiles_without_tlsrpt(profile: Profile, data: str) -> None:
    assert render_answer(D, ENFORCE, profile).data == data


def test_tlsrpt_profile_carries_the_policy_lines_and_rfc_patterns() -> None:
    body = (
        b"version: STSv1\r\nmode: enforce\r\nmx: *.MX.example.com\r\nmx: mx1.example.com\r\n"
        b"mx: *.mx.example.com\r\nmax_age: 86400\r\nnote: {x}\r\n"
    )
    policy = parse_policy(body)
    answer = render_answer(D, policy, Profile.POSTFIX_TLSRPT, mx_hosts=["a.mx.example.com"], body=body)
    assert answer.data == (
        "secure match=a.mx.example.com:mx1.example.com servername=hostname "
        "policy_type=sts policy_domain=example.com "
        "{ policy_string = version: STSv1 } { policy_string = mode: enforce } "
        "{ policy_string = mx: *.MX.example.com } { policy_string = mx: mx1.example.com } "
        "{ policy_string = mx: *.mx.example.com } { policy_string = max_age: 86400 } "
        "mx_host_pattern=*.mx.example.com mx_host_pattern=mx1.example.com"
    )


def test_policy_lines_drop_braces_and_blank_lines() -> None:
    assert policy_lines(b"version: STSv1\n\nmode: enforce\nx: a}b\ny: {\n") == ("version: STSv1", "mode: enforce")


def test_wildcard_is_expanded_to_one_label_mx_hosts_only() -> None:
    """The issue's case: ``*.mx.<d>`` with a two-label-deep preferred MX. Postfix's ``.mx.<d>``
    would have let it deliver to ``x.y.mx.<d>``; only the one-label MX may be in the answer."""
    policy = Policy(Mode.ENFORCE, 86400, ("*.mx.example.com",))
    hosts = ["x.y.mx.example.com", "b.mx.example.com", "A.MX.example.com.", "mx.example.com", "other.example.net"]
    answer = render_answer(D, policy, Profile.POSTFIX, mx_hosts=hosts)
    assert answer.data == "secure match=a.mx.example.com:b.mx.example.com servername=hostname"
    assert ".mx.example.com" not in answer.data.split("match=")[1].split(":")


def test_wildcard_matching_no_current_mx_contributes_nothing() -> None:
    policy = Policy(Mode.ENFORCE, 86400, ("*.mx.example.com", "mx9.example.com"))
    answer = render_answer(D, policy, Profile.POSTFIX, mx_hosts=["x.y.mx.example.com"])
    assert answer.data == "secure match=mx9.example.com servername=hostname"


def test_only_wildcards_and_no_matching_mx_is_notfound_with_a_reason() -> None:
    policy = Policy(Mode.ENFORCE, 86400, ("*.mx.example.com",))
    answer = render_answer(D, policy, Profile.POSTFIX, mx_hosts=["x.y.mx.example.com"])
    assert answer.data is None
    assert answer.reason is NoAnswer.NO_PATTERNS


def test_rendering_is_deterministic_and_deduplicated() -> None:
    policy = Policy(Mode.ENFORCE, 86400, ("MX1.example.com", "*.example.com", "mx1.example.com"))
    first = render_answer(D, policy, Profile.POSTFIX, mx_hosts=["mx2.example.com", "mx1.example.com"])
    second = render_answer(D, policy, Profile.POSTFIX, mx_hosts=["mx1.example.com", "mx2.example.com"])
    assert first == second
    assert first.data == "secure match=mx1.example.com:mx2.example.com servername=hostname"


@pytest.mark.parametrize(("mode", "reason"), [(Mode.TESTING, NoAnswer.MODE_TESTING), (Mode.NONE, NoAnswer.MODE_NONE)])
def test_testing_and_none_are_notfound(mode: Mode, reason: NoAnswer) -> None:
    policy = Policy(mode, 86400, ("mx1.example.com",))
    answer = render_answer(D, policy, Profile.POSTFIX)
    assert answer.data is None
    assert answer.reason is reason


def test_strict_testing_enforces_testing_but_never_none() -> None:
    strict = AnswerSettings(strict_testing=True)
    testing = Policy(Mode.TESTING, 86400, ("mx1.example.com",))
    assert render_answer(D, testing, Profile.POSTFIX, settings=strict).data == (
        "secure match=mx1.example.com servername=hostname"
    )
    none = Policy(Mode.NONE, 86400, ("mx1.example.com",))
    assert render_answer(D, none, Profile.POSTFIX, settings=strict).data is None


def test_an_oversized_answer_is_notfound_never_a_reply_postfix_refuses() -> None:
    patterns = tuple(f"mx{i:05d}-{'a' * 40}.example.com" for i in range(2000))
    policy = Policy(Mode.ENFORCE, 86400, patterns)
    answer = render_answer(D, policy, Profile.POSTFIX)
    assert answer.data is None
    assert answer.reason is NoAnswer.TOO_LARGE
