"""What a compliant sender does: one row per situation (RFC 8461 §4, §5)."""

from __future__ import annotations

import pytest

from mtasts import Mode, Policy
from mtasts.core.verdict import Delivery, MxState, sender_verdict

GOOD = MxState("mx1.example.com", reachable=True, tls_valid=True)
EXPIRED = MxState("mx2.example.com", reachable=True, tls_valid=False, tls_problem="the certificate expired")
DOWN = MxState("mx3.example.com", reachable=False, tls_valid=False)


def _policy(mode: Mode, *mx: str) -> Policy:
    return Policy(mode=mode, max_age=604800, mx=mx or ("*.example.com",))


@pytest.mark.parametrize(
    ("policy", "states", "delivery", "delivering"),
    [
        (_policy(Mode.ENFORCE), [GOOD, EXPIRED], Delivery.VALIDATED, ["mx1.example.com"]),
        (_policy(Mode.ENFORCE), [EXPIRED, DOWN], Delivery.DEFER, []),
        (_policy(Mode.ENFORCE, "mx2.example.com"), [GOOD], Delivery.DEFER, []),
        (_policy(Mode.TESTING), [EXPIRED], Delivery.NOT_ENFORCED, ["mx2.example.com"]),
        (_policy(Mode.NONE), [EXPIRED, DOWN], Delivery.NOT_ENFORCED, ["mx2.example.com"]),
        (None, [EXPIRED], Delivery.NO_POLICY, ["mx2.example.com"]),
        (None, [DOWN], Delivery.DEFER, []),
        (_policy(Mode.TESTING), [], Delivery.DEFER, []),
    ],
)
def test_delivery(policy: Policy | None, states: list[MxState], delivery: Delivery, delivering: list[str]) -> None:
    verdict = sender_verdict(policy, states)
    assert verdict.delivery is delivery
    assert [m.host for m in verdict.mx if m.deliver] == delivering
    assert verdict.mail_flows is bool(delivering)


def test_skip_reasons_are_named() -> None:
    verdict = sender_verdict(_policy(Mode.ENFORCE, "mx1.example.com"), [GOOD, EXPIRED])
    assert [m.reason for m in verdict.mx] == [
        "would deliver over validated TLS",
        "would skip it: not listed in the policy",
    ]


def test_enforce_readiness() -> None:
    testing = sender_verdict(_policy(Mode.TESTING), [GOOD, EXPIRED])
    assert testing.readiness == "switching to enforce now would block mail to mx2.example.com: the certificate expired"
    all_blocked = sender_verdict(_policy(Mode.TESTING), [EXPIRED])
    assert all_blocked.readiness is not None
    assert all_blocked.readiness.startswith("switching to enforce now would defer all mail")
    assert sender_verdict(_policy(Mode.ENFORCE), [GOOD]).readiness is None
    assert sender_verdict(_policy(Mode.NONE), [GOOD]).readiness == "switching to enforce now would block no MX"


def test_readiness_names_the_record_when_only_the_record_keeps_senders_from_the_policy() -> None:
    """No policy applies either way, but what to fix differs: a served valid policy that no
    valid record announces needs the record fixed, not the policy."""
    unannounced = sender_verdict(None, [GOOD], unannounced=True)
    assert unannounced.delivery is Delivery.NO_POLICY
    assert unannounced.readiness == (
        "senders do not apply the policy served: no valid _mta-sts record announces it; "
        "fix the record before thinking of enforce"
    )
    assert sender_verdict(None, [GOOD]).readiness == (
        "no valid policy is published: fix the policy before thinking of enforce"
    )


def test_null_mx_is_undeliverable_whatever_the_policy() -> None:
    verdict = sender_verdict(_policy(Mode.ENFORCE), [], accepts_mail=False)
    assert verdict.delivery is Delivery.UNDELIVERABLE
    assert not verdict.mail_flows
    assert "null MX" in verdict.summary
