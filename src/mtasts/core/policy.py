"""The MTA-STS policy file (RFC 8461 §3.2): parse, validate, serialise, match.

Decisions where the RFC leaves room are in ``docs/conformance.md``; the ones that shape this
module: the first of a repeated non-``mx`` field wins and later ones are ignored whatever they
hold (§3.2; the owner's lint still calls a malformed repeat an error), nothing has a default, field names and the
version and mode values are case-sensitive, lines end in LF or CRLF with at most one final
terminator, and a byte-order mark is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import idna

from mtasts.core._frozen import trusted_constructor
from mtasts.core._tagvalue import EXT_NAME_RE  # sts-policy-ext-name is the record's sts-ext-name
from mtasts.core.hostname import MxPatternIssue, check_mx_pattern
from mtasts.core.mx import normalize_host, normalize_pattern
from mtasts.core.problems import PolicyParseError, Problem, Severity, has_errors, ignored_repeat

__all__ = [
    "MAX_AGE_LIMIT",
    "STS_POLICY_VERSION",
    "Mode",
    "Policy",
    "lint_policy",
    "parse_policy",
]

STS_POLICY_VERSION = "STSv1"
MAX_AGE_LIMIT = 31_557_600  # §3.2: "a maximum value of 31557600" (about one year)
MAX_AGE_DIGITS = 10  # §3.2: sts-policy-max-age-value = 1*10(DIGIT)

# sts-policy-ext-value = sts-policy-vchar *(*WSP sts-policy-vchar), "except CTLs": visible
# ASCII or any non-ASCII character, with spaces inside (HTAB is a CTL, see conformance.md)
_EXT_VALUE_RE = re.compile(r"[\x21-\x7e\x80-\U0010ffff]+(?: +[\x21-\x7e\x80-\U0010ffff]+)*")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_WSP = " \t"
_CONTROL_NAMES = {"\r": "a carriage return (CR) without LF", "\x0b": "a vertical tab", "\x0c": "a form feed"}


class Mode(StrEnum):
    """The policy mode (§5): what a sender does when the MX fails validation."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


