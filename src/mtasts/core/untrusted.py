"""Text from strangers, made safe to show as text.

Every string field of a TLS report (RFC 8460 §4: anyone may send one) and every name or reply a
checked domain's servers hand back is written by someone else. Shown raw, a control character
is an instruction to whatever displays it: an ESC sequence recolours or clears a terminal or
plants a hyperlink, a line break forges the next line of a log or a mail, a BiDi override
(U+202E) makes ``gro.elpmaxe`` read ``example.org``. :func:`printable` turns each such
character into its visible escape, the way ``repr`` writes it, and leaves every printable
character, in any script, as it is.
"""

from __future__ import annotations

__all__ = ["printable"]


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character Python does not call printable (controls, line and
    paragraph separators, format characters such as the BiDi overrides, surrogates, unassigned
    code points; the space excepted) written as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, so
    the result is one line that displays as it reads."""
    if text.isprintable():  # almost always: one C-speed pass
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
