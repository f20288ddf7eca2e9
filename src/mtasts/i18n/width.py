"""How many terminal columns text takes: two for a wide (East Asian) character, one otherwise.

Japanese output lines up its labels and wraps its help by this (a Japanese character is two
columns wide in a terminal), where ``len()`` would count it as one; shared by the help layout
(:mod:`mtasts.i18n.help`) and the commands' aligned labels (:mod:`mtasts.cli.output`).
"""

from __future__ import annotations

import unicodedata

__all__ = ["cells", "wide"]


def wide(char: str) -> bool:
    """Whether ``char`` takes two terminal columns (East Asian Wide or Fullwidth)."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def cells(text: str) -> int:
    """The columns ``text`` takes on a terminal."""
    return sum(2 if wide(c) else 1 for c in text)
