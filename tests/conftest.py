"""Fixtures and helpers shared by the whole suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
VECTORS = SHARED / "vectors"
TLSRPT_SAMPLES = SHARED / "tlsrpt-samples"
ABSENT_REASON = "../shared is absent: the shared test material exists only in the project's workspace"


def vector_params(name: str, *, where: Any = None) -> list[Any]:
    """One ``pytest.param`` per vector of ``../shared/vectors/<name>`` (id = the vector's id),
    filtered by ``where``; a single skipped param saying why when the file is absent."""
    path = VECTORS / name
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT_REASON), id="shared-absent")]
    vectors: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))["vectors"]
    return [pytest.param(v, id=v["id"]) for v in vectors if where is None or where(v)]


def require_shared(path: Path) -> None:
    """Skip the calling test, with the reason, when ``path`` under ``../shared`` is absent."""
    if not path.exists():
        pytest.skip(ABSENT_REASON)
