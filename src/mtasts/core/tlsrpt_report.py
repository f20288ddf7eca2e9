"""TLSRPT aggregate reports (RFC 8460 §4): bytes in, one typed, normalised report out.

:func:`parse_report` takes the body of a report exactly as it arrived (plain JSON or gzip,
told apart by the gzip magic bytes, never by a file name) and returns a :class:`TlsRptReport`
or raises :class:`ReportParseError`; nothing else escapes. It is strict on safety (caps on the
input, on the decompressed size, on the JSON size and nesting depth, all set by
:class:`ReportLimits`) and tolerant of what real reporters send (RFC 8460 as deployed):

========================================  ==========================================================
deviation                                 reading
========================================  ==========================================================
``mx-host`` as a string, list or absent   always a tuple of host patterns (maybe empty)
TLSA ``policy-string`` as one string      the JSON array inside it is unpacked into the tuple
holding a JSON array (Microsoft)
timestamp without a time zone             read as UTC (warning ``report.date.no_timezone``)
``end-datetime`` at the next midnight     kept as sent; :attr:`TlsRptReport.day` is the start date
failure counts above the summary total    kept as sent (warning ``report.summary.inconsistent``)
``contact-info: null``, empty strings     ``None``
unknown keys, unregistered result types   ignored / kept verbatim as ``str``
missing ``total-failure-session-count``   sum of the failure details (warning ``report.summary.missing``)
========================================  ==========================================================

and refuses, each with its code: more than ``max_gzip_members`` gzip members
(``report.gzip.members``), a count above 10^12 (``report.count.range``), a date-time outside
1970-01-01 to 9998-12-31 UTC (``report.date.range``).

The raw JSON is kept on the report (:attr:`TlsRptReport.raw`) so a store can always re-read it.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeAlias, TypeVar

import orjson

from mtasts.core._frozen import trusted_constructor
from mtasts.core.problems import ParseError, Problem, Severity

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SESSION_COUNT",
    "DayTotal",
    "DayTwice",
    "FailureDetail",
    "FailureRow",
    "FailureTotal",
    "PolicyResult",
    "PolicyRow",
    "PolicyType",
    "ReportLimits",
    "ReportParseError",
    "ResultType",
    "Rollup",
    "SenderTotal",
    "SenderTwice",
    "TlsRptReport",
    "is_gzip",
    "parse_report",
    "report_from_json",
    "report_rows",
    "result_type_of",
]

GZIP_MAGIC: Final = b"\x1f\x8b"
_T = TypeVar("_T")
# A session count above 10^12 (a trillion sessions in one report, thousands of times what the
# largest senders report per day) is not a count but an attack on the stores' 64-bit columns
# and sums: refused at ingest (``report.count.range``).
MAX_SESSION_COUNT: Final = 10**12
_MAX_COUNT: Final = MAX_SESSION_COUNT


class ReportParseError(ParseError):
    """A TLSRPT report cannot be read: ``code`` says why (``report.gzip.too_large``,
    ``report.json.depth``, ``report.field.missing``, ...), ``message`` says where."""


class PolicyType(StrEnum):
    """RFC 8460 §4.4 ``policy-type``: a closed set (unlike result types there is no registry)."""

    STS = "sts"
    TLSA = "tlsa"
    NO_POLICY_FOUND = "no-policy-found"


class ResultType(StrEnum):
    """The IANA "STARTTLS Validation Result Types" registry (RFC 8460 §4.3 and §6.6).

    A report may carry a type that is not registered; :func:`result_type_of` keeps such a
    value as the plain ``str`` it was, so nothing is lost and nothing is guessed.
    """

    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


_RESULT_TYPES: Final[Mapping[str, ResultType]] = {member.value: member for member in ResultType}
_POLICY_TYPES: Final[Mapping[str, PolicyType]] = {member.value: member for member in PolicyType}


def result_type_of(text: str) -> ResultType | str:
    """The registered :class:`ResultType` for ``text`` (ASCII case-insensitive), else ``text`` itself."""
    found = _RESULT_TYPES.get(text)
    if found is None:
        found = _RESULT_TYPES.get(text.strip().lower())
    return text if found is None else found


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """Safety caps, all in bytes except ``max_depth`` (nesting of JSON arrays and objects) and
    ``max_gzip_members`` (gzip members, RFC 1952 §2.2, in one body).

    A real report is a few KiB in one gzip member; the defaults leave room for very large
    senders and still stop a gzip bomb or a hostile body long before memory runs out. With them,
    the work done on any body is linear in its size and bounded: at most ``max_input`` bytes
    read, ``max_gzip_members`` inflaters started and ``max_decompressed`` bytes produced.
    """

    max_input: int = 8 * 1024 * 1024
    max_decompressed: int = 32 * 1024 * 1024
    max_json: int = 32 * 1024 * 1024
    max_depth: int = 16
    max_gzip_members: int = 64

    def __post_init__(self) -> None:
        for name in ("max_input", "max_decompressed", "max_json", "max_depth", "max_gzip_members"):
            if getattr(self, name) < 1:
                raise ValueError(f"ReportLimits.{name} must be at least 1")


DEFAULT_LIMITS: Final = ReportLimits()


@dataclass(frozen=True, slots=True)
class FailureDetail:
    """One ``failure-details`` entry (RFC 8460 §4.3); empty strings are read as ``None``."""

    result_type: ResultType | str
    failed_session_count: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    additional_information: str | None = None
    failure_reason_code: str | None = None

    @property
    def registered(self) -> bool:
        """True when the result type is in the IANA registry."""
        return isinstance(self.result_type, ResultType)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result_type": str(self.result_type),
            "failed_session_count": self.failed_session_count,
            "sending_mta_ip": self.sending_mta_ip,
            "receiving_mx_hostname": self.receiving_mx_hostname,
            "receiving_mx_helo": self.receiving_mx_helo,
            "receiving_ip": self.receiving_ip,
            "additional_information": self.additional_information,
            "failure_reason_code": self.failure_reason_code,
        }


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One ``policies`` entry: the policy a sender applied and how its sessions went."""

    policy_type: PolicyType
    policy_domain: str | None
    policy_string: tuple[str, ...]
    mx_host: tuple[str, ...]
    total_successful: int
    total_failure: int
    failure_details: tuple[FailureDetail, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_type": self.policy_type.value,
            "policy_domain": self.policy_domain,
            "policy_string": list(self.policy_string),
            "mx_host": list(self.mx_host),
            "total_successful": self.total_successful,
            "total_failure": self.total_failure,
            "failure_details": [detail.to_dict() for detail in self.failure_details],
        }


