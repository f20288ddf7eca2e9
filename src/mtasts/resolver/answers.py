"""The answer Postfix gets for a domain's policy, per answer profile (pure).

Postfix's TLS policy grammar (``smtp_tls_policy_maps``): ``secure match=a.example.com:.example.net
servername=hostname``. In ``match``, ``.example.net`` means *any depth* under example.net, while a
policy's ``*.example.net`` allows exactly one label (RFC 8461 §4.1), so a wildcard is never sent
as ``.suffix``: it is expanded into the exact names of the domain's current MX hosts that match
it at one label (a wildcard matching none of them contributes nothing). Measured with Postfix
3.7: a ``.mx.<d>`` answer let Postfix deliver to ``x.y.mx.<d>``, which the policy forbids.

================  ===============  ===========================================================
profile           Postfix          answer
================  ===============  ===========================================================
``postfix``       3.4 to 3.9       ``secure match=… servername=hostname``
``postfix-tlsrpt``  3.10 and later   the same, then ``policy_type=sts policy_domain=<d>``, one
                                   ``{ policy_string = <line> }`` per policy line (lines with
                                   ``{`` or ``}`` dropped), one ``mx_host_pattern=<p>`` per
                                   pattern in the RFC form (lower case, de-duplicated)
``postfix-legacy``  before 3.4      ``secure match=…`` (no ``servername``: unknown there)
================  ===============  ===========================================================

An empty ``match=`` or an unknown attribute makes Postfix defer the mail, so a policy whose
pattern list comes out empty or invalid gets ``NOTFOUND`` with a reason to count, never a
broken answer. ``testing`` and ``none`` policies get ``NOTFOUND`` (a sender does not enforce
them, RFC 8461 §5) unless ``strict_testing`` asks to enforce ``testing`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mtasts.core.hostname import check_mx_pattern
from mtasts.core.mx import matches_normalized, normalize_host, normalize_pattern
from mtasts.core.policy import Mode, Policy
from mtasts.resolver.socketmap import MAX_REPLY_BYTES

__all__ = ["Answer", "AnswerSettings", "NoAnswer", "Profile", "policy_lines", "render_answer"]

_OK_PREFIX = len("OK ")


class Profile(StrEnum):
    """The socketmap name Postfix asks with selects how the answer is written."""

    POSTFIX = "postfix"
    POSTFIX_TLSRPT = "postfix-tlsrpt"
    POSTFIX_LEGACY = "postfix-legacy"


class NoAnswer(StrEnum):
    """Why a domain with a policy still gets ``NOTFOUND`` (each one is counted)."""

    MODE_TESTING = "mode-testing"
    MODE_NONE = "mode-none"
    NO_PATTERNS = "no-patterns"  # nothing valid in mx, or no wildcard matched a current MX
    TOO_LARGE = "too-large"


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How answers are written: ``strict_testing`` enforces ``testing`` policies too;
    ``wildcard_suffix`` writes a ``*.`` pattern into ``match`` as ``.suffix`` instead of
    expanding it, which is right only where Postfix itself keeps to the MX hosts matching
    ``mx_host_pattern`` (the ``postfix-tlsrpt`` profile on Postfix 3.10.5 and later): the
    answer then needs no MX lookup."""

    strict_testing: bool = False
    wildcard_suffix: bool = False


DEFAULT_ANSWER_SETTINGS = AnswerSettings()


@dataclass(frozen=True, slots=True)
class Answer:
    """``data`` is what follows ``OK `` in the reply; ``None`` means NOTFOUND, for ``reason``."""

    data: str | None
    reason: NoAnswer | None = None

    @property
    def found(self) -> bool:
        return self.data is not None


def policy_lines(body: bytes) -> tuple[str, ...]:
    """The policy file's lines for ``policy_string``: stripped, empty ones and any with ``{`` or
    ``}`` dropped (those would end Postfix's ``{ … }`` attribute early)."""
    text = body.decode("utf-8", "replace")
    lines = (line.strip() for line in text.replace("\r\n", "\n").split("\n"))
    return tuple(line for line in lines if line and "{" not in line and "}" not in line)


def render_answer(
    domain: str,
    policy: Policy,
    profile: Profile,
    *,
    mx_hosts: Sequence[str] = (),
    body: bytes | None = None,
    settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
) -> Answer:
    """The answer for ``domain`` under ``policy`` in ``profile``'s grammar.

    ``mx_hosts`` are the domain's current MX host names (for wildcard expansion); ``body`` is
    the policy file as fetched (for ``policy_string``; the canonical text when absent).
    """
    if policy.mode is Mode.NONE:
        return Answer(None, NoAnswer.MODE_NONE)
    if policy.mode is Mode.TESTING and not settings.strict_testing:
        return Answer(None, NoAnswer.MODE_TESTING)
    patterns = _rfc_patterns(policy.mx)
    if settings.wildcard_suffix and profile is Profile.POSTFIX_TLSRPT:
        match = tuple(dict.fromkeys(p[1:] if p.startswith("*.") else p for p in patterns))
    else:
        match = _match_list(patterns, mx_hosts)
    if not match:
        return Answer(None, NoAnswer.NO_PATTERNS)
    parts = ["secure", "match=" + ":".join(match)]
    if profile is not Profile.POSTFIX_LEGACY:
        parts.append("servername=hostname")
    if profile is Profile.POSTFIX_TLSRPT:
        parts += ["policy_type=sts", f"policy_domain={domain}"]
        lines = policy_lines(body if body is not None else policy.to_text().encode())
        parts += [f"{{ policy_string = {line} }}" for line in lines]
        parts += [f"mx_host_pattern={pattern}" for pattern in patterns]
    data = " ".join(parts)
    if len(data.encode()) + _OK_PREFIX > MAX_REPLY_BYTES:
        return Answer(None, NoAnswer.TOO_LARGE)
    return Answer(data)


def _rfc_patterns(mx: Sequence[str]) -> tuple[str, ...]:
    """The policy's valid patterns in comparison form (lower case A-labels), de-duplicated, in
    policy order. A pattern that is not a valid host name or ``*.`` + host name is left out: it
    would be copied into Postfix's match list (an IP address, an empty value)."""
    seen: dict[str, None] = {}
    for pattern in mx:
        normal = normalize_pattern(pattern)
        if normal is not None and check_mx_pattern(normal) is None:
            seen.setdefault(normal, None)
    return tuple(seen)


def _match_list(patterns: Sequence[str], mx_hosts: Sequence[str]) -> tuple[str, ...]:
    """Postfix's ``match`` names: exact patterns as they are, each wildcard replaced by the
    current MX hosts it allows at exactly one label (sorted), all de-duplicated."""
    hosts = sorted({h for h in (normalize_host(host) for host in mx_hosts) if h and check_mx_pattern(h) is None})
    names: dict[str, None] = {}
    for pattern in patterns:
        if pattern.startswith("*."):
            for host in hosts:
                if matches_normalized(pattern, host):
                    names.setdefault(host, None)
        else:
            names.setdefault(pattern, None)
    return tuple(names)
