"""Coverage-guided fuzzing of every parser that reads untrusted input (atheris / libFuzzer).

    pip install atheris
    python fuzz/fuzz_parsers.py policy -max_total_time=60
    python fuzz/fuzz_parsers.py record|tlsrpt|rrset|report -max_total_time=60
    python fuzz/fuzz_parsers.py report CORPUS_DIR ../shared/tlsrpt-samples/google   # with seeds

The contract under test: any input gives a value or the parser's ``ParseError``, never another
exception, and a parsed value serialises and parses back to itself. A crash is a bug.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from mtasts.core.policy import parse_policy
    from mtasts.core.problems import ParseError
    from mtasts.core.record import parse_sts_record, select_sts_record
    from mtasts.core.tlsrpt_record import parse_tlsrpt_record
    from mtasts.core.tlsrpt_report import ReportLimits, parse_report


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


TARGETS = {"policy": _policy, "record": _record, "tlsrpt": _tlsrpt, "rrset": _rrset, "report": _report}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
