"""Counts in output agree with their nouns (:mod:`mtasts.i18n.words`)."""

from mtasts.i18n.words import plural


def test_one_is_singular_and_others_plural() -> None:
    assert plural(1, "domain") == "1 domain"
    assert plural(0, "domain") == "0 domains"
    assert plural(2, "domain") == "2 domains"


def test_irregular_plural() -> None:
    assert plural(1, "reply", "replies") == "1 reply"
    assert plural(3, "reply", "replies") == "3 replies"
