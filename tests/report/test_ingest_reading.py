"""How ingest reads files (:mod:`mtasts.report.sources`): in pieces of the file's own size, so
a large report arrives whole, a file past the limit arrives one byte too long (for the parser
to refuse) and an mbox is still told from a report by its first five bytes."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime
from pathlib import Path

from mtasts.report.ingest import ingest_paths
from mtasts.report.sources import Skipped, Source, walk
from mtasts.store.memory import MemoryReportStore
from tests.report.test_mail import REPORT

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def big_report(details: int) -> bytes:
    """:data:`REPORT` with ``details`` failure details: some 100 bytes each."""
    detail = {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1", "failed-session-count": 1}
    policy = {**REPORT["policies"][0], "failure-details": [detail] * details}
    policy["summary"] = {"total-successful-session-count": 7, "total-failure-session-count": details}
    return json.dumps({**REPORT, "report-id": f"big-{details}", "policies": [policy]}).encode()


def test_a_report_larger_than_one_read_is_stored_whole(tmp_path: Path) -> None:
    body = big_report(5000)
    assert len(body) > 4 * 64 * 1024
    (tmp_path / "big.json").write_bytes(body)
    with MemoryReportStore() as store:
        (outcome,) = ingest_paths(store, [tmp_path], clock=lambda: NOW)
        assert outcome.stored == 1
        (kept,) = store.reports()
    assert kept.report.raw == body
    assert sum(len(p.failure_details) for p in kept.report.policies) == 5000


def test_a_file_past_the_limit_is_read_one_byte_too_long(tmp_path: Path) -> None:
    (tmp_path / "small.json").write_bytes(b"x" * 100)
    (tmp_path / "exact.json").write_bytes(b"x" * 1000)
    (tmp_path / "large.json").write_bytes(b"x" * 200_000)
    read = {Path(item.label).name: len(item.data) for item in walk(tmp_path, limit=1000) if isinstance(item, Source)}
    assert read == {"exact.json": 1000, "large.json": 1001, "small.json": 100}


def test_an_mbox_is_told_by_its_first_bytes_whatever_its_size(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "reports")
    for details in (10, 3000):  # the second message takes the file past one read
        box.add(b"From: r@sender.example\nContent-Type: application/tlsrpt+json\n\n" + big_report(details))
    box.close()
    (tmp_path / "tiny").write_bytes(b"From")  # shorter than "From ": a (bad) report, not an mbox
    items = list(walk(tmp_path))
    assert not [item for item in items if isinstance(item, Skipped)]
    labels = [item.label for item in items]
    assert labels == [f"{tmp_path / 'reports'}#1", f"{tmp_path / 'reports'}#2", str(tmp_path / "tiny")]
    with MemoryReportStore() as store:
        outcomes = list(ingest_paths(store, [tmp_path], clock=lambda: NOW))
    assert [o.stored for o in outcomes] == [1, 1, 0]
    assert outcomes[2].error is not None
