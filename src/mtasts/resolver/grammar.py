"""Postfix's TLS policy answer grammar, per Postfix version (pure): is this answer one Postfix takes?

``mtasts resolver selftest --postfix`` asks the live daemon through ``postmap -q`` and holds each
answer against what the running Postfix (``postconf -h mail_version``) accepts; the zone
configuration uses the same table to refuse a profile the configured version would reject.
An answer Postfix cannot parse is worse than none: Postfix then defers every message to the
domain ("4.7.5 client TLS configuration problem"), so each rule below is an outage avoided.

The answer is a security level, then attributes (``smtp_tls_policy_maps``, postconf(5)):
``secure match=a.example.com:.example.net servername=hostname``. A value with spaces goes in
braces, ``{ name = value }``. What each version accepts:

=====================  ========  ===========  ===============================================
attribute              Postfix   repeatable   value
=====================  ========  ===========  ===============================================
``match``              all       no           ``:``-separated names: a host name, ``.suffix``
                                              (any depth below it), ``hostname``, ``nexthop``,
                                              ``dot-nexthop``; none empty, none an IP address
``ciphers``            all       no           a cipher grade (``high``, ``medium``, ...)
``protocols``          all       no           a protocol list (``>=TLSv1.2``, ``!SSLv3``)
``exclude``            all       no           cipher exclusions
``servername``         >= 3.4    no           ``hostname``, ``nexthop`` or a host name
``connection_reuse``   >= 3.4    no           ``yes`` or ``no``
``policy_type``        >= 3.10   no           ``sts`` or ``no-policy-found`` (TLSRPT)
``policy_domain``      >= 3.10   no           a domain
``policy_string``      >= 3.10   yes          one policy line (in braces when it has spaces)
``mx_host_pattern``    >= 3.10   yes          an RFC 8461 pattern, ``host`` or ``*.host``;
                                              from 3.10.5 on Postfix connects only to MX hosts
                                              matching one, and a ``.host`` form never matches
``policy_failure``     >= 3.10   no           a TLSRPT failure type
=====================  ========  ===========  ===============================================

An unknown attribute, an attribute of a later version, a repeated one-off attribute, an empty
``match`` or an unbalanced brace invalidates the answer.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from mtasts.core.hostname import check_host_name, check_mx_pattern
from mtasts.resolver.answers import Profile

__all__ = [
    "AnswerProblem",
    "PostfixVersion",
    "check_answer",
    "parse_postfix_version",
    "profile_error",
    "recommended_profile",
    "socketmap_tables",
]

_MAX_ANSWER_BYTES = 100_000  # Postfix's socketmap reply limit
_VERSION_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?(?:[-.~+][0-9A-Za-z.~+-]{0,40})?$")


@dataclass(frozen=True, slots=True, order=True)
class PostfixVersion:
    """A Postfix release, compared numerically (3.10 > 3.9)."""

    major: int
    minor: int
    patch: int = 0

    def to_text(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


V3_4 = PostfixVersion(3, 4)
V3_10 = PostfixVersion(3, 10)
V3_10_5 = PostfixVersion(3, 10, 5)


def parse_postfix_version(text: str) -> PostfixVersion:
    """``3.7.11``, ``3.10`` or a snapshot such as ``3.11-20250101`` (what ``postconf -h
    mail_version`` prints); ``ValueError`` says why not."""
    found = _VERSION_RE.match(text.strip())
    if found is None:
        raise ValueError(f"{text.strip()[:40]!r} is not a Postfix version such as 3.7.11")
    return PostfixVersion(int(found[1]), int(found[2]), int(found[3] or 0))


def recommended_profile(version: PostfixVersion) -> Profile:
    """The answer profile for ``version``: the richest answer it accepts."""
    if version < V3_4:
        return Profile.POSTFIX_LEGACY
    if version < V3_10:
        return Profile.POSTFIX
    return Profile.POSTFIX_TLSRPT


def profile_error(profile: Profile, version: PostfixVersion) -> str | None:
    """Why ``version`` would reject the answers of ``profile``, or ``None`` when it takes them."""
    if profile is Profile.POSTFIX and version < V3_4:
        return f"Postfix {version.to_text()} rejects servername= (it needs 3.4): use postfix-legacy"
    if profile is Profile.POSTFIX_TLSRPT and version < V3_10:
        better = recommended_profile(version).value
        return f"Postfix {version.to_text()} rejects the TLSRPT attributes (they need 3.10): use {better}"
    return None


class Severity(StrEnum):
    ERROR = "error"  # Postfix rejects the answer: mail to the domain is deferred
    WARNING = "warning"  # accepted, but not what the policy means


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    """One thing wrong with an answer: a stable ``code``, what, and its severity."""

    code: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class _Attribute:
    since: PostfixVersion
    repeatable: bool = False


_V0 = PostfixVersion(0, 0)
_ATTRIBUTES = {
    "match": _Attribute(_V0),
    "ciphers": _Attribute(_V0),
    "protocols": _Attribute(_V0),
    "exclude": _Attribute(_V0),
    "servername": _Attribute(V3_4),
    "connection_reuse": _Attribute(V3_4),
    "policy_type": _Attribute(V3_10),
    "policy_domain": _Attribute(V3_10),
    "policy_string": _Attribute(V3_10, repeatable=True),
    "mx_host_pattern": _Attribute(V3_10, repeatable=True),
    "policy_failure": _Attribute(V3_10),
}
_LEVELS = ("none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure")
_MATCH_SPECIAL = ("hostname", "nexthop", "dot-nexthop")
_SERVERNAME_SPECIAL = ("hostname", "nexthop")


def _tokens(text: str) -> list[str] | AnswerProblem:
    """Whitespace-separated words, a ``{ … }`` group (nesting counted) being one word without
    its braces; linear in the text."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                return AnswerProblem("unbalanced-brace", "a '{' is never closed")
            words.append(text[i + 1 : j - 1].strip())
            i = j
            continue
        j = i
        while j < n and not text[j].isspace():
            if text[j] in "{}":
                return AnswerProblem("stray-brace", f"a brace inside a word: {text[i : j + 1][:60]!r}")
            j += 1
        words.append(text[i:j])
        i = j
    return words


