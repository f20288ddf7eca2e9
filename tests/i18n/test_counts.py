"""Counted nouns in every language: :func:`mtasts.i18n.words.counted`, the one helper the publish,
resolver, lint and report commands count with, and the lost-worker warning of ``check -f``
(English agrees with its count: "1 domain", "1 is checked again"; Japanese has one form)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from mtasts.cli.check import SMALL_RUN
from mtasts.i18n import set_language, translator
from mtasts.i18n.messages import PLURALS
from mtasts.i18n.words import counted
from mtasts.lab.world import check_options
from tests.check.test_bulk import _descendants, _nx
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


def _collect(stream: IO[bytes], into: list[bytes]) -> threading.Thread:
    """Read ``stream`` to its end in a thread, appending each line as it comes."""

    def read() -> None:
        for line in stream:
            into.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.lab
def test_a_worker_lost_while_checking_one_domain_says_1_domain(lab: Any, tmp_path: Path) -> None:
    """``check -f -w 2`` whose last domain's policy host never answers: once every other result
    is written, its worker holds it alone and is killed, as the OOM killer would. The warning says
    "1 domain" and "1 is checked again" (the other worker checks it again), and has its Japanese
    shape."""
    listing = tmp_path / "domains.txt"
    # enough domains for the workers (a small run is checked in-process); the slow one last, so
    # once the others are done its worker holds it alone
    quick, slow = _nx(lab, SMALL_RUN), lab.domain("policy-hang")
    listing.write_text("".join(f"{name}\n" for name in [*quick, slow]))
    options = check_options(lab.info(), timeout=6)
    # no --output: each report is printed on stdout as soon as the parent has it (unbuffered),
    # which is how this test sees that every quick result is back (a file is flushed once a second)
    process = subprocess.Popen(
        [*COMMAND, "check", "-f", str(listing), "-w", "2", "-c", "1", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment({"NO_COLOR": "1", "LANG": "C", "LC_ALL": "", "PYTHONUNBUFFERED": "1"}),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    printed: list[bytes] = []
    said: list[bytes] = []
    readers = [_collect(process.stdout, printed), _collect(process.stderr, said)]
    try:
        # the moment to kill: every quick domain printed (so no worker holds one any more) and
        # the slow domain's worker connected to its policy host (its fetch waits out the 6 s)
        names = re.compile(rb"\bnx-\d+\." + re.escape(lab.info()["zone"].encode()) + rb"\b")
        deadline = time.monotonic() + 60
        while True:
            seen = {m.group() for line in list(printed) for m in names.finditer(line)}
            workers = [pid for pid, parent in _descendants(process.pid).items() if parent != process.pid]
            # the worker checking the last domain is the one connected to its policy host
            busy = [pid for pid in workers if _connected_to(pid, lab.https_port)]
            if len(seen) == len(quick) and busy:
                break
            assert process.poll() is None, "the run ended before a worker could be killed"
            assert not any(slow.encode() in line for line in list(printed)), "the slow domain ended first"
            assert time.monotonic() < deadline, f"{len(seen)} of {len(quick)} quick results, busy workers {busy}"
            time.sleep(0.02)  # polling, not waiting for anything in particular
        assert len(workers) == 2, workers
        assert len(busy) == 1, (workers, busy)
        os.kill(busy[0], signal.SIGKILL)
        process.wait(timeout=120)
        for reader in readers:
            reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    stderr = b"".join(said).decode()
    warnings = [line for line in stderr.splitlines() if line.startswith("mtasts: warning: ")]
    english = "a check worker was killed by signal 9 while checking 1 domain; 1 is checked again"
    assert warnings == [f"mtasts: warning: {english}"], stderr
    assert JA.translate(english).complete
    assert JA.text(english) == (
        "チェックのワーカーが、1 件のドメインのチェック中にシグナル 9 で強制終了しました。1 件をチェックし直します"
    )
