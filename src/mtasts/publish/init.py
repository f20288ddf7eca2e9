"""A starting ``[[domain]]`` entry from what is live, for ``mtasts publish init`` (pure).

The command gathers the facts through the inspector (the MX hosts in preference order, the
``_smtp._tls`` record, any policy already live, and the findings that would block ``enforce``:
the inspector's analysis as if this policy were enforced now); this module turns them into the
TOML text of one entry, and appends it to an existing configuration only when the result still
loads with :func:`~mtasts.publish.config.parse_config` and names the domain once.

Choices, each written into the entry so the operator sees it:

- ``mx`` lists the live MX host names exactly. A ``*.`` pattern is only *suggested*, as a
  comment, when several MX hosts share a parent (RFC 8461 §4.1: a wildcard matches one label,
  so it also admits every other name one label below that parent); widening the policy is the
  operator's decision, not a default.
- ``mode = "testing"`` and ``max_age = 86400``: a day, so a mistake found while testing is gone
  from senders' caches within a day (a live ``enforce`` policy is named in a comment: this entry
  would step it back to testing).
- ``rua`` comes from a valid ``_smtp._tls`` record; without one the entry says so, because the
  ``testing → enforce`` guard waits for reports that then never come.
- Findings that would block ``enforce`` are listed with code and fix, as comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mtasts.core.findings import Finding
from mtasts.core.policy import Mode, Policy
from mtasts.publish.config import ConfigError, parse_config

__all__ = [
    "INIT_MAX_AGE",
    "InitError",
    "InitFacts",
    "LivePolicy",
    "append_entry",
    "entry_text",
    "initial_policy",
    "shared_parents",
]

INIT_MAX_AGE = 86400  # a day while testing: a mistake leaves senders' caches within a day
_COMMENT_MAX = 300  # characters of one finding's text in a comment (the rest is cut)


class InitError(ValueError):
    """The entry cannot be written (the domain is configured already, or the result would not
    load); the message says what to do, in one line."""


@dataclass(frozen=True, slots=True)
class LivePolicy:
    """A policy a sender sees today (record and body both valid)."""

    policy_id: str
    mode: Mode
    max_age: int


@dataclass(frozen=True, slots=True)
class InitFacts:
    """What ``init`` learned about ``domain`` (A-labels): its MX hosts in preference order, the
    ``rua`` of a valid ``_smtp._tls`` record (``tlsrpt_note`` says why there is none), a live
    policy if any, the findings that would block ``enforce``, and the certificate files to
    name (absolute paths) when the operator gave them."""

    domain: str
    mx_hosts: tuple[str, ...]
    rua: tuple[str, ...] = ()
    tlsrpt_note: str = ""
    live: LivePolicy | None = None
    blocking: tuple[Finding, ...] = ()
    cert: Path | None = None
    key: Path | None = None


def initial_policy(facts: InitFacts) -> Policy:
    """The policy the entry describes: testing, a day, the live MX hosts."""
    return Policy(mode=Mode.TESTING, max_age=INIT_MAX_AGE, mx=tuple(dict.fromkeys(facts.mx_hosts)))


def shared_parents(hosts: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Parents shared by at least two of ``hosts`` (``mx1.example.com`` and ``mx2.example.com``
    share ``example.com``), with the hosts under each; a parent that is a single label (a TLD)
    is never offered: ``*.com`` is no policy."""
    groups: dict[str, list[str]] = {}
    for host in dict.fromkeys(hosts):
        _, _, parent = host.partition(".")
        if "." in parent:
            groups.setdefault(parent, []).append(host)
    return {parent: tuple(members) for parent, members in groups.items() if len(members) > 1}


def _toml_string(text: str) -> str:
    """A TOML basic string (``"..."``) holding ``text`` exactly."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """``text`` made safe for one TOML comment line (no control characters: what the network
    said may hold anything), cut to a bounded length."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return clean if len(clean) <= _COMMENT_MAX else clean[: _COMMENT_MAX - 1] + "…"