def check_answer(answer: str, version: PostfixVersion) -> list[AnswerProblem]:
    """Every problem Postfix ``version`` has with the socketmap reply ``answer`` (``OK …``,
    ``NOTFOUND``, ``TEMP …``: the text after the netstring length), none when it takes it."""
    status, _, data = answer.partition(" ")
    if status == "NOTFOUND":
        return []
    if status in ("TEMP", "TIMEOUT", "PERM"):
        return [
            AnswerProblem("deferral", f"{status}: Postfix defers the mail ('4.7.5 client TLS configuration problem')")
        ]
    if status != "OK":
        return [AnswerProblem("not-a-reply", f"{status[:40]!r} is not a socketmap reply status")]
    return check_policy(data, version)


def check_policy(data: str, version: PostfixVersion) -> list[AnswerProblem]:
    """Every problem ``version`` has with a policy (what follows ``OK `` in a reply, or a
    ``postmap -q`` result)."""
    if len(data.encode("utf-8", "replace")) + 3 > _MAX_ANSWER_BYTES:
        return [AnswerProblem("too-large", f"longer than Postfix's {_MAX_ANSWER_BYTES}-byte reply limit")]
    words = _tokens(data)
    if isinstance(words, AnswerProblem):
        return [words]
    if not words:
        return [AnswerProblem("empty", "an empty policy")]
    level, *attributes = words
    problems: list[AnswerProblem] = []
    if level not in _LEVELS:
        problems.append(AnswerProblem("unknown-level", f"{level[:40]!r} is not a TLS security level"))
    seen: set[str] = set()
    for word in attributes:
        name, equals, value = word.partition("=")
        name, value = name.strip(), value.strip()
        rule = _ATTRIBUTES.get(name)
        if not equals or rule is None:
            problems.append(AnswerProblem("unknown-attribute", f"{word[:60]!r} is not a policy attribute"))
            continue
        if version < rule.since:
            problems.append(
                AnswerProblem(
                    "attribute-too-new",
                    f"{name}= needs Postfix {rule.since.major}.{rule.since.minor}; this is {version.to_text()}",
                )
            )
            continue
        if name in seen and not rule.repeatable:
            problems.append(AnswerProblem("repeated-attribute", f"{name}= is given twice"))
        seen.add(name)
        problems += _check_value(name, value, version)
    if level == "secure" and "match" not in seen:
        problems.append(
            AnswerProblem("no-match", "secure without match= checks the next-hop name, not the MX", Severity.WARNING)
        )
    return problems


def _check_value(name: str, value: str, version: PostfixVersion) -> list[AnswerProblem]:
    if name != "policy_string" and not value:
        return [AnswerProblem("empty-value", f"{name}= has an empty value")]
    if name == "match":
        problems = []
        for item in value.split(":"):
            if not item:
                problems.append(AnswerProblem("empty-match-name", f"match={value[:60]} has an empty name"))
            elif item in _MATCH_SPECIAL:
                continue
            elif _is_address(item.lstrip(".")):
                problems.append(AnswerProblem("address-in-match", f"{item[:60]!r} in match= is an IP address"))
            elif check_host_name(item.removeprefix(".")) is not None:
                problems.append(AnswerProblem("bad-match-name", f"{item[:60]!r} in match= is not a host name"))
        return problems
    if name == "servername" and value not in _SERVERNAME_SPECIAL and check_host_name(value) is not None:
        return [AnswerProblem("bad-servername", f"servername={value[:60]} is not hostname, nexthop or a name")]
    if name == "connection_reuse" and value not in ("yes", "no"):
        return [AnswerProblem("bad-connection-reuse", f"connection_reuse={value[:20]} is not yes or no")]
    if name == "policy_type" and value not in ("sts", "no-policy-found"):
        return [AnswerProblem("bad-policy-type", f"policy_type={value[:20]} is not sts or no-policy-found")]
    if name == "policy_domain" and check_host_name(value) is not None:
        return [AnswerProblem("bad-policy-domain", f"policy_domain={value[:60]} is not a domain")]
    if name == "mx_host_pattern":
        if value.startswith(".") and version >= V3_10_5:
            return [
                AnswerProblem(
                    "dot-mx-host-pattern",
                    f"mx_host_pattern={value[:60]} never matches from Postfix 3.10.5 on (write *.{value[1:60]})",
                )
            ]
        if check_mx_pattern(value.removeprefix(".")) is not None:
            return [AnswerProblem("bad-mx-host-pattern", f"mx_host_pattern={value[:60]} is not an MX pattern")]
    return []


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def socketmap_tables(policy_maps: str) -> list[str]:
    """The ``socketmap:`` tables of an ``smtp_tls_policy_maps`` value (comma- or space-separated,
    ``proxy:`` in front allowed), in order."""
    tables = []
    for item in re.split(r"[\s,]+", policy_maps.strip()):
        table = item.removeprefix("proxy:")
        if table.startswith("socketmap:") and table.count(":") >= 3:
            tables.append(table)
    return tables
