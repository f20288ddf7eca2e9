"""Host names and MX patterns: validation and the one canonical form used for comparison.

A policy's ``mx`` value is ``["*."] Domain`` (RFC 8461 §3.2) where ``Domain`` is RFC 5321's:
labels of letters, digits and inner hyphens, separated by dots, A-labels only (§3.2: "MUST
specify the Punycode-encoded A-label"). Comparison is on ASCII lower case A-labels (§4.1).
"""

from __future__ import annotations

import re

import idna

__all__ = [
    "MAX_NAME_LENGTH",
    "MxPatternIssue",
    "check_host_name",
    "check_mx_pattern",
    "to_alabel",
]

MAX_NAME_LENGTH = 253  # RFC 1035 §2.3.4: 255 octets on the wire, 253 characters in text
MAX_LABEL_LENGTH = 63

# RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain)
DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# The common case in one match: a Domain whose labels are at most 63 characters and whose last
# label is not all digits. With "no '--'" (so no A-label to decode) and "at most 253 characters",
# checked next to it, this implies every check of ``check_host_name``: such a name is valid.
_LABEL_63 = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_NAME_RE = re.compile(rf"(?:{_LABEL_63}\.)*(?![0-9]+\Z){_LABEL_63}")
_PLAIN_PATTERN_RE = re.compile(rf"(?:\*\.)?{_PLAIN_NAME_RE.pattern}")


class MxPatternIssue:
    """Stable codes for what can be wrong with one host name or ``mx`` pattern."""

    EMPTY = "empty"
    ULABEL = "ulabel"
    TRAILING_DOT = "trailing_dot"
    WILDCARD = "wildcard"
    ADDRESS = "ip_address"
    LABEL_LENGTH = "label_length"
    NAME_LENGTH = "length"
    ALABEL = "alabel"
    SYNTAX = "syntax"


def to_alabel(name: str) -> str | None:
    """The ASCII lower case A-label form of a host name given in U-labels or A-labels.

    One trailing dot is dropped (DNS answers carry the root). Returns ``None`` when the name
    cannot be converted (not a valid IDNA 2008 name).
    """
    if name.endswith("."):
        name = name[:-1]
    if name.isascii():
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def check_host_name(name: str) -> tuple[str, str] | None:
    """Why ``name`` is not an RFC 5321 ``Domain`` in A-labels: ``(issue, explanation)``, or
    ``None`` when it is valid."""
    if len(name) <= MAX_NAME_LENGTH and "--" not in name and _PLAIN_NAME_RE.fullmatch(name):
        return None  # fast path: no A-label to decode, nothing else to check
    if not name:
        return MxPatternIssue.EMPTY, "the host name is empty"
    if not name.isascii():
        return MxPatternIssue.ULABEL, "the host name is not ASCII (U-labels are not allowed)"
    if name.endswith(".") and DOMAIN_RE.fullmatch(name[:-1]):
        return MxPatternIssue.TRAILING_DOT, "the host name ends with a dot"
    if "*" in name:
        return MxPatternIssue.WILDCARD, "'*' is only allowed as the whole left-most label, as in '*.example.com'"
    if not DOMAIN_RE.fullmatch(name):
        return MxPatternIssue.SYNTAX, _syntax_detail(name)
    if len(name) > MAX_NAME_LENGTH:
        return MxPatternIssue.NAME_LENGTH, f"the host name is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    labels = name.split(".")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            return (
                MxPatternIssue.LABEL_LENGTH,
                f"the label {label[:20]!r}... is {len(label)} characters long (at most {MAX_LABEL_LENGTH})",
            )
    # A top-level domain is never all-numeric (RFC 3696 §2), so this is an address, not a name.
    if labels[-1].isdigit():
        return MxPatternIssue.ADDRESS, "this is an IP address, not a host name"
    for label in labels:
        if label[2:4] == "--" and label[:2].lower() == "xn":
            try:
                idna.decode(label.lower())
            except (idna.IDNAError, UnicodeError, ValueError):
                return MxPatternIssue.ALABEL, f"{label!r} is not a valid A-label (Punycode)"
    return None


def check_mx_pattern(pattern: str) -> tuple[str, str] | None:
    """Why ``pattern`` is not a valid ``mx`` value (``["*."] Domain``), or ``None``."""
    if len(pattern) <= MAX_NAME_LENGTH and "--" not in pattern and _PLAIN_PATTERN_RE.fullmatch(pattern):
        return None  # fast path, as in check_host_name (the length limit is conservative here)
    if pattern.startswith("*."):
        return check_host_name(pattern[2:])
    return check_host_name(pattern)


def _syntax_detail(name: str) -> str:
    """Name the first character or label that breaks the RFC 5321 Domain grammar."""
    for index, char in enumerate(name):
        if not (char.isalnum() or char in "-."):
            return f"{char!r} at position {index + 1} is not allowed in a host name"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "the host name has an empty label (a leading, trailing or doubled dot)"
    for label in name.split("."):
        if label.startswith("-") or label.endswith("-"):
            return f"the label {label!r} starts or ends with a hyphen"
    return "this is not a valid host name"
