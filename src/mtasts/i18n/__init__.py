"""Languages of what mtasts says about a domain: finding messages and fixes, the sender's
verdict, lint problems and the check's text output, in English and Japanese.

The checks write their sentences in English (the tables of :mod:`mtasts.check.analysis`,
:mod:`mtasts.core.verdict`, the parsers' problems): English is the source and stays what the
JSON output, the logs and the codes use. Each sentence *shape* is a gettext message of the
``findings`` catalogue (:mod:`mtasts.i18n.messages`), its variable parts ``%(name)s``
placeholders, e.g. ``the MX lookup of %(domain)s failed: %(detail)s``. :meth:`Translator.text`
recognises a finished English sentence by its shape, translates the shape with the stdlib
:mod:`gettext` (the compiled ``.mo`` shipped under ``locale/``) and puts the parts back; a part
that is itself a sentence (``detail``, ``reason``, ``fix``, ``blocked``) is translated the same
way, so "the MX lookup of D failed: the nameserver answered SERVFAIL" is translated whole. Names,
addresses, dates, certificate subjects and what a server said stay as they were. What a system
said (``error``: the operating system's reason, a library's message) is translated when the
catalogue knows it (an OS reason in any case, after ``[Errno N]`` too) and otherwise kept as data.

Recognition is linear: a shape is its literal pieces in order, found with ``str.find``, no
regular expression and no backtracking, so a hostile TXT record quoted in a message costs no
more than its length. A sentence no shape fits stays English (``Translated.complete`` is
``False``; tests/i18n/test_findings.py fails when a lab scenario produces one).

The language: ``--lang`` (:func:`set_language`, the CLI's global option), else ``LC_ALL``,
``LC_MESSAGES``, ``LANG`` (:func:`language_from_environment`); the web pages pass their own.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "Translated",
    "Translator",
    "current",
    "language_from_environment",
    "set_language",
    "translator",
]

DOMAIN = "findings"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ja")
SENTENCE_PLACEHOLDERS = frozenset({"detail", "reason", "fix", "blocked", "message"})
"""Placeholders whose value is itself a sentence of the catalogue (translated in turn); every
other placeholder holds data (a name, a number, what a server said) and is left as it is."""

REASON_PLACEHOLDERS = frozenset({"error", "errors"})
"""Placeholders holding what a system said: the operating system's reason ("Connection
refused"), a library's message, or a sentence of ours quoted by another ("cannot send the
digest: cannot reach H: ..."). Translated when the catalogue knows all of it, else left as it
is, as data: an unknown reason never makes the sentence around it English."""

NUMBER_PLACEHOLDERS = frozenset(
    {"count", "days", "seconds", "status", "length", "limit", "port", "line", "column", "max_age", "position"}
)
"""Placeholders that hold a number only: a shape with one never swallows a name before it
("_mta-sts.example: 2 TXT records ..." is not "2 TXT records" with count "_mta-sts.example: 2")."""

NAME_PLACEHOLDERS = frozenset({"subject", "host", "name", "url", "domain", "address", "pattern", "tlsa_host"})
"""Placeholders that hold one name (a host, a URL, a record): never white space, so a list
("host: reason; host: reason") is never read as one name and one long reason."""

OPTION_PLACEHOLDERS = frozenset({"option"})
"""Placeholders that hold a command-line option's name after its ``--`` (letters, digits and
``-``): so "--store: sqlite: needs a path" is the "--store" shape around its reason, not option
"store:" with value "sqlite"."""

CHAR_PLACEHOLDERS = frozenset({"char"})
"""Placeholders that hold one character as Python quotes it (``' '``, ``'é'``, ``'\\x00'``): so
"mx 'a b': ' ' at position 4 ..." is the mx shape around a character shape, not one character
that begins with "mx"."""
_MAX_QUOTED_CHAR = 12  # the longest repr of one character: '\U000e0001'

MAX_TEXT = 100_000  # longer text is not a sentence of ours: left as it is, unread
_MAX_DEPTH = 6


def language_from_environment(environ: Mapping[str, str]) -> str:
    """``ja`` or ``en`` from the POSIX locale variables: the first set of ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG`` decides (``ja_JP.UTF-8`` → ``ja``; ``C``, ``POSIX`` and any
    language we have no catalogue for → ``en``)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "").strip()
        if value:
            tag = value.split(".")[0].split("@")[0].split("_")[0].split("-")[0].lower()
            return tag if tag in LANGUAGES else "en"
    return "en"


_chosen: list[str] = []


def set_language(tag: str | None) -> None:
    """The language of this process's output (``None``: back to the environment's)."""
    if tag is not None and tag not in LANGUAGES:
        raise ValueError(f"no catalogue for {tag!r} (choose from {', '.join(LANGUAGES)})")
    _chosen[:] = [] if tag is None else [tag]


def current(environ: Mapping[str, str] | None = None) -> Translator:
    """The translator of :func:`set_language`'s choice, else of the environment's locale."""
    if _chosen:
        return translator(_chosen[0])
    if environ is None:
        import os  # noqa: PLC0415 (only the CLI reads the environment)

        environ = os.environ
    return translator(language_from_environment(environ))


@dataclass(frozen=True, slots=True)
class Translated:
    """A translation and whether all of it was recognised (``False``: some of it is English)."""

    text: str
    complete: bool


