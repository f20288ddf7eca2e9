"""MX host matching against policy ``mx`` patterns (RFC 8461 §4.1).

The rules, all in one place:

* the comparison is anchored and ASCII case-insensitive on A-labels (a host given in U-labels
  is converted first; hosts from DNS already are A-labels);
* one trailing dot on the host (the DNS root) is ignored; the same leniency is applied to a
  pattern, although a pattern with a trailing dot is not valid policy syntax;
* ``*.`` + suffix matches a host made of exactly one non-empty label followed by ``.suffix``:
  ``*.example.com`` matches ``mail.example.com``, never ``example.com`` or ``a.b.example.com``;
* a host containing ``*`` is not a host name and matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from mtasts.core.hostname import to_alabel

__all__ = ["matching_pattern", "mx_pattern_matches", "normalize_host", "normalize_pattern"]


def normalize_host(host: str) -> str | None:
    """The comparison form of an MX host name, or ``None`` when it can never match."""
    name = to_alabel(host)
    if not name or "*" in name:
        return None
    return name


def normalize_pattern(pattern: str) -> str | None:
    """The comparison form of an ``mx`` pattern, or ``None`` when it can never match."""
    if pattern.startswith("*."):
        suffix = to_alabel(pattern[2:])
        return None if not suffix else "*." + suffix
    return to_alabel(pattern) or None


def matches_normalized(pattern: str, host: str) -> bool:
    """Match an already normalised pattern against an already normalised host."""
    if pattern[:2] == "*.":
        suffix = pattern[1:]  # ".example.com"
        # exactly one non-empty label before the suffix: the first dot is where the suffix starts
        first_dot = host.find(".")
        return first_dot > 0 and host[first_dot:] == suffix
    return pattern == host


def mx_pattern_matches(pattern: str, host: str) -> bool:
    """Whether the MX host name ``host`` is allowed by the policy ``mx`` pattern ``pattern``."""
    normal_host = normalize_host(host)
    normal_pattern = normalize_pattern(pattern)
    if normal_host is None or normal_pattern is None:
        return False
    return matches_normalized(normal_pattern, normal_host)


def matching_pattern(patterns: Iterable[str], host: str) -> str | None:
    """The first pattern (as written) that allows ``host``, or ``None``."""
    normal_host = normalize_host(host)
    if normal_host is None:
        return None
    for pattern in patterns:
        normal_pattern = normalize_pattern(pattern)
        if normal_pattern is not None and matches_normalized(normal_pattern, normal_host):
            return pattern
    return None
