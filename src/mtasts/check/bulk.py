"""Planning a bulk check: which lines are domains, which of them this run checks, and what the
run has produced so far. No processes and no network here (:mod:`mtasts.check.workers` does
that); what is read is read from a stream the caller opened, one line at a time, so a list of
a million domains is never held whole.

* **Decoding** (:func:`decoded_lines`): UTF-8, or UTF-16 / UTF-8 with a byte-order mark; any
  other byte is refused with its line number rather than guessed.
* **Shards** (:class:`Shard`): ``--shard I/N`` keeps the domains whose normalised name hashes
  to ``I`` modulo ``N``. The hash is BLAKE2b of the UTF-8 name, not :func:`hash` (salted per
  process): every machine and every Python version puts a domain in the same shard, so N
  machines split one list without talking to each other.
* **Resuming** (:func:`resume_point`): the domains an output file already holds, and how many
  of its bytes to keep: a torn last line (the run was killed while writing it) is dropped and
  checked again.
* **Tallies** (:class:`Tally`): what the progress display and the exit status need, from the
  small :class:`Outcome` each checked domain leaves (the rendered line travels with it).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, NamedTuple

from mtasts.check.domainlist import domain_key, domain_text
from mtasts.core.problems import Severity

__all__ = [
    "InputError",
    "Outcome",
    "RecordFormat",
    "ResumePoint",
    "Shard",
    "Tally",
    "count_domain_lines",
    "decoded_lines",
    "estimate_total",
    "progress_text",
    "resume_point",
    "shard_number",
]

RecordFormat = Literal["jsonl", "csv"]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CHUNK = 1 << 16


class InputError(ValueError):
    """An input (domain list, output file to resume) that cannot be used, said for a person."""


# --- reading the list -------------------------------------------------------------------------


def decoded_lines(stream: BinaryIO, where: str) -> Iterator[str]:
    """The lines of a domain list, decoded as they are read: UTF-16 or UTF-8 when it starts with
    their byte-order mark (Windows editors write one), else UTF-8. :class:`InputError` names the
    first byte that is not, with its line: a Latin-1 byte in a domain name has no meaning, and a
    guess would check domains nobody listed."""
    head = stream.read(4)
    if head.startswith(codecs.BOM_UTF8):
        yield from _utf8_lines(head[len(codecs.BOM_UTF8) :], stream, where)
    elif head.startswith(_UTF16_BOMS):
        yield from _utf16_lines(head, stream, where)
    else:
        yield from _utf8_lines(head, stream, where)


def _utf8_lines(head: bytes, stream: BinaryIO, where: str) -> Iterator[str]:
    number = 1  # of the line that starts the next chunk
    first = head if head.endswith(b"\n") or not head else head + stream.readline()
    for chunk in _chain(first, stream):
        pieces = chunk.split(b"\n")
        for offset, raw in enumerate(pieces):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{where} is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {number + offset}): save it as "
                    "UTF-8 (or UTF-16 with a byte-order mark)"
                ) from None
            yield from text.splitlines()
        number += len(pieces) - 1


def _chain(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    if first:
        yield first
    yield from iter(stream.readline, b"")


def _utf16_lines(head: bytes, stream: BinaryIO, where: str) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-16")(errors="strict")
    pending = ""
    chunk = head
    try:
        while chunk:
            *lines, pending = (pending + decoder.decode(chunk)).split("\n")
            for line in lines:
                yield from line.splitlines()
            chunk = stream.read(_CHUNK)
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where} starts with a utf-16 byte-order mark but is not valid utf-16: {exc.reason}"
        ) from None
    yield from pending.splitlines()


def count_domain_lines(lines: Iterable[str]) -> int:
    """How many lines name a domain (not blank, not only a comment): the size of the run before
    repeats are removed, for the progress display's estimate."""
    return sum(1 for line in lines if domain_text(line))


# --- shards -----------------------------------------------------------------------------------


def shard_number(key: str, count: int) -> int:
    """The shard (1 to ``count``) of a normalised domain name: the first 8 bytes of its BLAKE2b
    digest, big-endian, modulo ``count``. Stable across processes, machines and Python versions."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


@dataclass(frozen=True, slots=True)
class Shard:
    """``--shard INDEX/COUNT``: this run's slice of the list (1-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"{self.index}/{self.count}: I/N needs 1 ≤ I ≤ N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, slash, count = text.strip().partition("/")
        if not slash or not index.isdigit() or not count.isdigit():
            raise ValueError(f"{text!r} is not I/N (for example 2/8: the second of eight slices)")
        return cls(int(index), int(count))

    def selects(self, key: str) -> bool:
        return self.count == 1 or shard_number(key, self.count) == self.index

    def to_text(self) -> str:
        return f"{self.index}/{self.count}"


# --- resuming ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ResumePoint:
    """What an earlier run left in its output file: the domains it holds in full, and how many
    bytes of the file to keep (everything after is a torn record and is rewritten)."""

    done: set[str] = field(default_factory=set)
    keep: int = 0
    has_header: bool = False
    resumed: int = 0  # len(done), for when the caller has moved ``done`` elsewhere
    read: bool = False  # there was a file to resume (else: nothing to keep)