@dataclass(frozen=True, slots=True)
class _Shape:
    """One message id cut at its placeholders: ``literals[0] %(names[0])s literals[1] ...``."""

    message_id: str
    literals: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def weight(self) -> int:
        return sum(len(piece) for piece in self.literals)

    def match(self, text: str) -> dict[str, str] | None:
        """The placeholders' values if ``text`` has this shape (leftmost split), else ``None``."""
        first, last = self.literals[0], self.literals[-1]
        if not self.names:
            return {} if text == first else None
        if not text.startswith(first) or not text.endswith(last) or len(text) < len(first) + len(last) + 1:
            return None
        end = len(text) - len(last)
        cursor = len(first)
        values: dict[str, str] = {}
        for name, literal in zip(self.names[:-1], self.literals[1:-1], strict=True):
            found = text.find(literal, cursor + 1, end)
            if found < 0:
                return None
            values[name] = text[cursor:found]
            cursor = found + len(literal)
        if cursor >= end:
            return None
        values[self.names[-1]] = text[cursor:end]
        for name in NUMBER_PLACEHOLDERS.intersection(values):
            if not values[name].replace(".", "").isdigit():
                return None
        for name in NAME_PLACEHOLDERS.intersection(values):
            if any(c.isspace() for c in values[name]):
                return None
        for name in OPTION_PLACEHOLDERS.intersection(values):
            if not values[name].replace("-", "").isalnum():
                return None
        for name in CHAR_PLACEHOLDERS.intersection(values):
            value = values[name]
            if len(value) > _MAX_QUOTED_CHAR or value[0] not in "'\"" or value[-1] != value[0]:
                return None
        return values


def _shape(message_id: str) -> _Shape:
    literals: list[str] = []
    names: list[str] = []
    rest = message_id
    while True:
        start = rest.find("%(")
        if start < 0:
            literals.append(rest)
            break
        close = rest.find(")s", start)
        if close < 0:
            raise ValueError(f"bad placeholder in {message_id!r}")
        literals.append(rest[:start])
        names.append(rest[start + 2 : close])
        rest = rest[close + 2 :]
    if any(not piece for piece in literals[1:-1]):
        raise ValueError(f"two placeholders with nothing between them cannot be told apart: {message_id!r}")
    return _Shape(message_id, tuple(literals), tuple(names))


class Translator:
    """Sentences of one language (see the module). English is the identity."""

    def __init__(
        self,
        tag: str,
        catalogue: gettext.NullTranslations,
        shapes: tuple[_Shape, ...],
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.tag = tag
        self.catalogue = catalogue
        self._shapes = shapes
        self._reasons = dict(reasons or {})  # an OS reason in lower case -> its message id

    def gettext(self, message: str) -> str:
        return self.catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.catalogue.ngettext(singular, plural, count)

    def text(self, english: str) -> str:
        """``english`` in this language (as much of it as the catalogue knows)."""
        return self.translate(english).text

    def translate(self, english: str, depth: int = 0) -> Translated:
        if self.tag == "en" or not english or len(english) > MAX_TEXT or depth > _MAX_DEPTH:
            return Translated(english, self.tag == "en")
        for shape in self._shapes:
            values = shape.match(english)
            if values is None:
                continue
            complete = True
            for name in shape.names:
                if name in SENTENCE_PLACEHOLDERS:
                    inner = self.translate(values[name], depth + 1)
                    values[name] = inner.text
                    complete = complete and inner.complete
                elif name in REASON_PLACEHOLDERS:
                    inner = self.translate(values[name], depth + 1)
                    if inner.complete:
                        values[name] = inner.text
            translated = self.catalogue.gettext(shape.message_id)
            try:
                return Translated(translated % values if shape.names else translated, complete)
            except (KeyError, ValueError, TypeError):  # a damaged catalogue entry: keep the English
                return Translated(english, False)
        reason = self._os_reason(english)
        if reason is not None:
            return Translated(reason, True)
        if "; " in english:  # a list of sentences ("host: reason; host: reason")
            parts = [self.translate(part, depth + 1) for part in english.split("; ")]
            return Translated("; ".join(p.text for p in parts), all(p.complete for p in parts))
        return Translated(english, False)

    def _os_reason(self, english: str) -> str | None:
        """The operating system's reason in this language, however the sentence quoting it
        spells it: as ``os.strerror`` says it, lower-cased (some modules do, inside a sentence)
        or after Python's ``[Errno N]`` (kept: a code)."""
        prefix, reason = "", english
        if reason.startswith("[Errno "):
            close = reason.find("] ", 7)
            if close < 0 or not reason[7:close].isdigit():
                return None
            prefix, reason = reason[: close + 2], reason[close + 2 :]
        message = self._reasons.get(reason.lower())
        return None if message is None else prefix + self.catalogue.gettext(message)


@cache
def translator(tag: str) -> Translator:
    """The translator of ``tag``; ``ValueError`` for a language without a catalogue (a missing
    ``.mo`` in an installed package is a packaging bug, said as such)."""
    from mtasts.i18n.messages import MESSAGES, OS_REASONS  # noqa: PLC0415

    if tag not in LANGUAGES:
        raise ValueError(f"no catalogue for {tag!r} (choose from {', '.join(LANGUAGES)})")
    # the most specific shape first: more literal text, then fewer placeholders
    shapes = tuple(sorted((_shape(m) for m in MESSAGES), key=lambda s: (-s.weight, len(s.names))))
    reasons = {reason.lower(): reason for reason in OS_REASONS}
    if tag == "en":
        return Translator(tag, gettext.NullTranslations(), shapes, reasons)
    try:
        catalogue = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[tag])
    except OSError as exc:
        raise ValueError(f"the {tag!r} findings catalogue is missing from {LOCALE_DIR}: {exc}") from exc
    return Translator(tag, catalogue, shapes, reasons)