@dataclass(frozen=True, slots=True)
class TlsRptReport:
    """A TLSRPT report, normalised; ``raw`` is the JSON exactly as received (after gzip)."""

    organization_name: str
    report_id: str
    contact_info: str | None
    start: datetime
    end: datetime
    policies: tuple[PolicyResult, ...]
    raw: bytes = field(default=b"", repr=False, compare=False)
    warnings: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def digest(self) -> str:
        """SHA-256 of :attr:`raw` in hex: the identity of a report that has no usable id."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def day(self) -> date:
        """The (UTC) day the report covers: its start date, which every reporter gets right."""
        return self.start.date()

    @property
    def total_successful(self) -> int:
        return sum(policy.total_successful for policy in self.policies)

    @property
    def total_failure(self) -> int:
        return sum(policy.total_failure for policy in self.policies)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``mtasts report parse --json``; keys are a public contract."""
        return {
            "organization_name": self.organization_name,
            "report_id": self.report_id,
            "contact_info": self.contact_info,
            "date_range": {"start": _iso(self.start), "end": _iso(self.end)},
            "policies": [policy.to_dict() for policy in self.policies],
            "warnings": [problem.to_dict() for problem in self.warnings],
        }


_new_detail = trusted_constructor(FailureDetail)
_new_policy = trusted_constructor(PolicyResult)
_new_report = trusted_constructor(TlsRptReport)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_gzip(data: bytes) -> bool:
    """True when ``data`` starts with the gzip magic bytes (RFC 1952 §2.3.1)."""
    return data[:2] == GZIP_MAGIC


# --- bytes -> JSON value -------------------------------------------------------------------


def _error(code: str, message: str, fix: str, line: int | None = None, column: int | None = None) -> ReportParseError:
    return ReportParseError(Problem(code, message, fix, line, column))


