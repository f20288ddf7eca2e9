"""Ingest: commit first, then mark processed; a killed ingest loses and duplicates nothing."""

from __future__ import annotations

import gzip
import json
import mailbox
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.report.ingest import ingest_paths
from mtasts.report.mail import parse_any
from mtasts.store.store import ReportStore, dedup_key
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.report.test_mail import BODY, REPORT, message

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
runner = CliRunner()


def fill_maildir(path: Path, count: int, *, bad: int = 0) -> None:
    box = mailbox.Maildir(path)
    for number in range(count):
        body = gzip.compress(json.dumps({**REPORT, "report-id": f"r-{number}"}).encode())
        box.add(mailbox.MaildirMessage(message(("application/tlsrpt+gzip", body, f"r{number}.json.gz"))))
    for _ in range(bad):
        box.add(mailbox.MaildirMessage(message(("application/pdf", b"%PDF", "x.pdf"))))
    box.close()


def test_maildir_messages_move_to_cur_after_commit_and_bad_ones_stay(tmp_path: Path) -> None:
    fill_maildir(tmp_path / "md", 3, bad=1)
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = list(ingest_paths(store, [tmp_path / "md"], clock=lambda: NOW))
        assert sorted(o.stored for o in outcomes) == [0, 1, 1, 1]
        assert [o.error.code for o in outcomes if o.error] == ["mail.no_report"]
        assert store.count() == 3
    assert len(list((tmp_path / "md" / "cur").iterdir())) == 3
    assert len(list((tmp_path / "md" / "new").iterdir())) == 1  # the non-report stays unprocessed


def test_a_killed_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    total = 1500
    maildir = tmp_path / "md"
    fill_maildir(maildir, total)
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    command = [sys.executable, "-c", "from mtasts.cli.main import run; run()", "report", "ingest", str(maildir)]
    process = subprocess.Popen([*command, "--db", db], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list((maildir / "cur").iterdir())) < 50 and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    processed = list((maildir / "cur").iterdir())
    assert 0 < len(processed) < total, "the ingest was not killed mid-way"
    with ReportStore(db) as store:
        # no loss: every message marked processed has its report committed
        for path in processed:
            (report,) = parse_any(path.read_bytes())
            assert store.has(dedup_key(report)), path.name
        # rerun to the end: each report exactly once
        outcomes = list(ingest_paths(store, [maildir], clock=lambda: NOW))
        assert all(o.error is None for o in outcomes)
        assert store.count() == total
        assert len({r.report.report_id for r in store.reports()}) == total
    assert list((maildir / "new").iterdir()) == []


def test_cli_ingest_twice_stores_once(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(BODY)
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    first = runner.invoke(app, ["report", "ingest", "--json", str(tmp_path / "a.json")], env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["stored"] == 1
    second = runner.invoke(app, ["report", "ingest", str(tmp_path / "a.json")], env=env)
    assert second.exit_code == 0
    assert "0 report(s) stored, 1 already stored" in second.stdout


def test_cli_ingest_the_sample_folder(tmp_path: Path) -> None:
    require_shared(TLSRPT_SAMPLES)
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    result = runner.invoke(app, ["report", "ingest", "--json", str(TLSRPT_SAMPLES)], env=env)
    assert result.exit_code == 1  # two negative samples
    summary = json.loads(result.stdout)
    assert (summary["stored"], summary["duplicates"], summary["rejected"]) == (30, 3, 2)
    rejected = {Path(s["source"]).name: s["error"]["code"] for s in summary["sources"] if s["error"]}
    assert rejected == {"mail-auth__rpt03.json": "report.policy.type", "tlsrpt-rs__empty.eml": "mail.no_report"}


def test_negative_samples_store_nothing(tmp_path: Path) -> None:
    require_shared(TLSRPT_SAMPLES)
    negatives = [
        TLSRPT_SAMPLES / "negative" / "tlsrpt-rs__empty.eml",
        TLSRPT_SAMPLES / "edge-cases" / "mail-auth__rpt03.json",
    ]
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = list(ingest_paths(store, negatives, clock=lambda: NOW))
        assert [o.error.code if o.error else None for o in outcomes] == ["mail.no_report", "report.policy.type"]
        assert store.count() == 0
        assert store.policy_rows() == []