_MODES = {m.value: m for m in Mode}
_KNOWN_FIELDS = ("version", "mode", "max_age", "mx")
_NO_EXTENSIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Policy:
    """A valid MTA-STS policy. ``mx`` keeps the patterns as written; matching ignores case.

    The constructor validates like the parser does and raises :class:`PolicyParseError`.
    """

    mode: Mode
    max_age: int
    mx: tuple[str, ...] = ()
    extensions: Mapping[str, str] = field(default_factory=dict)
    version: str = STS_POLICY_VERSION
    _mx_normal: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _validate_values(self.version, self.mode, self.max_age, self.mx, self.extensions)
        if problems:
            raise PolicyParseError(problems)
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "mx", tuple(self.mx))
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))
        object.__setattr__(self, "_mx_normal", _normal_patterns(self.mx))

    @classmethod
    def _trusted(
        cls, mode: Mode, max_age: int, mx: tuple[str, ...], mx_normal: tuple[str, ...], extensions: dict[str, str]
    ) -> Policy:
        """Build from values the parser has already validated and normalised (skips doing it twice)."""
        # most policies have no extensions: they share one empty view (a daemon caches 100,000s)
        view = MappingProxyType(extensions) if extensions else _NO_EXTENSIONS
        return _make_policy(mode, max_age, mx, view, STS_POLICY_VERSION, mx_normal)

    def __hash__(self) -> int:
        return hash((self.version, self.mode, self.max_age, self.mx, tuple(self.extensions.items())))

    def matches(self, host: str) -> bool:
        """Whether the MX host name ``host`` is allowed by one of the ``mx`` patterns (§4.1)."""
        return self.matching_pattern(host) is not None

    def matching_pattern(self, host: str) -> str | None:
        """The first ``mx`` pattern (as written) that allows ``host``, or ``None``."""
        normal_host = normalize_host(host)
        if normal_host is None:
            return None
        # matches_normalized(normal, normal_host) for every pattern, with its work done once: a
        # wildcard pattern matches when it is "*" + the host from its first dot (a host has no "*")
        first_dot = normal_host.find(".")
        as_wildcard = "*" + normal_host[first_dot:] if first_dot > 0 else None
        for written, normal in zip(self.mx, self._mx_normal, strict=True):
            if normal and normal in (normal_host, as_wildcard):
                return written
        return None

    def to_text(self) -> str:
        """The canonical policy file: CRLF line ends, version, mode, mx, max_age, extensions."""
        lines = [f"version: {self.version}", f"mode: {self.mode.value}"]
        lines.extend(f"mx: {pattern}" for pattern in self.mx)
        lines.append(f"max_age: {self.max_age}")
        lines.extend(f"{name}: {value}" for name, value in self.extensions.items())
        return "\r\n".join(lines) + "\r\n"

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a policy (keys are a public contract)."""
        return {
            "version": self.version,
            "mode": self.mode.value,
            "max_age": self.max_age,
            "mx": list(self.mx),
            "extensions": dict(self.extensions),
        }


_make_policy = trusted_constructor(Policy)


def parse_policy(data: str | bytes) -> Policy:
    """Parse a policy file given as text or as the raw UTF-8 bytes of an HTTPS response body.

    Raises :class:`~mtasts.ParseError` (a :class:`PolicyParseError`) listing every problem.
    """
    policy, problems = _lint(data, owner=False)
    if policy is None:
        raise PolicyParseError(problems)
    return policy


def lint_policy(data: str | bytes) -> tuple[Policy | None, tuple[Problem, ...]]:
    """Read a policy and report every problem, warnings included; the policy is ``None`` when
    there is at least one error.

    Stricter than :func:`parse_policy` in one way, for the domain owner: a malformed repeat of
    ``version``, ``mode`` or ``max_age`` is an error here, while senders ignore it (§3.2).
    """
    return _lint(data, owner=True)


def _lint(data: str | bytes, *, owner: bool) -> tuple[Policy | None, tuple[Problem, ...]]:
    if isinstance(data, str):
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, (_encoding_problem(raw, exc.start),)
    else:
        text = data
    return _read(text, owner=owner)


def _read(text: str, *, owner: bool) -> tuple[Policy | None, tuple[Problem, ...]]:
    """One pass over the lines of a policy, collecting values and problems (``owner``: see
    :func:`~mtasts.core.problems.ignored_repeat`)."""
    if not text:
        return None, (Problem("policy.empty", "the policy is empty", _FIX_COMPLETE),)
    problems: list[Problem] = []
    if text[0] == "\ufeff":
        problems.append(
            Problem(
                "policy.bom",
                "the policy begins with a byte-order mark (U+FEFF)",
                "Save the file as UTF-8 without a byte-order mark.",
                1,
                1,
            )
        )
        text = text[1:]
    version: str | None = None
    mode: Mode | None = None
    max_age: int | None = None
    mx: list[str] = []
    mx_normal: list[str] = []  # the comparison form of each pattern in ``mx``
    extensions: dict[str, str] = {}
    invalid: set[str] = set()  # known fields seen with an invalid value
    for number, line in enumerate(_split_lines(text), 1):
        name, colon, rest = line.partition(":")
        value = rest.strip(_WSP)
        if colon:
            if name == "mx":
                if check_mx_pattern(value) is None:
                    mx.append(value)
                    # a valid pattern is ASCII without a trailing dot, so this is normalize_pattern(value)
                    lower = value.lower()
                    mx_normal.append(value if lower == value else lower)  # no second copy when equal
                    continue
            elif name == "mode":
                found = _MODES.get(value)
                if found is not None:
                    if mode is None:
                        mode = found
                    else:
                        problems.append(_duplicate(number, name, value, mode.value))
                    continue
            elif name == "max_age":
                if value.isdigit() and value.isascii() and len(value) <= MAX_AGE_DIGITS:
                    seconds = int(value)
                    if seconds <= MAX_AGE_LIMIT:
                        if max_age is None:
                            max_age = seconds
                        else:
                            problems.append(_duplicate(number, name, value, str(max_age)))
                        continue
            elif name == "version":
                if value == STS_POLICY_VERSION:
                    if version is None:
                        version = value
                    else:
                        problems.append(_duplicate(number, name, value, version))
                    continue
            elif EXT_NAME_RE.fullmatch(name) and _EXT_VALUE_RE.fullmatch(value):
                _extension(problems, extensions, number, name, value)
                continue
        # not a valid field: say why (only runs on invalid input)
        problem = _line_problem(number, line)
        if (
            (name == "version" and version is not None)
            or (name == "mode" and mode is not None)
            or (name == "max_age" and max_age is not None)
        ):
            problems.append(ignored_repeat(problem, owner=owner))  # the first value stands
            continue
        problems.append(problem)
        invalid.add(name)
    if not problems and mode is not None and max_age is not None and version is not None and (mx or mode is Mode.NONE):
        # the common case: a valid policy and nothing to warn about
        return Policy._trusted(mode, max_age, tuple(mx), tuple(mx_normal), extensions), ()
    if version is None and "version" not in invalid:
        problems.append(
            Problem(
                "policy.version.missing",
                "the policy has no 'version' field",
                "Add the line 'version: STSv1' (usually the first line).",
            )
        )
    if mode is None and "mode" not in invalid:
        problems.append(
            Problem(
                "policy.mode.missing",
                "the policy has no 'mode' field",
                "Add 'mode: testing' (while you watch TLS reports) or 'mode: enforce'.",
            )
        )
    if max_age is None and "max_age" not in invalid:
        problems.append(
            Problem(
                "policy.max_age.missing",
                "the policy has no 'max_age' field",
                "Add 'max_age: 604800' (one week) or longer, up to 31557600.",
            )
        )
    if mode in (Mode.ENFORCE, Mode.TESTING) and not mx and "mx" not in invalid:
        problems.append(
            Problem(
                "policy.mx.missing",
                f"mode {mode.value!r} needs at least one 'mx' line, and there is none",
                "Add one 'mx: <host>' line per MX host of the domain (or '*.<domain>').",
            )
        )
    if mode is None or max_age is None or version is None:
        return None, tuple(problems)
    if has_errors(problems):
        return None, tuple(problems)
    return Policy._trusted(mode, max_age, tuple(mx), tuple(mx_normal), extensions), tuple(problems)


def _extension(problems: list[Problem], extensions: dict[str, str], number: int, name: str, value: str) -> None:
    lowered = name.lower().replace("-", "_")
    if lowered in _KNOWN_FIELDS:
        problems.append(
            Problem(
                "policy.field.unknown",
                f"the field {name!r} is not {lowered!r}: field names are case-sensitive, "
                "so it is an unknown field and ignored",
                f"Write the field name as {lowered!r}.",
                number,
                1,
                Severity.WARNING,
            )
        )
    if name in extensions:
        problems.append(_duplicate(number, name, value, extensions[name]))
    else:
        extensions[name] = value


def _duplicate(number: int, name: str, value: str, kept: str) -> Problem:
    return Problem(
        "policy.field.duplicate",
        f"{name!r} appears again; the first value {kept!r} is used and {value!r} is ignored",
        f"Keep one {name!r} line.",
        number,
        1,
        Severity.WARNING,
    )


_FIX_COMPLETE = "Publish a policy with 'version: STSv1', 'mode: ...', 'mx: ...' and 'max_age: ...' lines."


def _line_problem(number: int, line: str) -> Problem:
    control = _CONTROL_RE.search(line)
    if control is not None:
        char = control.group()
        described = _CONTROL_NAMES.get(char, f"the control character U+{ord(char):04X}")
        return Problem(
            "policy.line.control",
            f"the line contains {described}",
            "Remove it: lines end with LF or CRLF, and values contain no control characters"
            + (" or tabs." if char == "\t" else "."),
            number,
            control.start() + 1,
        )
    if not line.strip(_WSP):
        return Problem(
            "policy.line.blank",
            "blank line (the policy grammar has no empty lines)",
            "Remove the empty line; at most one line break may end the file.",
            number,
            1,
        )
    if line[0] in _WSP:
        return Problem(
            "policy.line.indent",
            "the line begins with white space",
            "Remove the indentation: each field name starts at the beginning of its line.",
            number,
            1,
        )
    name, colon, rest = line.partition(":")
    if not colon:
        return Problem(
            "policy.line.syntax",
            f"the line {line[:40]!r} is not 'name: value'",
            "Write each field as 'name: value' on its own line.",
            number,
            1,
        )
    value = rest.strip(_WSP)
    value_column = len(name) + 2 + len(rest) - len(rest.lstrip(_WSP))
    if not name:
        return Problem(
            "policy.field.name",
            "the line has no field name before ':'",
            "Write each field as 'name: value' on its own line.",
            number,
            1,
        )
    if name[-1:] in _WSP:
        return Problem(
            "policy.field.name",
            f"white space between the field name {name.rstrip(_WSP)!r} and ':'",
            f"Write '{name.rstrip(_WSP)}:' with no space before the colon.",
            number,
            len(name.rstrip(_WSP)) + 1,
        )
    if name == "version":
        return Problem(
            "policy.version.value",
            f"the version is {value!r}; the only version is 'STSv1' (case-sensitive)",
            "Write 'version: STSv1'.",
            number,
            value_column,
        )
    if name == "mode":
        hint = f" (write it in lower case: {value.lower()!r})" if value.lower() in _MODES else ""
        return Problem(
            "policy.mode.value",
            f"the mode {value!r} is not one of 'enforce', 'testing', 'none'{hint}",
            "Use 'mode: testing' while you watch TLS reports, then 'mode: enforce'.",
            number,
            value_column,
        )
    if name == "max_age":
        return _max_age_problem(number, value, value_column)
    if name == "mx":
        return _mx_problem(number, value, value_column)
    if not EXT_NAME_RE.fullmatch(name):
        return Problem(
            "policy.field.name",
            f"{name[:40]!r} is not a valid field name",
            "Field names are 1-32 letters, digits, '_', '-' or '.', beginning with a letter or digit.",
            number,
            1,
        )
    if not value:
        detail, column = "is empty", value_column
    else:
        # control characters were reported above; a tab inside the value is all that is left
        detail, column = "contains a tab", value_column + value.find("\t")
    return Problem(
        "policy.extension.value",
        f"the value of {name!r} {detail}",
        "Extension values are visible characters and spaces (no tabs); or remove the line.",
        number,
        column,
    )


def _max_age_problem(number: int, value: str, column: int) -> Problem:
    if value.isascii() and value.isdigit() and len(value) <= MAX_AGE_DIGITS:
        return Problem(
            "policy.max_age.range",
            f"max_age {int(value)} is above the maximum of {MAX_AGE_LIMIT} seconds (one year)",
            f"Use at most {MAX_AGE_LIMIT}; 604800 (one week) to 31557600 are typical.",
            number,
            column,
        )
    if value.isascii() and value.isdigit():
        detail = f"max_age has {len(value)} digits (at most {MAX_AGE_DIGITS})"
        code = "policy.max_age.range"
    elif not value:
        detail, code = "max_age is empty", "policy.max_age.syntax"
    else:
        detail = f"max_age {value!r} is not a number of seconds written with the digits 0-9 only"
        code = "policy.max_age.syntax"
    return Problem(code, detail, "Write the number of seconds, e.g. 'max_age: 604800'.", number, column)


_MX_FIXES = {
    MxPatternIssue.EMPTY: "Write the MX host name after 'mx:'.",
    MxPatternIssue.TRAILING_DOT: "Remove the trailing dot.",
    MxPatternIssue.WILDCARD: "Use '*.' followed by a domain ('*.example.com') or list each MX host.",
    MxPatternIssue.ADDRESS: "List the MX host name (as in the MX record), not an address.",
    MxPatternIssue.LABEL_LENGTH: "Use the MX host name exactly as in the MX record.",
    MxPatternIssue.NAME_LENGTH: "Use the MX host name exactly as in the MX record.",
    MxPatternIssue.ALABEL: "Write the name in A-labels as produced by an IDNA 2008 converter.",
    MxPatternIssue.SYNTAX: "Write one MX host name per 'mx:' line, as in the MX record.",
}


def _mx_problem(number: int, value: str, column: int) -> Problem:
    found = check_mx_pattern(value)
    issue, detail = found if found is not None else (MxPatternIssue.SYNTAX, "invalid")
    fix = _MX_FIXES.get(issue, _MX_FIXES[MxPatternIssue.SYNTAX])
    if issue == MxPatternIssue.ULABEL:
        try:
            alabel = idna.encode(value.removeprefix("*."), uts46=True).decode("ascii")
            fix = f"Write the A-label: 'mx: {'*.' if value.startswith('*.') else ''}{alabel}'."
        except (idna.IDNAError, UnicodeError, ValueError):
            fix = "Write the name in A-labels (Punycode, 'xn--...')."
    elif issue == MxPatternIssue.TRAILING_DOT:
        fix = f"Remove the trailing dot: 'mx: {value[:-1]}'."
    elif issue == MxPatternIssue.SYNTAX and any(c in value for c in " ,;"):
        fix = "Put each MX host on its own 'mx:' line."
    return Problem(f"policy.mx.{issue}", f"mx {value!r}: {detail}", fix, number, column)


def _encoding_problem(raw: bytes, offset: int) -> Problem:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return Problem(
        "policy.encoding",
        f"the policy is not valid UTF-8 (byte 0x{raw[offset]:02X})",
        "Save the policy as UTF-8 (plain ASCII is fine).",
        line,
        column,
    )


def _split_lines(text: str) -> list[str]:
    """The lines of ``text`` without their LF or CRLF terminator; a final terminator ends the last
    line instead of starting an empty one (sts-policy-term). A CR not followed by LF is no
    terminator: it stays in its line and is reported there."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the one optional final terminator
    return lines


