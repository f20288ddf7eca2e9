"""The public API named in the foundation issue is importable from ``mtasts`` and documented."""

from __future__ import annotations

import mtasts

PUBLIC = {
    "parse_sts_record",
    "select_sts_record",
    "parse_policy",
    "mx_pattern_matches",
    "parse_tlsrpt_record",
    "ParseError",
    "Policy",
    "StsRecord",
    "TlsRptRecord",
    "Mode",
}


def test_public_names() -> None:
    assert set(mtasts.__all__) >= PUBLIC
    for name in mtasts.__all__:
        value = getattr(mtasts, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"
            assert value.__module__ == "mtasts"


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(mtasts.ParseError, ValueError)
    for name in ("PolicyParseError", "RecordParseError", "TlsRptRecordParseError", "NoRecordError"):
        assert issubclass(getattr(mtasts, name), mtasts.ParseError)


def test_version() -> None:
    assert mtasts.__version__.count(".") == 2
