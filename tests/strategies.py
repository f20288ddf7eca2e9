"""Hypothesis strategies for the core's values, in one place."""

from __future__ import annotations

import base64
import gzip
import json

from hypothesis import strategies as st

from mtasts.core.policy import MAX_AGE_LIMIT, Mode, Policy
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord
from tests.hostile import REPORT_BODY, nested_mime

_LETTERS_DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@st.composite
def labels(draw: st.DrawFn) -> str:
    """One RFC 5321 label: letters and digits, inner hyphens, 1-63 characters."""
    first = draw(st.sampled_from(_LETTERS_DIGITS))
    middle = draw(st.text(alphabet=_LETTERS_DIGITS + "-", max_size=20))
    last = draw(st.sampled_from(_LETTERS_DIGITS))
    return first + (middle + last if middle or draw(st.booleans()) else "")


@st.composite
def host_names(draw: st.DrawFn) -> str:
    """A host name whose last label is not all-numeric (that would be an address)."""
    parts = draw(st.lists(labels(), min_size=1, max_size=4))
    tld = draw(labels().filter(lambda label: not label.isdigit()))
    return ".".join([*parts, tld])


mx_patterns = st.one_of(host_names(), host_names().map(lambda name: "*." + name))

ext_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda name: name not in ("version", "mode", "max_age", "mx")
)
policy_ext_values = st.from_regex(r"[\x21-\x7e\u00e9\u4e2d]+( +[\x21-\x7e\u00e9\u4e2d]+)*", fullmatch=True)
record_ext_values = st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]+", fullmatch=True)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    mode = draw(st.sampled_from(list(Mode)))
    minimum = 0 if mode is Mode.NONE else 1
    return Policy(
        mode=mode,
        max_age=draw(st.integers(0, MAX_AGE_LIMIT)),
        mx=tuple(draw(st.lists(mx_patterns, min_size=minimum, max_size=5))),
        extensions=draw(st.dictionaries(ext_names, policy_ext_values, max_size=3)),
    )


@st.composite
def sts_records(draw: st.DrawFn) -> StsRecord:
    return StsRecord(
        id=draw(st.text(alphabet=_LETTERS_DIGITS, min_size=1, max_size=32)),
        extensions=draw(
            st.dictionaries(ext_names.filter(lambda n: n not in ("v", "id")), record_ext_values, max_size=3)
        ),
    )


@st.composite
def tlsrpt_records(draw: st.DrawFn) -> TlsRptRecord:
    mailto = host_names().map(lambda host: f"mailto:tlsrpt@{host}")
    https = host_names().map(lambda host: f"https://{host}/tlsrpt")
    return TlsRptRecord(
        rua=tuple(draw(st.lists(st.one_of(mailto, https), min_size=1, max_size=3))),
        extensions=draw(
            st.dictionaries(ext_names.filter(lambda n: n not in ("v", "rua")), record_ext_values, max_size=2)
        ),
    )


# --- hostile shapes of TLSRPT report bodies and report e-mails --------------------------------
# Each shape below once broke the report parsers (issue #8): a date whose offset leaves
# datetime's range (OverflowError), many gzip members (quadratic), deep MIME nesting
# (RecursionError), a header folded over very many lines (quadratic). The strategies make them
# at the sizes that matter, so the property tests would have caught each.


_EDGE_MOMENTS = [
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59Z",
    "9998-12-31T23:59:59Z",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00:00+00:01",
    "0000-01-01T00:00:00Z",
    "2026-11-28T00:00:00+24:00",
    "2026-11-28T00:00:00-99:99",
    "2026-02-30T00:00:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T00:00:00.123456789Z",
    "99999-01-01T00:00:00Z",
]


@st.composite
def extreme_datetimes(draw: st.DrawFn) -> str:
    """RFC 3339-shaped date-times at the edges: any year 0-9999, offsets up to ±23:59 (and past
    them), impossible days and times, plus the values that broke the parser."""
    if draw(st.booleans()):
        return draw(st.sampled_from(_EDGE_MOMENTS))
    year = draw(st.one_of(st.integers(0, 40), st.integers(1960, 1980), st.integers(9990, 9999), st.integers(0, 9999)))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 60)), draw(st.integers(0, 61))
    zone = draw(
        st.one_of(
            st.just("Z"),
            st.just(""),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 99),
                st.integers(0, 99),
            ),
        )
    )
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{zone}"


def report_with_dates(start: str, end: str) -> bytes:
    """The template report with the given date-range, as JSON bytes."""
    obj = json.loads(REPORT_BODY)
    obj["date-range"] = {"start-datetime": start, "end-datetime": end}
    return json.dumps(obj).encode()


@st.composite
def gzip_member_bodies(draw: st.DrawFn) -> tuple[bytes, int]:
    """A report split across several gzip members, with empty members mixed in; and the
    number of members (may be above ``ReportLimits.max_gzip_members``)."""
    pieces = draw(st.integers(1, 8))
    step = -(-len(REPORT_BODY) // pieces)
    members = [gzip.compress(REPORT_BODY[i : i + step], mtime=0) for i in range(0, len(REPORT_BODY), step)]
    empties = draw(st.integers(0, 120))
    at = draw(st.integers(0, len(members)))
    members[at:at] = [gzip.compress(b"", mtime=0)] * empties
    padding = b"\x00" * draw(st.sampled_from([0, 0, 1, 512]))
    return b"".join(members) + padding, len(members)


_CONTAINERS = ("multipart/mixed", "multipart/report", "multipart/digest", "message/rfc822")


@st.composite
def nested_messages(draw: st.DrawFn) -> tuple[bytes, int]:
    """A report e-mail whose report part sits under ``depth`` levels of ``multipart/*`` and
    ``message/rfc822`` (the top-level message counts as one); and that depth. With a random
    RFC 2231 boundary parameter the fast reader gives up and the standard library reads it."""
    depth = draw(st.one_of(st.integers(1, 40), st.sampled_from([31, 32, 33, 64, 1000, 3000])))
    kinds = draw(st.lists(st.sampled_from(_CONTAINERS), min_size=1, max_size=8))  # repeated down the levels
    encoded = draw(st.booleans())
    attachment = base64.encodebytes(gzip.compress(REPORT_BODY, mtime=0))
    inner = (
        b"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="r.json.gz"\r\n\r\n' + attachment
    )
    return nested_mime([kind.encode() for kind in kinds], depth, inner, encoded=encoded), depth


@st.composite
def folded_messages(draw: st.DrawFn) -> tuple[bytes, int]:
    """A report e-mail one of whose headers (of the message, or of the report part) is folded
    over many lines; and the size of that header field in bytes."""
    lines = draw(st.one_of(st.integers(0, 50), st.integers(10_000, 30_000), st.sampled_from([1_500_000])))
    fold = draw(st.sampled_from([b"\r\n y", b"\r\n\ty", b"\r\n ", b"\n y"]))
    field = b"X-Folded: x" + fold * lines
    attachment = base64.encodebytes(gzip.compress(REPORT_BODY, mtime=0))
    where = draw(st.sampled_from(["message", "part"]))
    part_head = b"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
    if where == "part":
        part_head += field + b"\r\n"
    top = b"From: r@sender.example\r\n" + (field + b"\r\n" if where == "message" else b"")
    message = (
        top
        + b"Content-Type: multipart/report; report-type=tlsrpt; boundary=B\r\n\r\n--B\r\n"
        + part_head
        + b"\r\n"
        + attachment
        + b"\r\n--B--\r\n"
    )
    return message, len(field)