def _normal_patterns(mx: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalize_pattern(p) or "" for p in mx)


def _validate_values(
    version: str, mode: object, max_age: object, mx: Sequence[str], extensions: Mapping[str, str]
) -> list[Problem]:
    """The constructor's checks, with the parser's codes and fixes."""
    problems: list[Problem] = []
    if version != STS_POLICY_VERSION:
        problems.append(_line_problem(0, f"version: {version}"))
    if mode not in _MODES:
        problems.append(_line_problem(0, f"mode: {mode}"))
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_AGE_LIMIT:
        problems.append(
            Problem(
                "policy.max_age.range",
                f"max_age {max_age!r} is not a whole number of seconds from 0 to {MAX_AGE_LIMIT}",
                f"Use at most {MAX_AGE_LIMIT}; 604800 (one week) to 31557600 are typical.",
            )
        )
    if isinstance(mx, str):
        problems.append(Problem("policy.mx.syntax", "mx must be a sequence of patterns", "Pass a tuple."))
    else:
        problems.extend(_mx_problem(0, p, 0) for p in mx if check_mx_pattern(p) is not None)
        if mode in (Mode.ENFORCE, Mode.TESTING, "enforce", "testing") and not mx:
            problems.append(
                Problem(
                    "policy.mx.missing",
                    f"mode {mode!s} needs at least one mx pattern",
                    "Give the MX host names.",
                )
            )
    for name, value in extensions.items():
        if name in _KNOWN_FIELDS or not EXT_NAME_RE.fullmatch(name) or not _EXT_VALUE_RE.fullmatch(value):
            problems.append(
                _line_problem(0, f"{name}: {value}")
                if name not in _KNOWN_FIELDS
                else Problem("policy.field.name", f"{name!r} is a policy field, not an extension", "Use the field.")
            )
    return [Problem(p.code, p.message, p.fix, None, None, p.severity) for p in problems]
