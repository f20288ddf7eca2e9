"""Counted nouns: a count with the noun that agrees with it, so no output says "1 domains".

They are words of this layer, not of the command line: the check's workers (the lost-worker
warning of ``check -f``) count with them as the commands do, and the layers below the CLI may
import them. :func:`counted` is the translated form, through the plural pairs of
:data:`mtasts.i18n.messages.PLURALS` in the ``findings`` catalogue.
"""

from __future__ import annotations

from mtasts.i18n import current

__all__ = ["counted", "plural"]


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` and the noun that agrees with it: ``plural(1, "domain")`` is ``"1 domain"``,
    ``plural(2, "domain")`` is ``"2 domains"``; irregular nouns give their plural
    (``plural(2, "reply", "replies")``)."""
    noun = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {noun}"


def counted(count: int, singular: str, plural_form: str | None = None) -> str:
    """:func:`plural` in the language of ``--lang`` / ``LANG`` (:func:`mtasts.i18n.current`):
    English is :func:`plural`'s own words; another language the catalogue's plural of
    ``%(num)d singular`` (a pair of :data:`mtasts.i18n.messages.PLURALS`, e.g. "レポート 3 件")."""
    tr = current()
    if tr.tag == "en":
        return plural(count, singular, plural_form)
    forms = (f"%(num)d {singular}", f"%(num)d {plural_form or singular + 's'}")
    return tr.ngettext(*forms, count) % {"num": count}
