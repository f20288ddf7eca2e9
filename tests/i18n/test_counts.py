"""Counted nouns in every language: :func:`mtasts.cli.text.counted`, the one helper the publish,
resolver, lint and report commands count with, and the lost-worker warning of ``check -f``
(English agrees with its count: "1 domain", "1 is checked again"; Japanese has one form)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mtasts.cli.check import SMALL_RUN
from mtasts.cli.text import counted
from mtasts.i18n import set_language, translator
from mtasts.i18n.messages import PLURALS
from mtasts.lab.world import check_options
from tests.check.test_bulk import _descendants, _nx, _wait_for_lines
from tests.cli.terminal import COMMAND, environment

JA = translator("ja")


def test_counted_in_english_agrees_with_its_count() -> None:
    set_language("en")
    assert counted(1, "cached domain") == "1 cached domain"
    assert counted(0, "cached domain") == "0 cached domains"
    assert counted(2, "policy file") == "2 policy files"


def test_counted_in_japanese_is_the_catalogue_s_one_form() -> None:
    set_language("ja")
    assert counted(1, "cached domain") == counted(1, "cached domain") == "キャッシュ済みのドメイン 1 件"
    assert counted(3, "cached domain") == "キャッシュ済みのドメイン 3 件"
    assert counted(2, "lookup") == "問い合わせ 2 件"
    assert counted(1, "report") == "レポート 1 件"
    assert counted(4, "MX host") == "MX ホスト 4 台"


@pytest.mark.parametrize(("singular", "plural_form"), PLURALS, ids=[s for s, _ in PLURALS])
def test_every_counted_noun_has_its_japanese_form(singular: str, plural_form: str) -> None:
    for count in (1, 2):
        english = (singular if count == 1 else plural_form) % {"num": count, "counts": "x"}
        japanese = JA.ngettext(singular, plural_form, count) % {"num": count, "counts": "x"}
        assert japanese != english, singular
        assert str(count) in japanese, (singular, japanese)


def _connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP connection to ``port`` (its sockets' inodes, looked up
    in the kernel's table of TCP connections)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:  # it has exited
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and f"socket:[{fields[9]}]" in inodes:
                return True
    return False


@pytest.mark.lab
def test_a_worker_lost_while_checking_one_domain_says_1_domain(lab: Any, tmp_path: Path) -> None:
    """``check -f -w 2`` whose last domain's policy host never answers: once every other result
    is written, its worker holds it alone and is killed, as the OOM killer would. The warning says
    "1 domain" and "1 is checked again" (the other worker checks it again), and has its Japanese
    shape."""
    listing = tmp_path / "domains.txt"
    # enough domains for the workers (a small run is checked in-process); the slow one last, so
    # once the others are done its worker holds it alone
    listing.write_text("".join(f"{name}\n" for name in [*_nx(lab, SMALL_RUN), lab.domain("policy-hang")]))
    output = tmp_path / "out.jsonl"
    options = check_options(lab.info(), timeout=6)
    process = subprocess.Popen(
        [*COMMAND, "check", "-f", str(listing), "-o", str(output), "-w", "2", "-c", "1", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment({"NO_COLOR": "1", "LANG": "C", "LC_ALL": ""}),
    )
    try:
        # results are written in batches: most of the quick ones, then time for the rest (not the
        # last: its policy fetch waits out the 6 s timeout)
        _wait_for_lines(output, SMALL_RUN - 10, process)
        time.sleep(1.5)
        workers = [pid for pid, parent in _descendants(process.pid).items() if parent != process.pid]
        # the worker checking the last domain is the one connected to its policy host
        busy = [pid for pid in workers if _connected_to(pid, lab.https_port)]
        assert len(workers) == 2, workers
        assert len(busy) == 1, (workers, busy)
        os.kill(busy[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    warnings = [line for line in stderr.decode().splitlines() if line.startswith("mtasts: warning: ")]
    english = "a check worker was killed by signal 9 while checking 1 domain; 1 is checked again"
    assert warnings == [f"mtasts: warning: {english}"], stderr
    assert JA.translate(english).complete
    assert JA.text(english) == (
        "チェックのワーカーが、1 件のドメインのチェック中にシグナル 9 で強制終了しました。1 件をチェックし直します"
    )