def _array(values: Sequence[str]) -> str:
    if len(values) <= 2:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"
    return "[\n" + "".join(f"    {_toml_string(v)},\n" for v in values) + "]"


def entry_text(facts: InitFacts, *, now: datetime) -> str:
    """The ``[[domain]]`` entry, with comments, ending in a newline."""
    if not facts.mx_hosts:
        raise InitError(f"{facts.domain} has no MX hosts: MTA-STS protects delivery to MX hosts; publish MX first")
    policy = initial_policy(facts)
    name = facts.domain
    lines = [
        f"# {name}: started by mtasts publish init on {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC from live DNS",
        "[[domain]]",
        f"name = {_toml_string(name)}",
        f'mode = "{policy.mode.value}"',
        f"mx = {_array(policy.mx)}",
    ]
    for parent, members in shared_parents(policy.mx).items():
        lines.append(
            f"# {' and '.join(members) if len(members) == 2 else ', '.join(members)} share {parent}: "
            f'"*.{parent}" would match them, and every other name one label below {parent}'
        )
    lines.append(f"max_age = {policy.max_age}")
    if facts.rua:
        lines.append(f"rua = {_array(facts.rua)}")
    else:
        why = _comment(facts.tlsrpt_note or f"no _smtp._tls.{name} record")
        lines.append(
            f"# {why}: no TLS reports will come, and enforce waits for them; publish "
            f'_smtp._tls.{name} TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{name}" and add rua here'
        )
    if facts.cert is not None and facts.key is not None:
        lines.append(f"cert = {_toml_string(str(facts.cert))}")
        lines.append(f"key = {_toml_string(str(facts.key))}")
    else:
        lines.append(
            f"# cert = and key = : the PEM chain and key for mta-sts.{name}, or an [acme] section "
            "(without either the host does not serve it)"
        )
    if facts.live is not None:
        live = facts.live
        lines.append(
            f"# live now: mode {live.mode.value}, max_age {live.max_age} (id {_comment(live.policy_id)})"
            + (
                f': this entry steps it back to testing; write mode = "{live.mode.value}" to keep it'
                if live.mode is Mode.ENFORCE
                else ""
            )
        )
    if facts.blocking:
        count = len(facts.blocking)
        lines.append(f"# would block enforce now ({count}, the inspector as if this policy were enforced):")
        for finding in facts.blocking:  # the message names the host and address itself
            lines.append(f"#   {finding.code}: {_comment(finding.message)}")
            lines.append(f"#     fix: {_comment(finding.fix)}")
    else:
        lines.append("# nothing found now that would block enforce (the inspector, as if this policy were enforced)")
    return "\n".join(lines) + "\n"


def append_entry(existing: str | None, entry: str, path: Path | str, domain: str) -> str:
    """``existing`` (``None``: no file yet) with ``entry`` appended. Raises :class:`InitError`
    when ``domain`` is configured already, and lets :class:`ConfigError` through when the
    existing text does not load (the operator fixes it first); the result is parsed again and
    must configure ``domain`` with the entry's values."""
    before = parse_config(existing, path) if existing else None
    if before is not None and (found := before.domain(domain)) is not None:
        where = f" (line {found.line})" if found.line else ""
        raise InitError(f"{found.name} is configured already in {path}{where}: edit that entry instead")
    text = existing or ""
    if text and not text.endswith("\n"):
        text += "\n"
    combined = text + ("\n" if text else "") + entry
    try:
        after = parse_config(combined, path)
    except ConfigError as exc:  # a bug of this module: never write a file that would not load
        raise InitError(f"the new entry would not load: {exc.problems[0].to_text()}") from None
    if after.domain(domain) is None or len(after.domains) != (len(before.domains) if before else 0) + 1:
        raise InitError(f"the new entry would not configure {domain}")
    return combined
