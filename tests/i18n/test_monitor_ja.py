"""``mtasts monitor run`` and ``monitor serve`` in Japanese: the status lines, the events that open
and clear and the daemon's start lines, with ``--lang ja`` and ``LANG=ja_JP.UTF-8``, against lab
domains whose records the test changes between runs; English stays as it was, and so does the
JSON. The event messages are the web pages' translations (mtasts.i18n.messages)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.testing import LabController, running_lab
from tests.commands import MTASTS
from tests.monitor.conftest import TWO_MX
from tests.monitor.test_cli import free_port, lab_options

C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "NO_COLOR": "1", "COLUMNS": "200"}
JA_LOCALE = {**C_LOCALE, "LANG": "ja_JP.UTF-8"}
# English; Japanese by the option; Japanese by the locale
LANGUAGES = {"en": ([], C_LOCALE), "ja-option": (["--lang", "ja"], C_LOCALE), "ja-locale": ([], JA_LOCALE)}


@pytest.fixture
def world() -> Iterator[LabController]:
    """A lab of its own: the test changes its DNS between the runs."""
    with running_lab([TWO_MX]) as lab:
        yield lab


class Runs:
    """``mtasts monitor run`` in each language, each on a database of its own."""

    def __init__(self, world: LabController, folder: Path) -> None:
        self.world, self.folder = world, folder

    def __call__(self, *args: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, (option, environ) in LANGUAGES.items():
            db = self.folder / f"{name}.sqlite3"
            command = [*option, "monitor", "run", "--db", str(db), *lab_options(self.world), *args]
            result = CliRunner().invoke(app, command, env=environ)
            assert (result.exit_code, result.stderr) == (0, ""), (name, result.stdout, result.stderr)
            out[name] = result.stdout.splitlines()
        assert out["ja-option"] == out["ja-locale"]
        return out


def test_status_lines_and_events_that_open_and_clear(world: LabController, tmp_path: Path) -> None:
    runs, domain = Runs(world, tmp_path), world.domain("two-mx")
    tlsrpt = f"_smtp._tls.{domain}"
    published = [r.to_text() for r in world.resolver().resolve(tlsrpt, "TXT")]

    first = runs(domain)
    assert first["en"] == [f"{domain}: check ok; 0 open events"]
    assert first["ja-option"] == [f"{domain}：チェック結果 問題なし、未解消のイベント 0 件"]

    again = runs(domain)
    assert again["en"] == ["nothing due: 1 domain checked within their interval (--all checks them now)"]
    assert again["ja-option"] == [
        "チェックの時期が来たドメインはありません："
        "1 件のドメインは間隔内にチェック済みです（--all で今すぐチェックします）"
    ]

    world.call(lambda: world.lab.set_records(tlsrpt, "TXT", ['"v=TLSRPTv1; rua=ftp://x"']))
    opened = runs(domain, "--all")
    english_reason = (
        f"{tlsrpt} is invalid: the scheme 'ftp:' is not supported; reports go to mailto: or https: URIs; "
        "senders send no reports"
    )
    japanese_reason = (
        f"{tlsrpt} が不正です：スキーム 'ftp:' には対応していません。レポートの送り先は mailto: か https: の URI です。"
        "送信側はレポートを送りません"
    )
    assert opened["en"] == [
        f"{domain}: check warning; 1 open event (1 new, 0 cleared)",
        f"  NEW warning {domain}: finding [tlsrpt-syntax {tlsrpt}]: {english_reason}",
    ]
    assert opened["ja-option"] == [
        f"{domain}：チェック結果 警告、未解消のイベント 1 件（新規 1 件、解消 0 件）",
        f"  新規 警告 {domain}：finding [tlsrpt-syntax {tlsrpt}]：{japanese_reason}",
    ]

    world.call(lambda: world.lab.set_records(tlsrpt, "TXT", published))
    resolved = runs(domain, "--all")
    assert resolved["en"] == [
        f"{domain}: check ok; 0 open events (0 new, 1 cleared)",
        f"  CLEARED warning {domain}: finding [tlsrpt-syntax {tlsrpt}]: {english_reason}",
    ]
    assert resolved["ja-option"] == [
        f"{domain}：チェック結果 問題なし、未解消のイベント 0 件（新規 0 件、解消 1 件）",
        f"  解消 警告 {domain}：finding [tlsrpt-syntax {tlsrpt}]：{japanese_reason}",
    ]


def test_an_event_without_a_subject_and_the_json_stays_english(world: LabController, tmp_path: Path) -> None:
    runs, domain = Runs(world, tmp_path), world.domain("two-mx")
    sts = f"_mta-sts.{domain}"
    (record,) = [r.to_text() for r in world.resolver().resolve(sts, "TXT")]
    old = record.split("id=")[1].strip('";')
    runs(domain)
    world.call(lambda: world.lab.set_records(sts, "TXT", ['"v=STSv1; id=20991231"']))
    changed = runs(domain, "--all")
    assert changed["en"] == [
        f"{domain}: check ok; 1 open event (1 new, 0 cleared)",
        f"  NEW info {domain}: policy-id-changed: the policy id of {domain} changed from {old} to 20991231",
    ]
    assert changed["ja-option"] == [
        f"{domain}：チェック結果 問題なし、未解消のイベント 1 件（新規 1 件、解消 0 件）",
        f"  新規 情報 {domain}：policy-id-changed：{domain} のポリシーの id が {old} から 20991231 に変わりました",
    ]
    world.call(lambda: world.lab.set_records(sts, "TXT", ['"v=STSv1; id=20991232"']))
    for name, (option, environ) in LANGUAGES.items():
        command = [*option, "monitor", "run", "--db", str(tmp_path / f"{name}.sqlite3"), *lab_options(world)]
        result = CliRunner().invoke(app, [*command, "--all", "--json", domain], env=environ)
        (run,) = json.loads(result.stdout)["runs"]
        assert [(t["transition"], t["title"], t["message"]) for t in run["transitions"]] == [
            ("opened", "the policy id changed", f"the policy id of {domain} changed from 20991231 to 20991232")
        ]


@pytest.mark.parametrize(("option", "environ"), list(LANGUAGES.values()), ids=list(LANGUAGES))
def test_serve_says_where_its_metrics_are_and_what_it_watches(
    world: LabController, tmp_path: Path, option: list[str], environ: dict[str, str]
) -> None:
    port, domain = free_port(), world.domain("two-mx")
    command = [
        *MTASTS, *option, "monitor", "serve", domain, "--db", str(tmp_path / "m.sqlite3"),
        "--admin", f"127.0.0.1:{port}", "--interval", "1m", "--jitter", "0", *lab_options(world),
    ]  # fmt: skip
    daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, **environ})
    try:
        deadline = time.monotonic() + 30
        while True:  # the start lines are written before the first request is answered
            assert time.monotonic() < deadline
            assert daemon.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    start = err.splitlines()[:2]
    if environ is C_LOCALE and not option:
        assert start == [f"mtasts: monitor metrics on http://127.0.0.1:{port}/metrics", "mtasts: monitoring 1 domain"]
    else:
        assert start == [
            f"mtasts: モニターのメトリクス：http://127.0.0.1:{port}/metrics",
            "mtasts: 1 件のドメインを監視しています",
        ]
