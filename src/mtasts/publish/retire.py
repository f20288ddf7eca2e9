"""The configuration edits of ``mtasts publish retire`` (pure: text in, text out).

The policy host serves the configuration as written, so retiring a domain is two edits of its
``[[domain]]`` entry, made by the command rather than asked of the operator, each between the
roll-out steps that need it:

1. :func:`retire_config_text`: ``mode = "none"`` and the short ``max_age`` of
   :func:`~mtasts.publish.rollout.retire_entry`, on the entry's own ``mode`` and ``max_age``
   lines (comments, order and every other entry untouched);
2. :func:`remove_config_text`, once no sender can hold an earlier policy and the ``_mta-sts``
   record is gone: the entry commented out, under a line saying when and why, so the file keeps
   a trace and the host stops serving the name at its next reload.

Both parse the result again and accept it only when it configures exactly what was meant (the
same server, ACME and DNS settings, every other domain unchanged, this one changed as asked or
gone); anything else (a key written in a form the line edit does not know, such as a quoted
key or an inline table) is a :class:`RetireEditError` telling the operator which two lines to
change by hand.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mtasts.publish.config import Config, ConfigError, DomainConfig, parse_config
from mtasts.publish.rollout import Rules, retire_entry

__all__ = ["RetireEditError", "remove_config_text", "retire_config_text"]

_HEADER_RE = re.compile(r"^\s*\[")
ENTRY_VALUE_RE = {
    "mode": re.compile(r"^(?P<key>\s*mode\s*=\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*')(?P<rest>.*)$", re.DOTALL),
    "max_age": re.compile(r"^(?P<key>\s*max_age\s*=\s*)(?P<value>[0-9_+]+)(?P<rest>.*)$", re.DOTALL),
}


class RetireEditError(ValueError):
    """The configuration cannot be edited safely; the message says what to change by hand."""


def config_entry(config: Config, domain: str) -> DomainConfig:
    entry = config.domain(domain)
    if entry is None:
        raise RetireEditError(f"{domain} is not in {config.path}")
    if entry.line is None:
        raise RetireEditError(f"{domain}: its entry in {config.path} cannot be located; edit it by hand")
    return entry


def entry_block(lines: list[str], header: int) -> tuple[int, int]:
    """The entry's lines, 0-based ``[start, end)``: from its header to its last line that is
    not blank or a comment before the next table header (comments there may be the next
    entry's)."""
    start = header - 1
    end = start + 1
    last = start
    while end < len(lines) and not _HEADER_RE.match(lines[end]):
        stripped = lines[end].strip()
        if stripped and not stripped.startswith("#"):
            last = end
        end += 1
    return start, last + 1


def same_except(before: Config, after: Config, domain: str, wanted: DomainConfig | None) -> bool:
    """``after`` is ``before`` with ``domain`` replaced by ``wanted`` (``None``: removed);
    lines may move, nothing else."""

    def plain(entries: tuple[DomainConfig, ...]) -> list[DomainConfig]:
        return [replace(d, line=None) for d in entries]

    expected = [
        replace(wanted, line=None) if d.name == domain and wanted is not None else replace(d, line=None)
        for d in before.domains
        if d.name != domain or wanted is not None
    ]
    return plain(after.domains) == expected and (before.server, before.acme, before.dns) == (
        after.server,
        after.acme,
        after.dns,
    )


def retire_config_text(text: str, path: Path | str, domain: str, rules: Rules | None = None) -> str:
    """``text`` with ``domain``'s entry set to ``mode = "none"`` and the retiring ``max_age``
    (unchanged when it says so already)."""
    before = parse_config(text, path)
    entry = config_entry(before, domain)
    wanted = retire_entry(entry, rules or Rules())
    by_hand = (
        f'set mode = "none" and max_age = {wanted.max_age} in the entry of {entry.name} '
        f"at line {entry.line} of {path} by hand, then run retire again"
    )
    if (entry.mode, entry.max_age) == (wanted.mode, wanted.max_age):
        return text
    lines = text.splitlines(keepends=True)
    assert entry.line is not None
    start, end = entry_block(lines, entry.line)
    values = {"mode": f'"{wanted.mode.value}"', "max_age": str(wanted.max_age)}
    for key, pattern in ENTRY_VALUE_RE.items():
        found = [i for i in range(start, end) if pattern.match(lines[i])]
        if len(found) != 1:
            raise RetireEditError(f"cannot find one {key} line: {by_hand}")
        match = pattern.match(lines[found[0]])
        assert match is not None
        lines[found[0]] = match["key"] + values[key] + match["rest"]
    edited = "".join(lines)
    try:
        after = parse_config(edited, path)
    except ConfigError:
        raise RetireEditError(f"the edit would not load: {by_hand}") from None
    if not same_except(before, after, entry.name, wanted):
        raise RetireEditError(f"the edit would change more than the entry's mode and max_age: {by_hand}")
    return edited


def remove_config_text(text: str, path: Path | str, domain: str, *, now: datetime) -> str:
    """``text`` with ``domain``'s entry commented out under a line saying when and why."""
    before = parse_config(text, path)
    entry = config_entry(before, domain)
    lines = text.splitlines(keepends=True)
    assert entry.line is not None
    start, end = entry_block(lines, entry.line)
    if lines and not lines[-1].endswith("\n") and end == len(lines):
        lines[-1] += "\n"
    note = (
        f"# {entry.name}: removed by mtasts publish retire on {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
        "(no sender can hold its policy any more; its _mta-sts record is gone)\n"
    )
    commented = [note, *(f"# {line}" if line.strip() else line for line in lines[start:end])]
    edited = "".join([*lines[:start], *commented, *lines[end:]])
    by_hand = f"comment out or delete the entry of {entry.name} at line {entry.line} of {path} by hand"
    try:
        after = parse_config(edited, path)
    except ConfigError:
        raise RetireEditError(f"the edit would not load: {by_hand}") from None
    if not same_except(before, after, entry.name, None):
        raise RetireEditError(f"the edit would change more than removing {entry.name}: {by_hand}")
    return edited
