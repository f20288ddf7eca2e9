"""What an RFC 8461-compliant sender does with mail for a domain, given what was found.

Pure: the inspector and the sending-side resolver both ask this module, so "what a sender
would do" has one definition (RFC 8461 §4 and §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mtasts.core.policy import Mode, Policy

__all__ = ["Delivery", "MxState", "MxVerdict", "Verdict", "nonexistent_verdict", "sender_verdict", "unknown_verdict"]


class Delivery(StrEnum):
    """What a compliant sender does with mail for the domain (with no policy cached)."""

    VALIDATED = "deliver-validated-tls"
    NOT_ENFORCED = "deliver-policy-not-enforced"
    NO_POLICY = "deliver-no-policy"
    DEFER = "defer"
    UNDELIVERABLE = "undeliverable"  # a null MX (RFC 7505) or no such domain: no mail at all
    UNKNOWN = "unknown"  # the check could not find out (local trouble, an error of mtasts)


@dataclass(frozen=True, slots=True)
class MxState:
    """What was learned about one MX host: reachable at all, and the first reason (if any) why
    no address passed a compliant TLS validation."""

    host: str
    reachable: bool
    tls_valid: bool
    tls_problem: str = ""


@dataclass(frozen=True, slots=True)
class MxVerdict:
    host: str
    deliver: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "deliver": self.deliver, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Verdict:
    """``mail_flows``: a compliant sender can deliver to at least one MX. ``readiness`` says,
    for domains not enforcing, what switching to ``enforce`` now would do."""

    mode: Mode | None
    mail_flows: bool
    delivery: Delivery
    summary: str
    mx: tuple[MxVerdict, ...]
    readiness: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": None if self.mode is None else self.mode.value,
            "mail_flows": self.mail_flows,
            "delivery": self.delivery.value,
            "summary": self.summary,
            "mx": [m.to_dict() for m in self.mx],
            "enforce_readiness": self.readiness,
        }


def sender_verdict(
    policy: Policy | None, states: Sequence[MxState], *, accepts_mail: bool = True, unannounced: bool = False
) -> Verdict:
    """Per MX: would a compliant sender deliver, or skip it and why; overall: does mail flow.

    ``accepts_mail`` is false for a null MX (RFC 7505): senders return such mail at once.
    ``unannounced``: ``policy`` is ``None`` although the policy host serves a valid policy,
    because no valid ``_mta-sts`` record announces it (absent, invalid, or its lookup failed):
    the readiness line then names the record, not the policy, as what to fix.
    """
    mode = None if policy is None else policy.mode
    if not accepts_mail:
        summary = "the domain accepts no mail (null MX, RFC 7505): senders return it to the sender at once"
        return Verdict(mode, False, Delivery.UNDELIVERABLE, summary, ())
    enforcing = policy is not None and policy.mode is Mode.ENFORCE
    verdicts = tuple(_mx_verdict(policy, state) for state in states)
    flows = any(v.deliver for v in verdicts)
    if not states:
        summary = "no MX host to deliver to: mail cannot be delivered"
    elif flows and enforcing:
        summary = "mail flows: a compliant sender delivers over validated TLS"
    elif flows:
        summary = "mail flows" + (
            ": the policy is not enforced (mode " + policy.mode.value + ")"
            if policy is not None
            else ": no MTA-STS policy applies"
        )
    elif enforcing:
        summary = "mail would be deferred: no MX passes MTA-STS validation"
    else:
        summary = "mail would be deferred: no MX can be reached"
    readiness = None if enforcing else _readiness(policy, states, unannounced=unannounced)
    if not flows:
        delivery = Delivery.DEFER
    elif enforcing:
        delivery = Delivery.VALIDATED
    else:
        delivery = Delivery.NO_POLICY if policy is None else Delivery.NOT_ENFORCED
    return Verdict(mode, flows, delivery, summary, verdicts, readiness)


def unknown_verdict(summary: str) -> Verdict:
    """The verdict when nothing can be said about the domain: our resolver is dead, this
    machine cannot reach port 25, or the check failed. Never "mail cannot be delivered":
    that would blame the domain for what went wrong here."""
    return Verdict(None, False, Delivery.UNKNOWN, summary, ())


def nonexistent_verdict() -> Verdict:
    """The domain does not exist (NXDOMAIN): senders return the mail at once."""
    return Verdict(
        None, False, Delivery.UNDELIVERABLE, "the domain does not exist: senders return mail for it at once", ()
    )


def _blocking_reason(policy: Policy, state: MxState) -> str | None:
    """Why enforcing ``policy`` would make a sender skip this MX (whatever the current mode)."""
    if not policy.matches(state.host):
        return "not listed in the policy" if policy.mx else "the policy lists no mx"
    if not state.tls_valid:
        return state.tls_problem or "no validated TLS"
    return None


def _mx_verdict(policy: Policy | None, state: MxState) -> MxVerdict:
    if not state.reachable:
        return MxVerdict(state.host, False, "would skip it: unreachable")
    if policy is None or policy.mode is not Mode.ENFORCE:
        why = "no policy" if policy is None else f"mode {policy.mode.value}"
        return MxVerdict(state.host, True, f"would deliver ({why}: TLS is opportunistic)")
    reason = _blocking_reason(policy, state)
    if reason is not None:
        return MxVerdict(state.host, False, f"would skip it: {reason}")
    return MxVerdict(state.host, True, "would deliver over validated TLS")


def _readiness(policy: Policy | None, states: Sequence[MxState], *, unannounced: bool = False) -> str:
    if policy is None and unannounced:
        return (
            "senders do not apply the policy served: no valid _mta-sts record announces it; "
            "fix the record before thinking of enforce"
        )
    if policy is None:
        return "no valid policy is published: fix the policy before thinking of enforce"
    blocked = [(s.host, _blocking_reason(policy, s)) for s in states if s.reachable]
    blocked = [(host, reason) for host, reason in blocked if reason is not None]
    if not blocked:
        return "switching to enforce now would block no MX"
    listed = "; ".join(f"{host}: {reason}" for host, reason in blocked)
    if len(blocked) == len([s for s in states if s.reachable]):
        return f"switching to enforce now would defer all mail ({listed})"
    return f"switching to enforce now would block mail to {listed}"
