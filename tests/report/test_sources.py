"""Reading report files, directories, mbox files and Maildir folders."""

from __future__ import annotations

import gzip
import json
import mailbox
import os
from pathlib import Path

from mtasts.report.mail import parse_any
from mtasts.report.sources import FAILED_FOLDER, Skipped, Source, failed_folder, iter_sources, walk
from tests.report.test_mail import BODY, REPORT, message


def test_a_file_is_one_source(tmp_path: Path) -> None:
    path = tmp_path / "r.json.gz"
    path.write_bytes(gzip.compress(BODY))
    (source,) = iter_sources(path)
    assert source.label == str(path)
    assert parse_any(source.data)[0].report_id == "r-1"
    source.done()  # files are left as they are
    assert path.exists()


def test_a_directory_is_walked_in_name_order_skipping_documents(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.json").write_bytes(BODY)
    (tmp_path / "1.eml").write_bytes(message(("application/tlsrpt+json", BODY, "r.json")))
    (tmp_path / "README.md").write_text("# reports")
    (tmp_path / ".hidden.json").write_bytes(b"{}")
    assert [Path(s.label).name for s in iter_sources(tmp_path)] == ["1.eml", "2.json"]


def test_an_mbox_yields_every_message(tmp_path: Path) -> None:
    path = tmp_path / "reports.mbox"
    box = mailbox.mbox(path)
    for number in range(3):
        body = json.dumps({**REPORT, "report-id": f"r-{number}"}).encode()
        box.add(message(("application/tlsrpt+gzip", gzip.compress(body), "r.json.gz")))
    box.close()
    sources = list(iter_sources(path))
    assert [s.label for s in sources] == [f"{path}#{n}" for n in (1, 2, 3)]
    assert [parse_any(s.data)[0].report_id for s in sources] == ["r-0", "r-1", "r-2"]


def test_maildir_messages_are_marked_seen_only_when_done(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    box.add(mailbox.MaildirMessage(message(("application/tlsrpt+json", BODY, "r.json"))))
    box.close()
    new = tmp_path / "Maildir" / "new"
    (source,) = iter_sources(tmp_path / "Maildir")
    assert len(list(new.iterdir())) == 1  # reading alone changes nothing
    source.done()
    assert list(new.iterdir()) == []
    (moved,) = (tmp_path / "Maildir" / "cur").iterdir()
    assert moved.name.endswith(":2,IS")  # seen, and marked ingested (MARK)
    (again,) = iter_sources(tmp_path / "Maildir")
    again.done()  # idempotent
    assert [p.name for p in (tmp_path / "Maildir" / "cur").iterdir()] == [moved.name]


def test_the_walk_skips_special_files_and_loops_without_opening_them_for_a_blocking_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(BODY)
    os.mkfifo(tmp_path / "b.json")  # a blocking open() or read() would wait here forever
    (tmp_path / "c").symlink_to(".")
    items = list(walk(tmp_path))
    assert [(Path(i.label).name, type(i).__name__) for i in items] == [
        ("a.json", "Source"),
        ("b.json", "Skipped"),
        ("c", "Skipped"),
    ]
    assert [i.problem.code for i in items if isinstance(i, Skipped)] == ["source.special", "source.loop"]


def test_a_maildir_message_vanishing_after_the_listing_is_a_warning(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    for _ in range(3):
        box.add(mailbox.MaildirMessage(message(("application/tlsrpt+json", BODY, "r.json"))))
    box.close()
    items = walk(tmp_path / "Maildir")
    first = next(items)
    assert isinstance(first, Source)
    sorted((tmp_path / "Maildir" / "new").iterdir())[1].unlink()  # taken by another program
    rest = list(items)
    assert [type(i).__name__ for i in rest] == ["Skipped", "Source"]
    assert isinstance(rest[0], Skipped)
    assert rest[0].problem.code == "source.vanished"


def test_the_failed_folder_of_a_maildir_plus_plus_folder_is_its_sub_folder(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    mailbox.Maildir(root).add_folder("tlsrpt")
    assert failed_folder(root) == root / FAILED_FOLDER
    assert failed_folder(root / ".tlsrpt") == root / ".tlsrpt.mtasts-failed"
