"""Ingest: commit first, then mark processed; a killed ingest loses and duplicates nothing."""

from __future__ import annotations

import gzip
import json
import mailbox
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.main import app
from mtasts.core.tlsrpt_report import ReportLimits, TlsRptReport
from mtasts.report.ingest import UNEXPECTED, ingest_paths
from mtasts.report.mail import parse_any
from mtasts.report.sources import FAILED_FOLDER, MARK
from mtasts.store.store import ReportStore, dedup_key
from tests.commands import MTASTS
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.report.conftest import pg_outage, pg_recover
from tests.report.test_mail import BODY, REPORT, message

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
runner = CliRunner()


def fill_maildir(path: Path, count: int, *, bad: int = 0, extra: tuple[bytes, ...] = ()) -> None:
    box = mailbox.Maildir(path)
    for number in range(count):
        body = gzip.compress(json.dumps({**REPORT, "report-id": f"r-{number}"}).encode())
        box.add(mailbox.MaildirMessage(message(("application/tlsrpt+gzip", body, f"r{number}.json.gz"))))
    for _ in range(bad):
        box.add(mailbox.MaildirMessage(message(("application/pdf", b"%PDF", "x.pdf"))))
    for raw in extra:
        box.add(mailbox.MaildirMessage(raw))
    box.close()


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``mtasts ARGS`` in a child process, as a user runs it (the console script's entry point,
    uvloop, real exit codes); ``timeout`` turns a hang into a failure instead of a stuck suite."""
    command = [*MTASTS, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_maildir_messages_move_to_cur_after_commit_and_bad_ones_are_set_aside(tmp_path: Path) -> None:
    fill_maildir(tmp_path / "md", 3, bad=1)
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = list(ingest_paths(store, [tmp_path / "md"], clock=lambda: NOW))
        assert sorted(o.stored for o in outcomes) == [0, 1, 1, 1]
        assert [o.error.code for o in outcomes if o.error] == ["mail.no_report"]
        assert store.count() == 3
    assert len(list((tmp_path / "md" / "cur").iterdir())) == 3
    assert list((tmp_path / "md" / "new").iterdir()) == []
    (aside,) = (tmp_path / "md" / FAILED_FOLDER / "cur").iterdir()  # the non-report, kept readable
    assert b"%PDF" in aside.read_bytes() or b"JVBERg" in aside.read_bytes()


def test_a_killed_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    total = 1500
    maildir = tmp_path / "md"
    fill_maildir(maildir, total)
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    command = [*MTASTS, "report", "ingest", str(maildir)]
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
    assert "0 reports stored, 1 already stored" in second.stdout
    assert f"database sqlite:///{tmp_path / 'db.sqlite3'}" in " ".join(second.stdout.split())


def test_cli_ingest_the_sample_folder(tmp_path: Path) -> None:
    require_shared(TLSRPT_SAMPLES)
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    result = runner.invoke(app, ["report", "ingest", "--json", str(TLSRPT_SAMPLES)], env=env)
    assert result.exit_code == ExitCode.PROBLEMS  # two negative samples
    summary = json.loads(result.stdout)
    assert (summary["stored"], summary["duplicates"], summary["set_aside"]) == (30, 3, 2)
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


# --- a poison message never blocks the others ---------------------------------------------------

# The message the issue reports as poison: a date whose offset pushes it past year 9999. Parsing
# it raised OverflowError out of the parser; whatever the parser now makes of it, a run must
# store every other message in one pass and set this one aside, readable.
POISON_REPORT = {
    **REPORT,
    "report-id": "poison",
    "date-range": {"start-datetime": "9999-12-31T23:59:59-23:59", "end-datetime": "9999-12-31T23:59:59-23:59"},
}
POISON = message(("application/tlsrpt+json", json.dumps(POISON_REPORT).encode(), "p.json"))


def test_cli_a_poison_message_is_set_aside_and_every_other_message_ingested_in_one_run(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 20, extra=(POISON,))
    db = str(tmp_path / "db.sqlite3")
    first = runner.invoke(app, ["report", "ingest", "--json", str(maildir), "--db", db])
    assert first.exit_code == ExitCode.PROBLEMS, first.output
    summary = json.loads(first.stdout)
    assert (summary["stored"], summary["duplicates"], summary["set_aside"]) == (20, 0, 1)
    (aside,) = (maildir / FAILED_FOLDER / "cur").iterdir()
    assert aside.read_bytes() == POISON  # nothing lost: the message, byte for byte, in a Maildir++ folder
    assert (maildir / FAILED_FOLDER / "maildirfolder").exists()
    (failed,) = [s for s in summary["sources"] if s["error"]]
    assert failed["moved_to"] == str(aside)
    assert list((maildir / "new").iterdir()) == []
    # later runs are not stopped by it, nor do they read it again ...
    second = runner.invoke(app, ["report", "ingest", str(maildir), "--db", db])
    assert second.exit_code == ExitCode.OK, second.output
    assert "0 reports stored, 0 already stored, 0 set aside" in second.stdout
    # ... unless asked to: it is read, fails again, and stays set aside
    retry = runner.invoke(app, ["report", "ingest", "--json", "--retry-failed", str(maildir), "--db", db])
    assert retry.exit_code == ExitCode.PROBLEMS
    assert json.loads(retry.stdout)["set_aside"] == 1
    assert list((maildir / FAILED_FOLDER / "cur").iterdir()) == [aside]


def _fails_on(report_id: str, exc: BaseException) -> Callable[[bytes, ReportLimits], tuple[TlsRptReport, ...]]:
    """The real parser, except that it raises ``exc`` for one message: the documented parser
    seam of :func:`ingest_paths`, used because no input is known to make today's parser raise
    something other than ``ParseError``, and a failure nobody anticipated is what must not
    block a mailbox."""

    def parse(data: bytes, limits: ReportLimits) -> tuple[TlsRptReport, ...]:
        reports = parse_any(data, limits)
        if any(report.report_id == report_id for report in reports):
            raise exc
        return reports

    return parse


def test_an_unexpected_failure_is_recorded_the_message_set_aside_and_retried_later(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 21)
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        broken = _fails_on("r-5", RuntimeError("a bug in mtasts"))
        outcomes = list(ingest_paths(store, [maildir], clock=lambda: NOW, parse=broken))
        assert store.count() == 20
        (failed,) = [o for o in outcomes if o.set_aside]
        assert failed.error is not None
        assert failed.error.code == UNEXPECTED
        assert "RuntimeError: a bug in mtasts" in failed.error.message
        assert failed.moved_to is not None
        assert Path(failed.moved_to).parent == maildir / FAILED_FOLDER / "cur"
        # the bug is fixed: --retry-failed stores it and moves it back among the processed ones
        again = list(ingest_paths(store, [maildir], clock=lambda: NOW, retry_failed=True))
        assert [(o.stored, o.set_aside) for o in again] == [(1, False)]
        assert store.count() == 21
    assert list((maildir / FAILED_FOLDER / "cur").iterdir()) == []
    assert len(list((maildir / "cur").iterdir())) == 21


def test_a_recursion_error_on_one_message_does_not_stop_the_run(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 3)
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = list(ingest_paths(store, [maildir], parse=_fails_on("r-0", RecursionError("too deep"))))
        assert [o.error.code for o in outcomes if o.error] == [UNEXPECTED]
        assert store.count() == 2


# --- Maildir: a run never re-parses what it committed -------------------------------------------


def test_cli_a_repeat_run_does_not_read_committed_messages_again(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 40)
    db = str(tmp_path / "db.sqlite3")
    first = runner.invoke(app, ["report", "ingest", str(maildir), "--db", db])
    assert first.exit_code == 0, first.output
    assert "40 reports stored, 0 already stored" in first.stdout
    assert all(f":2,{MARK}S" in p.name for p in (maildir / "cur").iterdir())
    second = runner.invoke(app, ["report", "ingest", str(maildir), "--db", db])
    assert second.exit_code == 0, second.output
    assert "0 reports stored, 0 already stored" in second.stdout  # was: 40 already stored


def test_marked_messages_are_not_even_parsed_but_seen_ones_are(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 5)
    parsed: list[bytes] = []

    def counting(data: bytes, limits: ReportLimits) -> tuple[TlsRptReport, ...]:
        parsed.append(data)
        return parse_any(data, limits)

    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        list(ingest_paths(store, [maildir], parse=counting))
        assert len(parsed) == 5
        # a mail client marks a new message read: "S" alone does not mean "ingested"
        body = json.dumps({**REPORT, "report-id": "r-new"}).encode()
        fill_maildir(maildir, 0, extra=(message(("application/tlsrpt+json", body, "r.json")),))
        (fresh,) = (maildir / "new").iterdir()
        fresh.rename(maildir / "cur" / f"{fresh.name}:2,S")
        parsed.clear()
        outcomes = list(ingest_paths(store, [maildir], parse=counting))
        assert len(parsed) == 1
        assert [(o.stored, o.duplicates) for o in outcomes] == [(1, 0)]


# --- folders: vanished, special files, symbolic link loops --------------------------------------


def test_a_message_vanishing_between_read_and_mark_does_not_abort_the_run(tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    fill_maildir(maildir, 3)
    victim = sorted((maildir / "new").iterdir())[1]

    def taken_meanwhile(data: bytes, limits: ReportLimits) -> tuple[TlsRptReport, ...]:
        # another program (a mail client, a second ingest) moves the message while it is parsed
        if victim.exists() and data == victim.read_bytes():
            victim.rename(tmp_path / "elsewhere")
        return parse_any(data, limits)

    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = list(ingest_paths(store, [maildir], parse=taken_meanwhile))
        assert store.count() == 3  # was: "cannot read MAILDIR" and the third never ingested
        assert [o.warning.code for o in outcomes if o.warning] == ["source.not_marked"]
        assert sum(o.stored for o in outcomes) == 3


def test_cli_special_files_and_symlink_loops_are_skipped_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.json").write_bytes(BODY)
    os.mkfifo(folder / "fifo.json")  # reading it blocked the ingest forever
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock"))
    (folder / "sub" / "loop").symlink_to("..")  # read the same files 40 times
    (folder / "self").symlink_to("self")
    (folder / "dangling.json").symlink_to(tmp_path / "gone.json")
    try:
        result = cli("report", "ingest", "--json", str(folder), "--db", str(tmp_path / "db.sqlite3"), timeout=60)
    finally:
        listener.close()
    assert result.returncode == ExitCode.OK, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["stored"], summary["duplicates"], summary["set_aside"]) == (1, 0, 0)
    warnings = {Path(s["source"]).name: s["warning"]["code"] for s in summary["sources"] if s["warning"]}
    assert warnings == {
        "fifo.json": "source.special",
        "sock": "source.special",
        "loop": "source.loop",
        "self": "source.loop",
        "dangling.json": "source.vanished",
    }
    assert summary["skipped"] == 5


def test_cli_a_missing_path_is_one_line_and_could_not_run(tmp_path: Path) -> None:
    result = cli("report", "ingest", str(tmp_path / "nope"), "--db", str(tmp_path / "db.sqlite3"))
    assert result.returncode == ExitCode.CANNOT_RUN
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


# --- the database goes away mid-run --------------------------------------------------------------


def test_cli_a_database_outage_mid_run_ends_with_one_line_the_counts_and_loses_nothing(
    tmp_path: Path, pg_database: tuple[str, str]
) -> None:
    url, name = pg_database
    total = 600
    maildir = tmp_path / "md"
    fill_maildir(maildir, total)
    command = [*MTASTS, "report", "ingest", str(maildir)]
    process = subprocess.Popen([*command, "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(list((maildir / "cur").iterdir())) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        pg_outage(name)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        pg_recover(name)
    processed = list((maildir / "cur").iterdir())
    assert 0 < len(processed) < total, "the outage did not happen mid-run"
    assert process.returncode == ExitCode.CANNOT_RUN, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # one line: which database, what happened
    line = lines[0]
    assert line.startswith(f"mtasts: error: database postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    stored = int(stdout.split(" report")[0].split()[-1])  # "N report(s) stored"
    assert stored == len(processed)  # the counts: what was committed before the outage
    assert not (maildir / FAILED_FOLDER).exists()  # the outage is not the messages' fault
    with ReportStore(url) as store:
        for path in processed:  # nothing marked that is not committed
            (report,) = parse_any(path.read_bytes())
            assert store.has(dedup_key(report)), path.name
    again = cli("report", "ingest", str(maildir), "--db", url)
    assert again.returncode == ExitCode.OK, again.stderr
    left = total - len(processed)
    assert f"{left} {'report' if left == 1 else 'reports'} stored, 0 already stored" in again.stdout
    with ReportStore(url) as store:
        assert store.count() == total


def test_cli_the_summary_names_the_database_with_the_password_hidden(
    tmp_path: Path, pg_database: tuple[str, str]
) -> None:
    url, name = pg_database
    (tmp_path / "a.json").write_bytes(BODY)
    with_password = url.replace("postgres@", "postgres:hunter2@")  # trust authentication ignores it
    result = cli("report", "ingest", str(tmp_path / "a.json"), "--db", with_password)
    assert result.returncode == ExitCode.OK, result.stderr
    assert f"database postgresql+psycopg://postgres:***@127.0.0.1:5432/{name}" in " ".join(result.stdout.split())
    assert "hunter2" not in result.stdout + result.stderr
