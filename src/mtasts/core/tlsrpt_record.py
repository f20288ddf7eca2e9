"""The ``_smtp._tls`` TXT record (RFC 8460 §3): ``v=TLSRPTv1; rua=<mailto: or https: URIs>``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from mtasts.core._tagvalue import TxtRecord, check_extension, select_candidates, split_fields
from mtasts.core.hostname import check_host_name
from mtasts.core.problems import Problem, Severity, TlsRptRecordParseError, has_errors, ignored_repeat

__all__ = [
    "TLSRPT_VERSION",
    "TlsRptRecord",
    "lint_tlsrpt_record",
    "parse_tlsrpt_record",
    "select_tlsrpt_record",
]

TLSRPT_VERSION = "v=TLSRPTv1"
_WHAT = "the _smtp._tls record"
# RFC 3986 URI characters, without ',' and '!' (RFC 8460 §3: "MUST be encoded") and without
# ';' (the record's field delimiter): unreserved / pct-encoded / the remaining reserved ones.
_URI_CHARS_RE = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@$&'()*+=]|%[0-9A-Fa-f]{2})+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_RUA_SPLIT_RE = re.compile(r"[ \t]*,[ \t]*")
_LOCAL_PART_RE = re.compile(r"[A-Za-z0-9.!#$&'*+/=?^_`{|}~\-]+|\"[^\"]*\"")
_FIX_RUA = "Give one or more report addresses: 'rua=mailto:tlsrpt@example.com' or 'rua=https://...'."


@dataclass(frozen=True, slots=True)
class TlsRptRecord:
    """A valid TLSRPT record: where to send reports (``mailto:`` and ``https:`` URIs)."""

    rua: tuple[str, ...]
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = [p for uri in self.rua if (p := _check_uri(uri, None)) is not None]
        if not self.rua:
            problems.append(Problem("tlsrpt.rua.missing", "no report URI", _FIX_RUA))
        if problems:
            raise TlsRptRecordParseError(problems)
        object.__setattr__(self, "rua", tuple(self.rua))
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    @classmethod
    def _trusted(cls, rua: tuple[str, ...], extensions: dict[str, str]) -> TlsRptRecord:
        """Build from values the parser has already validated."""
        self = object.__new__(cls)
        object.__setattr__(self, "rua", rua)
        object.__setattr__(self, "extensions", MappingProxyType(extensions))
        return self

    def __hash__(self) -> int:
        return hash((self.rua, tuple(self.extensions.items())))

    def to_text(self) -> str:
        """The record as it is published."""
        parts = [TLSRPT_VERSION, "rua=" + ",".join(self.rua)]
        parts.extend(f"{name}={value}" for name, value in self.extensions.items())
        return "; ".join(parts)


def lint_tlsrpt_record(text: str) -> tuple[TlsRptRecord | None, tuple[Problem, ...]]:
    """Parse one record and report every problem; the record is ``None`` on error.

    Stricter than :func:`parse_tlsrpt_record` in one way, for the domain owner: a malformed
    repeat of a field is an error here, while senders ignore repeats (the first value wins).
    """
    return _lint(text, owner=True)


def _lint(text: str, *, owner: bool) -> tuple[TlsRptRecord | None, tuple[Problem, ...]]:
    fields, problems = split_fields(text, TLSRPT_VERSION, "tlsrpt", _WHAT)
    rua: tuple[str, ...] | None = None
    extensions: dict[str, str] = {}
    for item in fields:
        if item.name == "rua":
            uris, uri_problems = _read_rua(item.value, item.value_column)
            if rua is None:
                problems.extend(uri_problems)
                rua = uris
            else:
                problems.extend(ignored_repeat(p, owner=owner) for p in uri_problems if p.severity is Severity.ERROR)
                problems.extend(p for p in uri_problems if p.severity is not Severity.ERROR)
                problems.append(_duplicate(item.name, item.column))
            continue
        problem = check_extension(item, "tlsrpt")
        if problem is not None:
            repeat = item.name == "v" or item.name in extensions
            problems.append(ignored_repeat(problem, owner=owner) if repeat else problem)
        elif item.name == "v" or item.name in extensions:
            problems.append(_duplicate(item.name, item.column))
        else:
            extensions[item.name] = item.value
    errors = has_errors(problems)
    if rua is None and not errors:
        problems.append(Problem("tlsrpt.rua.missing", f"{_WHAT} has no rua field", _FIX_RUA))
    if rua is None or errors:
        return None, tuple(problems)
    return TlsRptRecord._trusted(rua, extensions), tuple(problems)


def parse_tlsrpt_record(text: str) -> TlsRptRecord:
    """Parse one ``_smtp._tls`` record; raises :class:`~mtasts.ParseError`."""
    record, problems = _lint(text, owner=False)
    if record is None:
        raise TlsRptRecordParseError(problems)
    return record


def select_tlsrpt_record(rrset: Iterable[TxtRecord]) -> TlsRptRecord:
    """The TLSRPT record of a whole RRset (RFC 8460 §3): records not beginning with
    ``v=TLSRPTv1;`` are discarded; not exactly one left means TLSRPT is not in use
    (codes ``tlsrpt.rrset.none``, ``tlsrpt.rrset.multiple``)."""
    candidates = select_candidates(rrset, TLSRPT_VERSION)
    if not candidates:
        raise TlsRptRecordParseError(
            Problem(
                "tlsrpt.rrset.none",
                "no TXT record beginning with 'v=TLSRPTv1;' was found",
                "Publish 'v=TLSRPTv1; rua=mailto:tlsrpt@<domain>' at _smtp._tls.<domain>.",
            )
        )
    if len(candidates) > 1:
        raise TlsRptRecordParseError(
            Problem(
                "tlsrpt.rrset.multiple",
                f"{len(candidates)} TXT records begin with 'v=TLSRPTv1;'; senders then send no reports",
                "Keep exactly one 'v=TLSRPTv1' record (list several URIs in its rua, comma-separated).",
            )
        )
    return parse_tlsrpt_record(candidates[0])


def _read_rua(value: str, column: int) -> tuple[tuple[str, ...], list[Problem]]:
    problems: list[Problem] = []
    uris: list[str] = []
    pos = 0
    for match in [*_RUA_SPLIT_RE.finditer(value), None]:
        end = len(value) if match is None else match.start()
        uri = value[pos:end]
        problem = _check_uri(uri, column + pos)
        if problem is None:
            uris.append(uri)
        else:
            problems.append(problem)
        if match is not None:
            pos = match.end()
    return tuple(uris), problems


def _check_uri(uri: str, column: int | None) -> Problem | None:
    line = None if column is None else 1

    def bad(code: str, message: str, fix: str = _FIX_RUA) -> Problem:
        return Problem(code, message, fix, line, column)

    if not uri:
        return bad("tlsrpt.rua.empty", "empty report URI")
    scheme = _SCHEME_RE.match(uri)
    if scheme is None:
        return bad("tlsrpt.rua.scheme", f"{uri[:60]!r} has no scheme; use mailto: or https:")
    name = scheme.group()[:-1].lower()
    if name not in ("mailto", "https"):
        return bad(
            "tlsrpt.rua.scheme",
            f"the scheme {name + ':'!r} is not supported; reports go to mailto: or https: URIs",
            "Use 'mailto:...' or 'https://...'.",
        )
    if not _URI_CHARS_RE.fullmatch(uri):
        offender = next(
            (c for i, c in enumerate(uri) if not _URI_CHARS_RE.fullmatch(uri[i : i + 3] if c == "%" else c)),
            "?",
        )
        return bad(
            "tlsrpt.rua.uri",
            f"{uri[:60]!r} contains {offender!r}, which must be percent-encoded",
            "Percent-encode the character (',' is %2C, '!' is %21, a space is %20), "
            "or remove a DMARC-style size suffix such as '!10m'.",
        )
    if name == "mailto":
        address = unquote(uri[len("mailto:") :].split("?", 1)[0])
        local, at, domain = address.rpartition("@")
        if not at or not local or not _LOCAL_PART_RE.fullmatch(local) or check_host_name(domain) is not None:
            return bad("tlsrpt.rua.uri", f"{uri[:60]!r} is not a valid mailto: address")
        return None
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if (
        not uri.lower().startswith("https://")
        or not host
        or (check_host_name(host) is not None and not host.startswith("[") and not _is_ip(host))
    ):
        return bad("tlsrpt.rua.uri", f"{uri[:60]!r} is not a valid https: URL with a host name")
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _duplicate(name: str, column: int) -> Problem:
    return Problem(
        "tlsrpt.field.duplicate",
        f"the field {name!r} appears again; the first one is used",
        "Merge the URIs into one 'rua=' field, separated by commas.",
        1,
        column,
        Severity.WARNING,
    )
