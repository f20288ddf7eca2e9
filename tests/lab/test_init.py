"""The curated public surface of ``mtasts.lab``."""

from __future__ import annotations

import mtasts.lab


def test_all_is_unique_and_importable() -> None:
    assert len(set(mtasts.lab.__all__)) == len(mtasts.lab.__all__)
    for name in mtasts.lab.__all__:
        assert getattr(mtasts.lab, name) is not None
