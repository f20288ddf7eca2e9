"""Advice for the domain owner: valid policy values that still put mail at risk.

RFC 8461 allows any ``max_age`` from 0 and any mode with or without TLS reporting, so none of
this is a parse problem: senders accept these policies (:func:`~mtasts.core.policy.parse_policy`
stays as it is). But an owner who publishes them is worse protected than they think, so the
commands that speak to the owner say so: ``mtasts generate`` (:mod:`mtasts.publish.plan`) before
the policy goes out, ``mtasts lint policy`` on a file. Both take their warnings from
:func:`policy_advice`, so a risky value gets the same code and the same words wherever it is
seen; the rules are the rows of :data:`MAX_AGE_FLOORS` and :data:`RULES`.

Pure: the caller says what it knows beyond the policy (whether TLS reporting is published,
whether this is a first deployment) and ``None`` where it cannot know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import Problem, Severity

__all__ = [
    "MAX_AGE_FLOORS",
    "ONE_DAY",
    "ONE_WEEK",
    "RULES",
    "MaxAgeFloor",
    "Rule",
    "policy_advice",
]

ONE_DAY = 24 * 3600
ONE_WEEK = 7 * ONE_DAY


@dataclass(frozen=True, slots=True)
class Rule:
    """One piece of advice: its stable ``code`` (scripts match on it), the ``severity`` it has
    when the risk is known, and its ``message`` and ``fix`` as templates (``{mode}``, ...)."""

    code: str
    severity: Severity
    message: str
    fix: str
    unknown: tuple[str, str] | None = None  # (message, fix) when the caller cannot tell: an info note

    def problem(self, *, mode: Mode, known: bool = True, **values: object) -> Problem:
        """The advice as a :class:`Problem`, its templates filled in."""
        if known or self.unknown is None:
            return Problem(self.code, self.message.format(mode=mode.value, **values), self.fix, severity=self.severity)
        message, fix = self.unknown
        return Problem(self.code, message.format(mode=mode.value, **values), fix, severity=Severity.INFO)


@dataclass(frozen=True, slots=True)
class MaxAgeFloor:
    """The least ``max_age`` that is not risky under one mode, and why."""

    seconds: int
    words: str  # "a week": how the message names the floor
    why: str


# RFC 8461 §3.2: "To mitigate the risks of attacks at policy refresh time, it is expected that
# this value typically be in the range of weeks or greater." Under enforce a short max_age is a
# short protection; under testing nothing is refused, but a day keeps senders from re-fetching
# for almost every message and the value is ready to keep when switching to enforce. Mode none
# is how a domain leaves MTA-STS (§8.3): a short max_age there protects nothing and risks nothing.
MAX_AGE_FLOORS: Mapping[Mode, MaxAgeFloor] = MappingProxyType(
    {
        Mode.ENFORCE: MaxAgeFloor(
            ONE_WEEK,
            "a week",
            "senders keep the policy only that long, and once it has expired an attacker who blocks the "
            "policy fetch can downgrade delivery (RFC 8461 §3.2 expects weeks or more)",
        ),
        Mode.TESTING: MaxAgeFloor(
            ONE_DAY,
            "a day",
            "senders re-fetch the policy that often, and the value is too short to keep when switching to 'enforce'",
        ),
    }
)

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        rule.code: rule
        for rule in (
            Rule(
                "policy.max_age.short",
                Severity.WARNING,
                "max_age {max_age} is under {floor} with mode '{mode}': {why}",
                "Use at least 604800 (one week) with 'enforce'; 86400 (one day) is fine while in 'testing'.",
            ),
            Rule(
                "policy.enforce.first",
                Severity.WARNING,
                "mode 'enforce' on a first deployment: a sender that cannot validate an MX will defer mail",
                "Start with 'testing' and TLS reporting, read the reports for a few weeks, then switch to "
                "'enforce' (pass --existing if this domain already runs MTA-STS).",
            ),
            Rule(
                "policy.tlsrpt.missing",
                Severity.WARNING,
                "mode '{mode}' without TLS reporting (no --rua given): nobody tells you which senders fail{extra}",
                "Add --rua mailto:tlsrpt@<domain> (or an https:// endpoint) and publish the _smtp._tls record.",
                unknown=(
                    "mode '{mode}' and TLS reporting unknown: the file alone cannot say whether _smtp._tls is "
                    "published, and without it nobody tells you which senders fail{extra}",
                    "If _smtp._tls.<domain> lists report URIs, pass them as --rua (or run 'mtasts check "
                    "<domain>', which looks it up); if there is none, publish one.",
                ),
            ),
        )
    }
)

# what missing TLS reports cost, per mode where they matter (under 'none' MTA-STS is off)
_TLSRPT_EXTRA: Mapping[Mode, str] = MappingProxyType(
    {Mode.ENFORCE: "", Mode.TESTING: ", and reporting is all that testing mode does"}
)


def policy_advice(
    policy: Policy, *, reporting: bool | None = None, first_deployment: bool | None = None
) -> tuple[Problem, ...]:
    """The advice for ``policy``, in :data:`RULES` order (empty when there is none).

    ``reporting``: whether the domain publishes TLS reporting. ``None`` means unknown, as for a
    policy file linted on its own: the advice is then an ``info`` note under the same code (its
    :attr:`Rule.unknown` text), because nothing says reporting is missing and a warning that is
    usually false would teach owners to ignore warnings. ``first_deployment``: whether the
    domain has no policy yet (``None``: unknown, no advice).
    """
    mode = policy.mode
    advice: list[Problem] = []
    floor = MAX_AGE_FLOORS.get(mode)
    if floor is not None and policy.max_age < floor.seconds:
        advice.append(
            RULES["policy.max_age.short"].problem(mode=mode, max_age=policy.max_age, floor=floor.words, why=floor.why)
        )
    if mode is Mode.ENFORCE and first_deployment:
        advice.append(RULES["policy.enforce.first"].problem(mode=mode))
    extra = _TLSRPT_EXTRA.get(mode)
    if extra is not None and not reporting:
        advice.append(RULES["policy.tlsrpt.missing"].problem(mode=mode, known=reporting is not None, extra=extra))
    return tuple(advice)
