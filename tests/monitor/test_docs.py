"""docs/monitor.md lists every event code: its table is generated from the table in
:mod:`mtasts.monitor.events` (``events_table``), and must match it."""

from __future__ import annotations

from pathlib import Path

from mtasts.monitor.events import EVENT_KINDS, events_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitor.md"
START = "<!-- events-table: generated from mtasts.monitor.events.EVENT_KINDS (events_table) -->\n"
END = "<!-- /events-table -->"


def test_every_code_is_documented() -> None:
    text = DOC.read_text("utf-8")
    missing = [code for code in EVENT_KINDS if f"`{code}`" not in text]
    assert not missing, f"docs/monitor.md does not list {missing}"


def test_the_table_is_generated_from_the_catalogue() -> None:
    text = DOC.read_text("utf-8")
    assert START in text
    assert END in text
    table = text.split(START, 1)[1].split(END, 1)[0]
    expected = events_table()
    assert table == expected, (
        "regenerate: python -c 'from mtasts.monitor.events import events_table; print(events_table(), end=\"\")'"
    )
