"""Reading a list of domains to check: comments, blank lines and repeats, as a bulk user means them.

``ENFORCE-OK.example``, ``enforce-ok.example.`` and ``bücher.example`` / ``xn--bcher-kva.example``
are one domain each: DNS compares names case-insensitively, the trailing dot is the root, and
IDNA maps U-labels to one A-label form. Checking them twice would cost twice and count twice in
every summary. A name that cannot be normalised is kept as written, so the inspector reports it
as invalid instead of it disappearing from the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mtasts.core.hostname import to_alabel

__all__ = ["DomainList", "domain_key", "domain_text"]


def domain_text(line: str) -> str:
    """What a line of a list names: the text before any '#', stripped ("" for none)."""
    return line.split("#", 1)[0].strip()


def domain_key(text: str) -> str:
    """The form two spellings of one domain share: lower-case A-labels, no trailing dot; a name
    IDNA cannot convert is its own key (stripped of surrounding space)."""
    name = text.strip()
    return to_alabel(name) or name


@dataclass(slots=True)
class DomainList:
    """The domains of one run in input order, each once, fed line by line (so a caller can
    stream a file through it). ``repeats`` counts the lines that named a domain already seen
    (or already done: :meth:`mark_done`), ``elsewhere`` those another shard checks, ``lines``
    every line that named a domain.

    Only the keys of the domains this run checks are kept (one ``str`` each in a set: about
    120 bytes per domain, ~120 MB for a million; measured in docs/check.md), so a shard of a
    huge list costs its share of the memory."""

    _seen: set[str] = field(default_factory=set)
    select: Callable[[str], bool] | None = None
    repeats: int = 0
    elsewhere: int = 0
    lines: int = 0

    def mark_done(self, keys: Iterable[str]) -> None:
        """Domains an earlier run has checked (``--resume``): met again, they are skipped."""
        self._seen.update(keys)

    def names(self, lines: Iterable[str]) -> Iterator[str]:
        """The new domains in ``lines`` ('#' starts a comment) that :attr:`select` keeps, each in
        its :func:`domain_key` form."""
        seen, select = self._seen, self.select
        for line in lines:
            text = domain_text(line)
            if not text:
                continue
            self.lines += 1
            key = domain_key(text)
            if select is not None and not select(key):
                self.elsewhere += 1
                continue
            if key in seen:
                self.repeats += 1
                continue
            seen.add(key)
            yield key