_FIRST_STEP: Final = 512  # bytes of input first fed to each member's inflater; doubled while it runs


def _gunzip(data: bytes, limit: int, max_members: int) -> bytes:
    """Decompress every gzip member of ``data``, never producing more than ``limit`` bytes or
    reading more than ``max_members`` members.

    Linear in the input: ``unused_data`` is a copy of whatever input the inflater did not need,
    so handing each member the whole rest (as ``gzip.decompress`` does) copies the rest once per
    member, quadratic in the number of members (200,000 empty members took seconds). Each
    member is fed slices of a memoryview instead, starting small and doubling, so the input
    copied past a member's end is at most about its own size.
    """
    view = memoryview(data)
    end = len(data)
    out: list[bytes] = []
    size = 0
    position = 0
    members = 0
    while position < end:
        members += 1
        if members > max_members:
            raise _error(
                "report.gzip.members",
                f"the gzip data holds more than {max_members} members",
                "A report is one gzip member (RFC 1952); send it compressed once, as a whole.",
            )
        inflater = zlib.decompressobj(wbits=31)
        step = _FIRST_STEP
        while True:
            stop = min(end, position + step)
            try:
                chunk = inflater.decompress(view[position:stop], limit - size + 1)
            except zlib.error as exc:
                raise _error(
                    "report.gzip.invalid",
                    f"the gzip data is corrupt ({exc})",
                    "Send the report gzip-compressed as a whole (RFC 1952), or as plain JSON.",
                ) from exc
            size += len(chunk)
            if size > limit or inflater.unconsumed_tail:
                raise _error(
                    "report.gzip.too_large",
                    f"the report decompresses to more than {limit} bytes",
                    "A TLSRPT report is a few KiB; this looks like a gzip bomb. Raise the limit only for a trusted "
                    "sender.",
                )
            if chunk:
                out.append(chunk)
            if inflater.eof:
                position = stop - len(inflater.unused_data)
                break
            position = stop
            if position >= end:
                raise _error(
                    "report.gzip.truncated",
                    "the gzip data ends before the end of the compressed stream",
                    "The file or message is cut short; fetch or send the whole report again.",
                )
            step *= 2
        if position < end and data[position : position + 2] != GZIP_MAGIC:
            if not view[position:].tobytes().strip(b"\x00"):
                break  # zero padding after the last member (tape-style); harmless
            raise _error(
                "report.gzip.invalid",
                "extra bytes after the end of the gzip data",
                "Send exactly one gzip-compressed report.",
            )
    return out[0] if len(out) == 1 else b"".join(out)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _load_json(data: bytes, limits: ReportLimits) -> Any:
    if len(data) > limits.max_json:
        raise _error(
            "report.json.too_large",
            f"the report JSON is larger than {limits.max_json} bytes",
            "A TLSRPT report is a few KiB; check that this is a report.",
        )
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]  # a UTF-8 byte order mark: RFC 8259 §8.1 lets parsers ignore it
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _error(
                "report.json.utf8",
                f"the report is not valid UTF-8 (byte {bad.start}: {data[bad.start : bad.start + 1]!r})",
                "RFC 8460 §4 reports are UTF-8 JSON; re-encode the report.",
            ) from exc
        if "depth limit" in exc.msg or "recursion" in exc.msg:
            raise _depth_error(limits.max_depth) from exc
        raise _error(
            "report.json.syntax",
            f"the report is not valid JSON: {exc.msg}",
            "Send the report as one JSON object (RFC 8460 §4).",
            exc.lineno,
            exc.colno,
        ) from exc


def _depth_error(limit: int) -> ReportParseError:
    return _error(
        "report.json.depth",
        f"the report JSON nests arrays and objects deeper than {limit} levels",
        "A TLSRPT report nests five levels deep; this is not a report.",
    )


# --- JSON value -> model ---------------------------------------------------------------------
#
# The happy path is lean: no message is formatted and no path is built unless something is
# wrong. Helpers raise _Bad with the field's key; each level adds its part of the path on the way
# up, and report_from_json turns it into a ReportParseError naming the whole path. The depth cap
# is checked only where it can be exceeded: in values under keys the schema does not know (known
# fields have fixed shapes, so a deeper value there fails its type check first).

