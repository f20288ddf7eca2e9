"""The public names of the report modules exist, and only those are exported."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "mtasts.core.tlsrpt_report",
    "mtasts.report.analysis",
    "mtasts.report.imap",
    "mtasts.report.ingest",
    "mtasts.report.mail",
    "mtasts.report.server",
    "mtasts.report.sources",
    "mtasts.store",
    "mtasts.store.store",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"
        assert not item.startswith("_")
    assert len(set(exported)) == len(exported)