def resume_point(stream: BinaryIO, fmt: RecordFormat, where: str, csv_header: str) -> ResumePoint:
    """Read an output file written by ``mtasts check --output`` (JSONL or CSV), in any order.

    JSONL: one domain per line; a last line without its newline is torn. CSV: the header, then
    the rows of one domain together (one per finding); the rows of the *last* domain are
    dropped too, since a run killed between two of them leaves the domain incomplete and its
    rows cannot say so (it is checked again: at most one domain twice). A complete record that
    is not one of ours is an :class:`InputError`: appending to someone else's file would mix
    two things in it."""
    point = _resume_jsonl(stream, where) if fmt == "jsonl" else _resume_csv(stream, where, csv_header)
    point.read = True
    point.resumed = len(point.done)
    return point


def _resume_jsonl(stream: BinaryIO, where: str) -> ResumePoint:
    point = ResumePoint()
    for number, raw in enumerate(iter(stream.readline, b""), start=1):
        if not raw.endswith(b"\n"):
            break  # torn by an interruption: dropped, the domain is checked again
        if raw.strip():
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            domain = record.get("domain") if isinstance(record, dict) else None
            if not isinstance(domain, str):
                raise InputError(f"line {number} of {where} is not a result of mtasts check: cannot resume into it")
            point.done.add(domain_key(domain))
        point.keep += len(raw)
    return point


def _resume_csv(stream: BinaryIO, where: str, csv_header: str) -> ResumePoint:
    point = ResumePoint()
    offset = 0
    current: str | None = None  # the domain of the rows read last, not yet known complete
    record = b""
    number = 0
    for raw in iter(stream.readline, b""):
        record += raw
        number += 1
        if not raw.endswith(b"\n") or record.count(b'"') % 2:
            continue  # a quoted field goes on (or the file ends in the middle of a record)
        text = record.decode("utf-8", "replace")
        start, offset, record = offset, offset + len(record), b""
        if not point.has_header:
            if text.rstrip("\r\n") != csv_header:
                raise InputError(f"{where} does not start with the CSV header of mtasts check: cannot resume into it")
            point.has_header = True
            point.keep = offset
            continue
        row = next(csv.reader([text]), [])
        if not row or not row[0]:
            raise InputError(f"line {number} of {where} is not a result of mtasts check: cannot resume into it")
        key = domain_key(row[0])
        if key != current:
            if current is not None:
                point.done.add(current)
                point.keep = start
            current = key
    return point


# --- outcomes ---------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """One checked domain as the writer needs it: ``record`` is its text for the output file
    (a JSON line or CSV rows, newline included), ``shown`` what stdout gets (a rendered
    report, or the JSON line for ``--json``), ``seq`` its place in the input; the rest feeds
    the tally. A named tuple: it crosses a pipe per domain, and unpickles several times faster
    than a frozen dataclass."""

    seq: int
    domain: str
    record: str
    shown: str
    worst: Severity | None
    local: bool
    errors: tuple[str, ...]


@dataclass(slots=True)
class Tally:
    """Counts over the domains of this run, as they complete."""

    done: int = 0
    local: int = 0
    worst: Counter[Severity | None] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.done += 1
        self.local += outcome.local
        self.worst[outcome.worst] += 1
        self.errors.update(outcome.errors)

    @property
    def all_local(self) -> bool:
        """Every domain ended in local trouble (our resolver, port 25): the run could not check."""
        return self.done > 0 and self.local == self.done

    def severities(self) -> Iterator[Severity | None]:
        """The worst severity of every domain, for ``exit_for`` (one of each kind is enough)."""
        return (severity for severity, count in self.worst.items() if count)

    def errors_text(self, kinds: int = 3) -> str:
        """The commonest error codes so far, "domain-nxdomain 812, mx-unreachable 3 (+2 more kinds)"."""
        common = self.errors.most_common()
        text = ", ".join(f"{code} {count}" for code, count in common[:kinds])
        if len(common) > kinds:
            text += f" (+{len(common) - kinds} more kinds)"
        return text


def estimate_total(lines: int | None, lines_read: int, dispatched: int) -> int | None:
    """The number of domains this run will check, for the ETA: those sent so far plus the
    unread lines at the rate read lines have turned into checks (repeats, other shards and
    resumed domains are not checked). ``None`` when the input's size is unknown (a pipe)."""
    if lines is None:
        return None
    if lines_read == 0:
        return lines
    remaining = max(0, lines - lines_read)
    return dispatched + round(remaining * dispatched / lines_read)


def progress_text(done: int, total: int | None, elapsed: float, errors: str) -> str:
    """The progress line's figures: "812/2,000 domains · 95/s · 0:00:12 left · errors: ...";
    without a total (a pipe) only what is done and how fast."""
    rate = done / elapsed if elapsed > 0 else 0.0
    parts = [f"{done:,}/{total:,} domains" if total is not None else f"{done:,} domains"]
    parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:,.1f}/s")
    if total is not None and rate > 0:
        left = max(0, round((total - done) / rate))
        parts.append(f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left")
    if errors:
        parts.append(f"errors: {errors}")
    return " · ".join(parts)