_FIX_SCHEMA: Final = "Follow the JSON schema of RFC 8460 §4.4."
_REPORT_KEYS: Final = frozenset({"organization-name", "date-range", "contact-info", "report-id", "policies"})
_RANGE_KEYS: Final = frozenset({"start-datetime", "end-datetime"})
_ENTRY_KEYS: Final = frozenset({"policy", "summary", "failure-details"})
_POLICY_KEYS: Final = frozenset({"policy-type", "policy-string", "policy-domain", "mx-host"})
_SUMMARY_KEYS: Final = frozenset({"total-successful-session-count", "total-failure-session-count"})
_DETAIL_KEYS: Final = frozenset(
    {
        "result-type",
        "sending-mta-ip",
        "receiving-mx-hostname",
        "receiving-mx-helo",
        "receiving-ip",
        "failed-session-count",
        "additional-information",
        "failure-reason-code",
    }
)


class _Bad(Exception):
    def __init__(self, code: str, text: str, fix: str, key: str | None = None) -> None:
        super().__init__(code)
        self.code, self.text, self.fix = code, text, fix
        self.path: list[str] = [] if key is None else [key]

    def at(self, part: str) -> _Bad:
        self.path.insert(0, part)
        return self

    def error(self) -> ReportParseError:
        where = "".join(p if p.startswith("[") else "." + p for p in self.path).lstrip(".")
        return _error(self.code, f"{where} {self.text}" if where else self.text, self.fix)


def _wrong_type(key: str | None, expected: str, value: Any) -> _Bad:
    return _Bad("report.field.type", f"must be {expected}, not {_json_type(value)}", _FIX_SCHEMA, key)


def _missing(key: str) -> _Bad:
    return _Bad("report.field.missing", "is missing", "RFC 8460 §4.4 makes this field required.", key)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _check_extra(obj: dict[str, Any], known: frozenset[str], level: int, limit: int) -> None:
    """Cap the depth of values under keys the schema does not know (``obj`` is at ``level``)."""
    for key in obj.keys() - known:
        value = obj[key]
        if isinstance(value, dict | list) and _depth_exceeds(value, limit - level):
            raise _Depth


class _Depth(Exception):
    pass


def _count(obj: dict[str, Any], key: str) -> int:
    """A session count; -1 when the key is absent (the caller decides what that means).

    A count is a non-negative integer (an integral float such as ``3.0`` is read as one) of at
    most :data:`MAX_SESSION_COUNT`; anything else is a ``report.count.range`` or
    ``report.field.type`` error.
    """
    value = obj.get(key, -1)
    if value.__class__ is int:
        if 0 <= value <= _MAX_COUNT:
            return int(value)
        if value == -1 and key not in obj:
            return -1
    elif isinstance(value, float) and value.is_integer():
        if 0 <= value <= _MAX_COUNT:
            return int(value)
    else:
        raise _wrong_type(key, "a non-negative integer", value)
    raise _Bad(
        "report.count.range",
        f"is {value if abs(value) < 10**30 else 'over 10^30'}; a session count is between 0 and 10^12",
        "Send the number of sessions; counts above 10^12 are refused as implausible.",
        key,
    )


# Date-times must fall in [1970-01-01, 9999-01-01) UTC. TLSRPT dates from 2018 (RFC 8460); the
# lower bound keeps every moment convertible to a POSIX timestamp, and the upper one leaves a
# year of room below datetime's limit (9999-12-31) for the day and window arithmetic of
# summaries and digests. Anything outside is refused here, once, rather than overflowing later.
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)


class _OutOfRange(Exception):
    """A well-formed date-time outside [_EARLIEST, _LATEST), or one whose offset moves it out of
    the range ``datetime`` can represent (``9999-12-31T23:59:59-23:59``)."""


@functools.lru_cache(maxsize=1024)
def _moment(text: str) -> tuple[datetime, bool]:
    """An RFC 3339 date-time in UTC, and whether it lacked a time zone (read as UTC).

    Raises ``ValueError`` for text that is not a date-time and :class:`_OutOfRange` for one
    outside the accepted range; nothing else (``OverflowError`` from the UTC conversion is
    turned into :class:`_OutOfRange`).
    """
    moment = datetime.fromisoformat(text.strip())
    naive = moment.tzinfo is None
    if naive:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset() != timedelta(0):
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise _OutOfRange from None
    if not _EARLIEST <= moment < _LATEST:
        raise _OutOfRange
    return moment, naive


