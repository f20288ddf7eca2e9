"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Much of what mtasts writes to CSV comes from strangers: organisation names, failure reasons and
receiving hosts come from TLS reports anyone can send (mail, the HTTPS endpoint), and finding
messages quote what a remote MX or policy host said. A spreadsheet runs a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (and some run one after a tab or carriage return) as a formula,
so a report could make the administrator's spreadsheet fetch a URL or run a command ("CSV
injection", OWASP). Such text cells get a leading apostrophe, which spreadsheets show as text;
numbers and every other cell are written as they are, so the columns still sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["FORMULA_STARTS", "safe_cell", "safe_row"]

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value``, with a leading apostrophe if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Iterable[object]) -> list[object]:
    """:func:`safe_cell` of every cell of ``row``."""
    return [safe_cell(value) for value in row]
