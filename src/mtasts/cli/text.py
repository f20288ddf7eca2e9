"""Words in command output: counts with the right plural, so no command prints "1 domains"."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` and the noun that agrees with it: ``plural(1, "domain")`` is ``"1 domain"``,
    ``plural(2, "domain")`` is ``"2 domains"``; irregular nouns give their plural
    (``plural(2, "reply", "replies")``)."""
    noun = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {noun}"
