"""``printable``: someone else's text shown as it reads, every control written as its escape."""

from __future__ import annotations

import pytest

from mtasts.core.untrusted import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Example Sender", "Example Sender"),
        ("グーグル合同会社 ✉ Ünïcode", "グーグル合同会社 ✉ Ünïcode"),  # any script stays as written
        ("a\x1b[31mb", "a\\x1b[31mb"),  # ESC: a colour, a cleared screen, a hyperlink
        ("one\ntwo\r\nthree", "one\\x0atwo\\x0d\\x0athree"),  # a forged next line
        ("tab\there", "tab\\x09here"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),  # DEL and the C1 controls (U+009B: CSI)
        ("gro.\u202eelpmaxe", "gro.\\u202eelpmaxe"),  # a BiDi override
        ("line\u2028sep", "line\\u2028sep"),
        ("\U000e0041tag", "\\U000e0041tag"),  # a tag character (invisible)
        ("", ""),
    ],
)
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_the_result_is_one_printable_line() -> None:
    every = "".join(map(chr, range(0x2100)))
    assert printable(every).isprintable()
