"""The tag=value grammar shared by ``_mta-sts`` (RFC 8461 §3.1) and ``_smtp._tls`` (RFC 8460 §3)
TXT records: a version literal, then fields separated by ``*WSP ";" *WSP``, one optional
trailing delimiter, and extensions ``ext-name "=" ext-value``.

This module only splits a record into fields and checks the shared grammar; what the known
fields mean is up to the record modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mtasts.core.problems import Problem

# sts-ext-name / tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
EXT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
# sts-ext-value / tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): visible ASCII but ";" and "="
EXT_VALUE_RE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
WSP = " \t"


@dataclass(frozen=True, slots=True)
class Field:
    """One ``name=value`` field of a record, with 1-based columns for messages."""

    name: str
    value: str
    column: int
    value_column: int


def split_fields(text: str, version: str, prefix: str, what: str) -> tuple[list[Field], list[Problem]]:
    """Split ``text`` into fields after checking the version literal and the delimiters.

    ``prefix`` starts every problem code (``record``, ``tlsrpt``); ``what`` names the record in
    messages. Returns the fields that could be read and the problems found.
    """
    problems: list[Problem] = []
    if not text.isascii():
        index = next(i for i, c in enumerate(text) if not c.isascii())
        problems.append(
            Problem(
                f"{prefix}.charset",
                f"{what} contains the non-ASCII character {text[index]!r}; TXT records must be US-ASCII",
                "Remove the character or replace it with ASCII.",
                1,
                index + 1,
            )
        )
        return [], problems
    version_problem = _check_version(text, version, prefix, what)
    if version_problem is not None:
        return [], [version_problem]

    rest = text[len(version) :]
    if not rest:
        return [], problems
    segments = rest.split(";")
    if segments[0].strip(WSP):
        lead = len(segments[0]) - len(segments[0].lstrip(WSP))
        problems.append(
            Problem(
                f"{prefix}.delimiter",
                f"expected ';' after {version!r} but found {segments[0].strip(WSP)[:20]!r}",
                f"Separate the fields with ';', as in '{version}; ...'.",
                1,
                len(version) + lead + 1,
            )
        )
        return [], problems

    fields: list[Field] = []
    pos = len(version) + len(segments[0]) + 1  # 0-based index just after the first ';'
    last_index = len(segments) - 1
    for index in range(1, len(segments)):
        segment = segments[index]
        body = segment.strip(WSP)
        start = pos + len(segment) - len(segment.lstrip(WSP))
        if not body:
            if index != last_index:
                problems.append(
                    Problem(
                        f"{prefix}.field.empty",
                        "empty field between two ';'",
                        "Remove the extra ';' (one trailing ';' is allowed, not more).",
                        1,
                        pos + 1,
                    )
                )
        else:
            if index == last_index and segment != segment.rstrip(WSP):
                problems.append(
                    Problem(
                        f"{prefix}.trailing_space",
                        f"{what} ends with white space",
                        "Remove the white space at the end (or end the record with ';').",
                        1,
                        pos + len(segment.rstrip(WSP)) + 1,
                    )
                )
            name, equals, value = body.partition("=")
            if not equals:
                problems.append(
                    Problem(
                        f"{prefix}.field.syntax",
                        f"the field {body[:30]!r} has no '='",
                        "Write every field as name=value.",
                        1,
                        start + 1,
                    )
                )
            else:
                fields.append(Field(name, value, start + 1, start + len(name) + 2))
        pos += len(segment) + 1
    return fields, problems


def check_extension(field: Field, prefix: str) -> Problem | None:
    """Why ``field`` is not a valid extension (``ext-name "=" ext-value``), or ``None``."""
    if not EXT_NAME_RE.fullmatch(field.name):
        return Problem(
            f"{prefix}.extension.name",
            f"{field.name[:40]!r} is not a valid field name",
            "Field names are 1-32 letters, digits, '_', '-' or '.', beginning with a letter or digit.",
            1,
            field.column,
        )
    if not EXT_VALUE_RE.fullmatch(field.value):
        bad = next((i for i, c in enumerate(field.value) if not EXT_VALUE_RE.fullmatch(c)), 0)
        detail = "is empty" if not field.value else f"contains {field.value[bad]!r}"
        return Problem(
            f"{prefix}.extension.value",
            f"the value of {field.name!r} {detail}",
            "Values are visible ASCII characters other than ';' and '=' (no spaces).",
            1,
            field.value_column + bad,
        )
    return None


def _check_version(text: str, version: str, prefix: str, what: str) -> Problem | None:
    fix = f"Begin the record with exactly {version!r}."
    code = f"{prefix}.version"
    if text.startswith(version) and (len(text) == len(version) or text[len(version)] in ";" + WSP):
        return None
    if not text.strip(WSP):
        return Problem(f"{prefix}.empty", f"{what} is empty", fix, 1, 1)
    if text[0] in WSP:
        return Problem(code, f"{what} begins with white space", fix + " Remove the leading space.", 1, 1)
    if text[0] == '"':
        return Problem(
            code,
            f"{what} begins with a quote character",
            "The quotes are zone-file syntax, not part of the record: publish the text without them.",
            1,
            1,
        )
    head = re.split(r"[;\s]", text, maxsplit=1)[0]
    if head.lower() == version.lower():
        return Problem(code, f"{head!r} must be written {version!r} (the version is case-sensitive)", fix, 1, 1)
    return Problem(code, f"{what} does not begin with {version!r} (found {head[:20]!r})", fix, 1, 1)


TxtRecord = str | bytes | Sequence[str | bytes]
"""One TXT record as it comes from DNS: one string, or its character-strings in order."""


def join_txt(record: TxtRecord) -> str:
    """Concatenate a TXT record's character-strings without adding spaces (RFC 8461 §3.1).

    Bytes are mapped one to one onto characters (latin-1) so that nothing is lost; the record
    parser then rejects anything that is not ASCII.
    """
    if isinstance(record, str):
        return record
    if isinstance(record, bytes | bytearray):
        return bytes(record).decode("latin-1")
    return "".join(s if isinstance(s, str) else bytes(s).decode("latin-1") for s in record)


def select_candidates(rrset: Iterable[TxtRecord], version: str) -> list[str]:
    """The records of an RRset that begin with ``version`` followed by ``*WSP ";"``.

    RFC 8461 §3.1 (and RFC 8460 §3) discard records that do not begin with ``v=STSv1;``; the ABNF
    allows white space before that ';' (errata 6285), so ``v=STSv1 ;`` counts too.
    """
    pattern = _candidate_pattern(version)
    return [text for text in map(join_txt, rrset) if pattern.match(text)]


def _candidate_pattern(version: str) -> re.Pattern[str]:
    cached = _CANDIDATE_PATTERNS.get(version)
    if cached is None:
        cached = _CANDIDATE_PATTERNS[version] = re.compile(re.escape(version) + r"[ \t]*;")
    return cached


_CANDIDATE_PATTERNS: dict[str, re.Pattern[str]] = {}
