"""Languages of the web pages: which one a request gets, and its message catalogue.

The page texts are gettext messages (``_()`` in the templates, :func:`N_` in Python); the
English text is the message id, so English needs no catalogue. Japanese comes from
``locale/ja/LC_MESSAGES/mtasts.mo``, compiled from the ``.po`` beside it and shipped in the
package (``pybabel compile -d src/mtasts/web/locale -D mtasts``; tests/web/test_catalogue.py
fails when the two differ or when a message has no translation). Codes, JSON keys and logs
stay English.

The choice (:func:`choose_language`) is pure: an explicit ``?lang=`` first, then the ``lang``
cookie the switch sets, then the browser's ``Accept-Language`` (RFC 9110 §12.5.4), then the
server's default.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "COOKIE",
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "Language",
    "Reason",
    "choose_language",
    "parse_accept_language",
    "translations",
]

DOMAIN = "mtasts"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
COOKIE = "lang"


@dataclass(frozen=True, slots=True)
class Language:
    """A language the pages are written in: its tag (``html lang``) and its own name, which
    the switch shows (a reader who does not know English finds 日本語 written as such)."""

    tag: str
    name: str


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English"),
    "ja": Language("ja", "日本語"),
}


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue without translating it here: for tables of texts
    translated later, where the request's language is known."""
    return message


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a page cannot be shown, as a message of the pages' catalogue: its English id (marked
    with :func:`N_` where it is written) and the values of its placeholders. ``str()`` is the
    English sentence (the JSON's ``message``: the API stays English); :meth:`text` is the
    sentence in a page's language. Values are data (a number, what was typed), never translated."""

    message: str
    values: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message % self.values if self.values else self.message

    def text(self, gettext: Callable[[str], str]) -> str:
        translated = gettext(self.message)
        if not self.values:
            return translated
        try:
            return translated % self.values
        except (KeyError, ValueError, TypeError):  # a damaged catalogue entry: keep the English
            return str(self)


def parse_accept_language(header: str) -> list[tuple[str, float]]:
    """``Accept-Language`` as (primary language subtag, quality), best first; malformed
    entries are skipped (a header is a hint, never an error)."""
    ranges: list[tuple[str, float, int]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = -1.0
        if not 0.0 < quality <= 1.0:
            continue  # q=0 means "not this one"; out of range is malformed
        ranges.append((tag.split("-")[0], quality, position))
    ranges.sort(key=lambda r: (-r[1], r[2]))
    return [(tag, quality) for tag, quality, _ in ranges]


def choose_language(query: str | None, cookie: str | None, accept_language: str | None, default: str) -> str:
    """The language of one response: ``?lang=``, else the cookie, else the best supported
    ``Accept-Language`` entry, else ``default`` (``*`` in the header means "any": the default)."""
    for explicit in (query, cookie):
        if explicit is not None and explicit.lower() in LANGUAGES:
            return explicit.lower()
    for tag, _ in parse_accept_language(accept_language or ""):
        if tag in LANGUAGES:
            return tag
        if tag == "*":
            break
    return default


@cache
def translations(tag: str) -> gettext.NullTranslations:
    """The catalogue of ``tag`` (English: the message ids themselves). Raises ``ValueError`` for
    a language without one: a missing ``.mo`` in an installed package is a packaging bug."""
    if tag not in LANGUAGES:
        raise ValueError(f"no pages in language {tag!r}")
    if tag == "en":
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[tag])
    except OSError as exc:
        raise ValueError(f"the {tag!r} message catalogue is missing from {LOCALE_DIR}: {exc}") from exc