def _shown(value: str, limit: int = 64) -> str:
    """``repr`` of a value for a message, cut short: a hostile field may be megabytes long."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def _timestamp(obj: dict[str, Any], key: str, warnings: list[Problem]) -> datetime:
    value = obj.get(key)
    if value is None:
        raise _missing(key)
    if value.__class__ is not str:
        raise _wrong_type(key, "an RFC 3339 date-time string", value)
    try:
        moment, naive = _moment(value)
    except ValueError:
        raise _Bad(
            "report.date.invalid",
            f"{_shown(value)} is not an RFC 3339 date-time",
            "Write times as in '2026-11-28T00:00:00Z' (RFC 8460 §4.4, RFC 3339).",
            key,
        ) from None
    except _OutOfRange:
        raise _Bad(
            "report.date.range",
            f"{_shown(value)} is outside the accepted range (1970-01-01 to 9998-12-31, UTC)",
            "Give the real start and end of the report period, in UTC or with a real offset (RFC 8460 §4.4).",
            key,
        ) from None
    if naive:
        warnings.append(
            Problem(
                "report.date.no_timezone",
                f"report.date-range.{key} {_shown(value)} has no time zone; read as UTC",
                "RFC 3339 date-times end in 'Z' or an offset.",
                severity=Severity.WARNING,
            )
        )
    return moment


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A list of strings (or one string) as a tuple, each stripped; ``null`` and blank items are dropped."""
    if value.__class__ is list:
        if set(map(type, value)) <= _STR_ONLY:  # the common case, checked and stripped at C speed
            out = tuple(map(str.strip, value))
            return tuple(text for text in out if text) if "" in out else out
        if not set(map(type, value)) <= _STR_OR_NONE:
            raise _wrong_type(key, "an array of strings", value)
        return tuple(text for item in value if item is not None and (text := item.strip()))
    if value is None:
        return ()
    if value.__class__ is str:
        value = value.strip()
        return (value,) if value else ()
    raise _wrong_type(key, "an array of strings", value)


_STR_ONLY: Final = frozenset({str})
_STR_OR_NONE: Final = frozenset({str, type(None)})


def _tlsa_strings(strings: tuple[str, ...]) -> tuple[str, ...]:
    """Microsoft sends a TLSA ``policy-string`` as one string holding a JSON array: unpack it."""
    if len(strings) != 1 or not strings[0].startswith("["):
        return strings
    try:
        inner = orjson.loads(strings[0])
    except orjson.JSONDecodeError:
        return strings
    if isinstance(inner, list) and all(type(item) is str for item in inner):
        return tuple(item.strip() for item in inner if item.strip())
    return strings


