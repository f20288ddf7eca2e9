"""The ``_mta-sts`` TXT record (RFC 8461 §3.1): ``v=STSv1; id=<1-32 alphanumerics>``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mtasts.core._tagvalue import (
    EXT_NAME_RE,
    EXT_VALUE_RE,
    Field,
    TxtRecord,
    check_extension,
    select_candidates,
    split_fields,
)
from mtasts.core.problems import (
    MultipleRecordsError,
    NoRecordError,
    Problem,
    RecordParseError,
    Severity,
    has_errors,
    ignored_repeat,
)

__all__ = ["STS_VERSION", "StsRecord", "lint_sts_record", "parse_sts_record", "select_sts_record"]

STS_VERSION = "v=STSv1"
# sts-id = %s"id=" 1*32(ALPHA / DIGIT)
ID_RE = re.compile(r"[A-Za-z0-9]{1,32}")
_WHAT = "the _mta-sts record"


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A valid ``_mta-sts`` record. ``id`` is opaque and compared case-sensitively."""

    id: str
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not ID_RE.fullmatch(self.id):
            raise RecordParseError(_bad_id(self.id, None))
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))
        for name, value in self.extensions.items():
            if name in ("v", "id") or not _ext_ok(name, value):
                raise RecordParseError(
                    Problem("record.extension.name", f"invalid extension {name}={value}", "Use a valid name=value.")
                )

    def __hash__(self) -> int:
        return hash((self.id, tuple(self.extensions.items())))

    def to_text(self) -> str:
        """The record as it is published: ``v=STSv1; id=...`` and any extensions."""
        parts = [STS_VERSION, f"id={self.id}"]
        parts.extend(f"{name}={value}" for name, value in self.extensions.items())
        return "; ".join(parts)


def lint_sts_record(text: str) -> tuple[StsRecord | None, tuple[Problem, ...]]:
    """Parse one record and report every problem found; the record is ``None`` on error.

    Stricter than :func:`parse_sts_record` in one way, for the domain owner: a malformed repeat
    of a field is an error here, while senders ignore repeats (the first value wins).
    """
    return _lint(text, owner=True)


def _lint(text: str, *, owner: bool) -> tuple[StsRecord | None, tuple[Problem, ...]]:
    fields, problems = split_fields(text, STS_VERSION, "record", _WHAT)
    record_id: str | None = None
    extensions: dict[str, str] = {}
    for item in fields:
        if item.name == "id":
            if not ID_RE.fullmatch(item.value):
                bad = _bad_id(item.value, item.value_column)
                problems.append(bad if record_id is None else ignored_repeat(bad, owner=owner))
            elif record_id is None:
                record_id = item.value
            else:
                problems.append(_duplicate(item))
            continue
        problem = check_extension(item, "record")
        if problem is not None:
            repeat = item.name == "v" or item.name in extensions
            problems.append(ignored_repeat(problem, owner=owner) if repeat else problem)
        elif item.name == "v" or item.name in extensions:
            problems.append(_duplicate(item))
        else:
            extensions[item.name] = item.value
    if record_id is None and not has_errors(problems):
        problems.append(
            Problem(
                "record.id.missing",
                f"{_WHAT} has no id field",
                "Add an id, e.g. 'v=STSv1; id=20261129T081500', and change it whenever the policy changes.",
            )
        )
    if has_errors(problems) or record_id is None:
        return None, tuple(problems)
    return StsRecord(record_id, extensions), tuple(problems)


def parse_sts_record(text: str) -> StsRecord:
    """Parse one ``_mta-sts`` TXT record (its character-strings already joined).

    Raises :class:`~mtasts.ParseError` (a :class:`~mtasts.core.problems.RecordParseError`).
    """
    record, problems = _lint(text, owner=False)
    if record is None:
        raise RecordParseError(problems)
    return record


def select_sts_record(rrset: Iterable[TxtRecord]) -> StsRecord:
    """The policy record of a whole ``_mta-sts`` TXT RRset (RFC 8461 §3.1).

    Each record is a string or a sequence of character-strings (joined without spaces). Records
    not beginning with ``v=STSv1;`` are discarded; not exactly one left means no policy:
    ``rrset.none`` (:class:`NoRecordError`), ``rrset.multiple`` (:class:`MultipleRecordsError`),
    else the syntax error of the one record (code ``record.*``).
    """
    candidates = select_candidates(rrset, STS_VERSION)
    if not candidates:
        raise NoRecordError(
            Problem(
                "rrset.none",
                "no TXT record beginning with 'v=STSv1;' was found",
                "Publish one TXT record 'v=STSv1; id=<id>' at _mta-sts.<domain>.",
            )
        )
    if len(candidates) > 1:
        raise MultipleRecordsError(
            Problem(
                "rrset.multiple",
                f"{len(candidates)} TXT records begin with 'v=STSv1;'; senders then assume there is no policy",
                "Keep exactly one 'v=STSv1' record at _mta-sts.<domain> and delete the others.",
            )
        )
    return parse_sts_record(candidates[0])


def _bad_id(value: str, column: int | None) -> Problem:
    if not value:
        detail = "the id is empty"
    elif len(value) > 32:
        detail = f"the id is {len(value)} characters long (at most 32)"
    else:
        bad = next(c for c in value if not c.isascii() or not c.isalnum())
        detail = f"the id {value[:40]!r} contains {bad!r}; only letters and digits are allowed"
    return Problem(
        "record.id.syntax",
        detail,
        "Use 1-32 letters and digits, e.g. a UTC time stamp such as 20261129T081500.",
        None if column is None else 1,
        column,
    )


def _duplicate(item: Field) -> Problem:
    return Problem(
        "record.field.duplicate",
        f"the field {item.name!r} appears again; the first one is used",
        "Remove the repeated field.",
        1,
        item.column,
        Severity.WARNING,
    )


def _ext_ok(name: str, value: str) -> bool:
    return bool(EXT_NAME_RE.fullmatch(name) and EXT_VALUE_RE.fullmatch(value))
