"""Shared fixtures of the language tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mtasts.i18n import set_language


@pytest.fixture(autouse=True)
def _language_of_the_environment() -> Iterator[None]:
    """Every test starts and ends with the language read from the environment, so a test that
    sets one never leaks it into the next."""
    set_language(None)
    yield
    set_language(None)