def _domain(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    if value[-1] == ".":
        value = value.rstrip(".")
    return value or None


def _opt(value: Any, key: str) -> str | None:
    """The slow half of an optional string field, for a value that is present."""
    if value.__class__ is not str:
        raise _wrong_type(key, "a string", value)
    return value.strip() or None


def _detail(obj: Any, limit: int) -> FailureDetail:
    if obj.__class__ is not dict:
        raise _wrong_type(None, "an object", obj)
    if not _DETAIL_KEYS.issuperset(obj):
        _check_extra(obj, _DETAIL_KEYS, 5, limit)
    get = obj.get
    result = get("result-type")
    if result.__class__ is not str:
        raise _missing("result-type") if result is None else _wrong_type("result-type", "a string", result)
    count = get("failed-session-count")
    if count.__class__ is not int or count < 0 or count > _MAX_COUNT:
        count = _count(obj, "failed-session-count")
        if count < 0:
            raise _missing("failed-session-count")
    # absent optional fields (most of them, most of the time) cost one dict lookup each
    sending = get("sending-mta-ip")
    mx = get("receiving-mx-hostname")
    helo = get("receiving-mx-helo")
    receiving = get("receiving-ip")
    info = get("additional-information")
    reason = get("failure-reason-code")
    return _new_detail(
        _RESULT_TYPES.get(result) or result_type_of(result),
        count,
        None if sending is None else _opt(sending, "sending-mta-ip"),
        None if mx is None else _domain(_opt(mx, "receiving-mx-hostname")),
        None if helo is None else _opt(helo, "receiving-mx-helo"),
        None if receiving is None else _opt(receiving, "receiving-ip"),
        None if info is None else _opt(info, "additional-information"),
        None if reason is None else _opt(reason, "failure-reason-code"),
    )


def _policy(obj: Any, index: int, limit: int, warnings: list[Problem]) -> PolicyResult:
    if obj.__class__ is not dict:
        raise _wrong_type(None, "an object", obj)
    if not _ENTRY_KEYS.issuperset(obj):
        _check_extra(obj, _ENTRY_KEYS, 3, limit)
    policy = obj.get("policy")
    if policy.__class__ is not dict:
        raise _missing("policy") if policy is None else _wrong_type("policy", "an object", policy)
    try:
        if not _POLICY_KEYS.issuperset(policy):
            _check_extra(policy, _POLICY_KEYS, 4, limit)
        get = policy.get
        kind_text = get("policy-type")
        if kind_text.__class__ is not str:
            raise _missing("policy-type") if kind_text is None else _wrong_type("policy-type", "a string", kind_text)
        kind = _POLICY_TYPES.get(kind_text) or _POLICY_TYPES.get(kind_text.strip().lower())
        if kind is None:
            raise _Bad(
                "report.policy.type",
                f"{kind_text!r} is not 'sts', 'tlsa' or 'no-policy-found'",
                "RFC 8460 §4.4 allows only these three policy types.",
                "policy-type",
            )
        domain = get("policy-domain")
        if domain is not None:
            domain = _domain(_opt(domain, "policy-domain"))
        if domain is None and kind is not PolicyType.NO_POLICY_FOUND:
            raise _missing("policy-domain")
        policy_string = get("policy-string")
        policy_string = () if policy_string is None else _strings(policy_string, "policy-string")
        if kind is PolicyType.TLSA:
            policy_string = _tlsa_strings(policy_string)
        mx_host = get("mx-host")
        mx_host = () if not mx_host else tuple(map(str.lower, _strings(mx_host, "mx-host")))
    except _Bad as bad:
        raise bad.at("policy") from None
    summary = obj.get("summary")
    if summary.__class__ is not dict:
        raise _missing("summary") if summary is None else _wrong_type("summary", "an object", summary)
    try:
        if not _SUMMARY_KEYS.issuperset(summary):
            _check_extra(summary, _SUMMARY_KEYS, 4, limit)
        successful = summary.get("total-successful-session-count")
        if successful.__class__ is not int or successful < 0 or successful > _MAX_COUNT:
            successful = _count(summary, "total-successful-session-count")
        failed = summary.get("total-failure-session-count")
        if failed.__class__ is not int or failed < 0 or failed > _MAX_COUNT:
            failed = _count(summary, "total-failure-session-count")
    except _Bad as bad:
        raise bad.at("summary") from None
    raw_details = obj.get("failure-details")
    details: tuple[FailureDetail, ...] = ()
    if raw_details:
        if raw_details.__class__ is not list:
            raise _wrong_type("failure-details", "an array", raw_details)
        try:
            details = tuple([_detail(item, limit) for item in raw_details])
        except _Bad as bad:
            position = next(i for i, item in enumerate(raw_details) if not _detail_ok(item, limit))
            raise bad.at(f"[{position}]").at("failure-details") from None
    elif raw_details is not None and raw_details.__class__ is not list:
        raise _wrong_type("failure-details", "an array", raw_details)
    if successful < 0 or failed < 0:
        detailed = sum(detail.failed_session_count for detail in details)
        for key, value in (("total-successful-session-count", successful), ("total-failure-session-count", failed)):
            if value < 0:
                warnings.append(
                    Problem(
                        "report.summary.missing",
                        f"report.policies[{index}].summary.{key} is missing; read as 0 (or the sum of the failure "
                        "details)",
                        "RFC 8460 §4.4 requires both session counts in every summary.",
                        severity=Severity.WARNING,
                    )
                )
        successful = max(successful, 0)
        failed = detailed if failed < 0 else failed
    elif details:
        detailed = sum(detail.failed_session_count for detail in details)
        if detailed > failed:
            warnings.append(
                Problem(
                    "report.summary.inconsistent",
                    f"report.policies[{index}]: failure details count {detailed} sessions, the summary {failed}",
                    "The summary's total-failure-session-count should cover every failure detail.",
                    severity=Severity.WARNING,
                )
            )
    return _new_policy(kind, domain, policy_string, mx_host, successful, failed, details)


def _detail_ok(item: Any, limit: int) -> bool:
    try:
        _detail(item, limit)
    except _Bad:
        return False
    return True


def report_from_json(value: Any, raw: bytes = b"", *, max_depth: int = DEFAULT_LIMITS.max_depth) -> TlsRptReport:
    """Normalise an already decoded JSON value (see :func:`parse_report` for the rules)."""
    try:
        return _report(value, raw, max_depth)
    except _Bad as bad:
        if bad.code == "report.field.type" and isinstance(value, dict | list) and _depth_exceeds(value, max_depth):
            raise _depth_error(max_depth) from None  # too deep where a value of another shape was due
        raise bad.error() from None
    except _Depth:
        raise _depth_error(max_depth) from None


def _report(value: Any, raw: bytes, limit: int) -> TlsRptReport:
    if value.__class__ is not dict:
        raise _wrong_type(None, "a JSON object", value).at("the report")
    try:
        if not _REPORT_KEYS.issuperset(value):
            _check_extra(value, _REPORT_KEYS, 1, limit)
        get = value.get
        organization = get("organization-name")
        if organization.__class__ is str:
            organization = organization.strip()
        elif organization is not None:
            raise _wrong_type("organization-name", "a string", organization)
        if not organization:
            raise _missing("organization-name")
        report_id = get("report-id")
        report_id = "" if report_id is None else (_opt(report_id, "report-id") or "")
        contact = get("contact-info")
        if contact is not None:
            contact = _opt(contact, "contact-info")
        date_range = get("date-range")
        if date_range.__class__ is not dict:
            raise _missing("date-range") if date_range is None else _wrong_type("date-range", "an object", date_range)
        warnings: list[Problem] = []
        try:
            if not _RANGE_KEYS.issuperset(date_range):
                _check_extra(date_range, _RANGE_KEYS, 2, limit)
            start = _timestamp(date_range, "start-datetime", warnings)
            end = _timestamp(date_range, "end-datetime", warnings)
        except _Bad as bad:
            raise bad.at("date-range") from None
        if end < start:
            raise _Bad(
                "report.date_range.order",
                f"ends ({_iso(end)}) before it starts ({_iso(start)})",
                "Give start-datetime, then a later end-datetime.",
                "date-range",
            )
        entries = value.get("policies")
        if entries.__class__ is not list:
            raise _missing("policies") if entries is None else _wrong_type("policies", "an array", entries)
        policies = []
        for index, entry in enumerate(entries):
            try:
                policies.append(_policy(entry, index, limit, warnings))
            except _Bad as bad:
                raise bad.at(f"[{index}]").at("policies") from None
    except _Bad as bad:
        raise bad.at("report") from None
    return _new_report(organization, report_id, contact, start, end, tuple(policies), raw, tuple(warnings))


def parse_report(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> TlsRptReport:
    """Read one report body: gzip (by its magic bytes) or JSON; raise :class:`ReportParseError`.

    ``limits`` caps the input, the gzip members and decompressed size, and the JSON size and
    depth, so the work is linear in the input and bounded. Values are bounded too: a session
    count is 0 to :data:`MAX_SESSION_COUNT` (10^12, ``report.count.range``), and a date-time
    falls between 1970-01-01 and 9998-12-31 in UTC (``report.date.range``; an offset that
    moves it out of ``datetime``'s range, as in ``9999-12-31T23:59:59-23:59``, is refused the
    same way, never raised as ``OverflowError``).
    """
    if len(data) > limits.max_input:
        raise _error(
            "report.too_large",
            f"the report is larger than {limits.max_input} bytes",
            "A TLSRPT report is a few KiB; check that this is a report.",
        )
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, limits.max_decompressed, limits.max_gzip_members)
    head = data[:64].lstrip()
    if head[:1] != b"{":
        if not head:
            raise _error("report.empty", "the report is empty", "Send the report JSON, plain or gzip-compressed.")
        if head[:1] != b"[" and not head.startswith(b"\xef\xbb\xbf"):
            raise _error(
                "report.format.unknown",
                "the data is neither JSON nor gzip",
                "Give the report itself (.json or .json.gz); e-mails go through the mail reader.",
            )
    return report_from_json(_load_json(data, limits), data, max_depth=limits.max_depth)


# --- flat rows: what analysis and stores work on ----------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One policy of one report, flattened: the unit of success-rate analysis."""

    day: date
    organization_name: str
    policy_type: str
    policy_domain: str | None
    total_successful: int
    total_failure: int


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One failure detail, flattened with the report and policy it belongs to."""

    day: date
    organization_name: str
    policy_type: str
    policy_domain: str | None
    result_type: str
    failed_session_count: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_ip: str | None = None
    failure_reason_code: str | None = None


def report_rows(report: TlsRptReport) -> tuple[list[PolicyRow], list[FailureRow]]:
    """The policy and failure rows of one report."""
    policies: list[PolicyRow] = []
    failures: list[FailureRow] = []
    day, org = report.day, report.organization_name
    for policy in report.policies:
        kind = policy.policy_type.value
        policies.append(PolicyRow(day, org, kind, policy.policy_domain, policy.total_successful, policy.total_failure))
        failures.extend(
            FailureRow(
                day,
                org,
                kind,
                policy.policy_domain,
                str(detail.result_type),
                detail.failed_session_count,
                detail.sending_mta_ip,
                detail.receiving_mx_hostname,
                detail.receiving_ip,
                detail.failure_reason_code,
            )
            for detail in policy.failure_details
        )
    return policies, failures


# --- roll-ups: the rows summed per the keys the analysis reports on ---------------------------


# Plain tuples, not named ones: a summary reads tens of thousands of them, and exact tuples of
# strings, numbers and dates drop out of the garbage collector's bookkeeping (named ones do not).

DayTotal: TypeAlias = tuple[str | None, date, str, int, int]
"""Sessions of one policy domain, day and policy type: ``(policy_domain, day, policy_type,
successful, failed)``."""

SenderTotal: TypeAlias = tuple[str | None, str, int, int, date | None, date | None]
"""Sessions of one policy domain and sending organisation: ``(policy_domain, organization_name,
successful, failed, first_failed, last_failed)``; the first and last day on which a policy
summary counted failed sessions (``None`` when none did)."""

FailureTotal: TypeAlias = tuple[str | None, str, str, str | None, int, date, date, int]
"""Failed sessions of one policy domain and sending organisation with one value of one
failure-detail field: ``(policy_domain, organization_name, kind, value, failed, first_day,
last_day, first_seen)``. ``kind`` is ``result_type``, ``sending_ip``, ``mx`` (the receiving MX
host name, else its IP) or ``reason`` (a failure-reason-code); ``value`` is ``None`` when the
field is absent (never for ``result_type`` and ``reason``). ``first_day``/``last_day`` span the
details counted; ``first_seen`` orders the values of one domain and sender by first appearance
(only its order means something)."""

DayTwice: TypeAlias = tuple[str | None, date, int, int]
"""Sessions of one policy domain and day that reports counted twice, under both a ``tlsa`` and an
``sts`` result for that domain in the same report, as the ``sts`` results counted them:
``(policy_domain, day, successful, failed)``. The analysis counts them once
(``mtasts.report.analysis.count_once``: docs/report.md, "Sessions counted once")."""

SenderTwice: TypeAlias = tuple[str | None, str, int, int]
"""The same per policy domain and sending organisation: ``(policy_domain, organization_name,
successful, failed)``."""


@dataclass(frozen=True, slots=True)
class Rollup:
    """Policy and failure rows summed per the keys the analysis reports on: what a store computes
    in the database, so that a summary never walks every row (see ``mtasts.report.analysis``)."""

    days: tuple[DayTotal, ...] = ()
    senders: tuple[SenderTotal, ...] = ()
    failures: tuple[FailureTotal, ...] = ()
    # what of ``days`` (its ``sts`` rows) and of ``senders`` was counted twice: see DayTwice
    days_twice: tuple[DayTwice, ...] = ()
    senders_twice: tuple[SenderTwice, ...] = ()
