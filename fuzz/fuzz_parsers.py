"""Coverage-guided fuzzing of every parser that reads untrusted input (atheris / libFuzzer).

    pip install atheris
    python fuzz/fuzz_parsers.py policy -max_total_time=60
    python fuzz/fuzz_parsers.py record|tlsrpt|rrset|report|mail|shapes -max_total_time=60
    python fuzz/fuzz_parsers.py report CORPUS_DIR ../shared/tlsrpt-samples/google   # with seeds

The contract under test: any input gives a value or the parser's ``ParseError``, never another
exception, and a parsed value serialises and parses back to itself. A crash is a bug.

``mail`` feeds raw bytes to :func:`mtasts.report.mail.parse_any` (e-mails and bare reports);
``shapes`` builds, from the fuzzer's bytes, the hostile shapes that once broke the report
parsers (issue #8): extreme dates and offsets, many gzip members, deep MIME nesting and long
header folds, at sizes a byte-level fuzzer would take ages to reach. Slowness is a bug too: run
with ``-timeout=2`` so that an input taking seconds (quadratic work) is reported like a crash.
``fuzz/make_seeds.py DIR`` writes seed inputs of those shapes for ``report`` and ``mail``::

    python fuzz/make_seeds.py fuzz/corpus
    python fuzz/fuzz_parsers.py mail fuzz/corpus/mail -max_len=200000 -timeout=2 -max_total_time=600
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shape builders live in tests/
from tests.hostile import nested_mime

with atheris.instrument_imports():
    from mtasts.core.policy import parse_policy
    from mtasts.core.problems import ParseError
    from mtasts.core.record import parse_sts_record, select_sts_record
    from mtasts.core.tlsrpt_record import parse_tlsrpt_record
    from mtasts.core.tlsrpt_report import ReportLimits, parse_report
    from mtasts.report.mail import parse_any


def _policy(data: bytes) -> None:
    try:
        policy = parse_policy(data)
    except ParseError:
        return
    assert parse_policy(policy.to_text()) == policy


def _with_prefix(data: bytes, prefix: str) -> str:
    """Half the inputs start with a valid prefix, so the fuzzer reaches the field grammar."""
    text = data[1:].decode("latin-1")
    return prefix + text if data[:1] and data[0] % 2 else text


def _record(data: bytes) -> None:
    text = _with_prefix(data, "v=STSv1; id=")
    try:
        record = parse_sts_record(text)
    except ParseError:
        return
    assert parse_sts_record(record.to_text()) == record


def _tlsrpt(data: bytes) -> None:
    text = _with_prefix(data, "v=TLSRPTv1; rua=")
    try:
        record = parse_tlsrpt_record(text)
    except ParseError:
        return
    assert parse_tlsrpt_record(record.to_text()) == record


def _rrset(data: bytes) -> None:
    records = [chunk.split(b"\x01") for chunk in data.split(b"\x00")]
    try:
        select_sts_record(records)
    except ParseError:
        return


def _report(data: bytes) -> None:
    try:
        parse_report(data, ReportLimits())
    except ParseError:
        return


def _mail(data: bytes) -> None:
    try:
        parse_any(data)
    except ParseError:
        return


_REPORT = (
    b'{"organization-name":"o","date-range":{"start-datetime":"%s","end-datetime":"%s"},'
    b'"policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},'
    b'"summary":{"total-successful-session-count":%d,"total-failure-session-count":0}}]}'
)
_CONTAINERS = (b"multipart/mixed", b"multipart/digest", b"message/rfc822", b"multipart/report")


def _moment(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A date-time at the edges: any year, month, day and time fields, any offset up to ±99:99."""
    year = fdp.ConsumeIntInRange(0, 10000)
    month, day, hour, minute, second = (fdp.ConsumeIntInRange(0, 99) for _ in range(5))
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    zone = fdp.ConsumeIntInRange(0, 3)
    if zone == 1:
        text += "Z"
    elif zone >= 2:
        text += f"{'+-'[zone - 2]}{fdp.ConsumeIntInRange(0, 99):02d}:{fdp.ConsumeIntInRange(0, 99):02d}"
    return text.encode()


def _shapes(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    count = fdp.ConsumeIntInRange(0, 2**64)
    body = _REPORT % (_moment(fdp), _moment(fdp), count)
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:  # the report itself, dates and count as drawn
        _report(body)
        return
    if kind == 1:  # many gzip members, empty or not
        cut = fdp.ConsumeIntInRange(0, len(body))
        members = [gzip.compress(body[:cut], mtime=0), gzip.compress(body[cut:], mtime=0)]
        members[1:1] = [gzip.compress(b"", mtime=0)] * fdp.ConsumeIntInRange(0, 300_000)
        _report(b"".join(members) + b"\0" * fdp.ConsumeIntInRange(0, 2))
        return
    attachment = b"Content-Type: application/tlsrpt+json\r\n\r\n" + body
    if kind == 2:  # deep nesting of containers, optionally with an RFC 2231 boundary
        depth, pattern = fdp.ConsumeIntInRange(0, 5000), fdp.ConsumeBytes(8) or b"\0"
        encoded, closed = fdp.ConsumeBool(), fdp.ConsumeBool()
        kinds = [_CONTAINERS[byte % len(_CONTAINERS)] for byte in pattern]
        _mail(nested_mime(kinds, depth, attachment, encoded=encoded, closed=closed))
        return
    # a header (of the message, or of the report part) folded over many lines
    fold = fdp.PickValueInList([b"\r\n y", b"\n\t", b"\r ", b"\r\n "])
    field = fdp.PickValueInList([b"Subject: x", b"Content-Type: multipart/mixed; boundary=B", b"X: y"])
    folded = field + fold * fdp.ConsumeIntInRange(0, 2_000_000) + b"\r\n"
    if fdp.ConsumeBool():
        _mail(b"From: a@b\r\n" + folded + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + attachment)
    else:
        _mail(b"From: a@b\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + folded + attachment[14:])


TARGETS = {
    "policy": _policy,
    "record": _record,
    "tlsrpt": _tlsrpt,
    "rrset": _rrset,
    "report": _report,
    "mail": _mail,
    "shapes": _shapes,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
