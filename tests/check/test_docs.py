"""docs/check.md lists every finding code the inspector can report."""

from __future__ import annotations

from pathlib import Path

from mtasts.core.findings import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "check.md"


def test_every_code_is_documented() -> None:
    text = DOC.read_text("utf-8")
    missing = [code for code in CATALOGUE if f"`{code}`" not in text]
    assert not missing, f"docs/check.md does not list {missing}"
