"""Problems and parse errors: what is wrong with an input, where, and how to fix it.

Every parser in :mod:`mtasts.core` reports problems as data (:class:`Problem`), so the CLI, the
JSON output and the web UI render exactly the same thing. A parser that cannot return a value
raises :class:`ParseError`, which carries all the problems it found, the first error first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "MultipleRecordsError",
    "NoRecordError",
    "ParseError",
    "PolicyParseError",
    "Problem",
    "RecordParseError",
    "Severity",
    "TlsRptRecordParseError",
    "has_errors",
    "ignored_repeat",
]


class Severity(StrEnum):
    """How much a problem matters: errors make the input unusable, warnings do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input.

    ``code`` is stable (scripts match on it); ``message`` says what is wrong in plain words and
    ``fix`` what to do about it. ``line`` and ``column`` are 1-based and ``None`` when the
    problem has no single place (a missing field, say).
    """

    code: str
    message: str
    fix: str
    line: int | None = None
    column: int | None = None
    severity: Severity = Severity.ERROR

    @property
    def location(self) -> str:
        """``line L, column C`` (or the part that is known), empty when there is no place."""
        if self.line is None:
            return "" if self.column is None else f"column {self.column}"
        if self.column is None:
            return f"line {self.line}"
        return f"line {self.line}, column {self.column}"

    def to_dict(self) -> dict[str, str | int | None]:
        """The JSON shape of a problem; keys are a public contract."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
            "line": self.line,
            "column": self.column,
        }


class ParseError(ValueError):
    """The input is not valid: ``code``, ``message``, ``line``, ``column`` and ``fix`` describe
    the first error; ``problems`` holds every problem found (errors and warnings)."""

    problems: tuple[Problem, ...]

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        found = (problems,) if isinstance(problems, Problem) else tuple(problems)
        errors = [p for p in found if p.severity is Severity.ERROR]
        if not errors:
            raise TypeError("ParseError needs at least one problem of severity 'error'")
        self.problems = found
        first = errors[0]
        self.code = first.code
        self.message = first.message
        self.fix = first.fix
        self.line = first.line
        self.column = first.column
        super().__init__(self.__str__())

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems of severity ``error``, in input order."""
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    def __str__(self) -> str:
        where = Problem(self.code, self.message, self.fix, self.line, self.column).location
        return f"{where}: {self.message} [{self.code}]" if where else f"{self.message} [{self.code}]"


class RecordParseError(ParseError):
    """An ``_mta-sts`` TXT record or RRset does not announce a usable policy."""


class NoRecordError(RecordParseError):
    """The RRset holds no record that begins with ``v=STSv1;`` (code ``rrset.none``)."""


class MultipleRecordsError(RecordParseError):
    """The RRset holds several records that begin with ``v=STSv1;`` (code ``rrset.multiple``)."""


class PolicyParseError(ParseError):
    """A policy file is not valid."""


class TlsRptRecordParseError(ParseError):
    """An ``_smtp._tls`` TXT record is not valid."""


def has_errors(problems: Sequence[Problem]) -> bool:
    """True when ``problems`` holds at least one error."""
    return any(p.severity is Severity.ERROR for p in problems)


def ignored_repeat(problem: Problem, *, owner: bool) -> Problem:
    """``problem`` found on a later repeat of a field that may appear once.

    RFC 8461 §3.2: "all entries except for the first SHALL be ignored", whatever they hold, so a
    sender (``owner=False``: the ``parse_*`` functions) keeps the first value and only warns; a
    stricter reading would turn a valid policy into "no policy", a downgrade. The domain owner's
    lint (``owner=True``: the ``lint_*`` functions) still calls the malformed line an error,
    because the file is broken and its owner should fix it.
    """
    return replace(
        problem,
        message=f"{problem.message} (a repeat: senders ignore it and use the first value, RFC 8461 §3.2)",
        severity=Severity.ERROR if owner else Severity.WARNING,
    )
