"""Reading a list of domains to check: comments, blank lines and repeats, as a bulk user means them.

``ENFORCE-OK.example``, ``enforce-ok.example.`` and ``bücher.example`` / ``xn--bcher-kva.example``
are one domain each: DNS compares names case-insensitively, the trailing dot is the root, and
IDNA maps U-labels to one A-label form. Checking them twice would cost twice and count twice in
every summary. A name that cannot be normalised is kept as written, so the inspector reports it
as invalid instead of it disappearing from the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mtasts.core.hostname import to_alabel

__all__ = ["DomainList", "domain_key"]


def domain_key(text: str) -> str:
    """The form two spellings of one domain share: lower-case A-labels, no trailing dot; a name
    IDNA cannot convert is its own key (stripped of surrounding space)."""
    name = text.strip()
    return to_alabel(name) or name


@dataclass(slots=True)
class DomainList:
    """The domains of one run in input order, each once, fed line by line (so a caller can
    stream a file through it). ``repeats`` counts the lines that named a domain already seen."""

    _seen: set[str] = field(default_factory=set)
    repeats: int = 0

    def names(self, lines: Iterable[str]) -> Iterator[str]:
        """The new domains in ``lines`` ('#' starts a comment), each in its :func:`domain_key` form."""
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            key = domain_key(text)
            if key in self._seen:
                self.repeats += 1
                continue
            self._seen.add(key)
            yield key
