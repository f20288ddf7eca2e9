"""``mtasts lab up`` and ``mtasts lab list`` in Japanese: the lab's own lines and the table
headers from the catalogue; scenario names, descriptions, addresses and the command to copy stay
as they are (data). ``lab up`` runs as a real process, stopped by SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.scenarios import CATALOGUE
from tests.cli.terminal import environment
from tests.cli.test_lab import RUN_CLI, wait_for_file

pytestmark = pytest.mark.lab

JA_LOCALE = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "NO_COLOR": "1", "COLUMNS": "200"}


def test_lab_up_speaks_japanese(tmp_path: Path) -> None:
    info_file = tmp_path / "lab.json"
    args = [sys.executable, "-c", RUN_CLI, "lab", "up", "-s", "enforce-ok", "--delay-ms", "1", "--info", str(info_file)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(JA_LOCALE))
    try:
        info = wait_for_file(info_file, process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert re.fullmatch(r"mtasts lab の準備ができました（\d+ ms）", lines[0]), lines[0]
    assert lines[1:6] == [
        f"  ネームサーバー  {info['nameserver']}  （例：dig -p {info['dns_port']} @{info['nameserver_address']} ...）",
        f"  CA ファイル     {info['ca_file']}",
        f"  HTTPS ポート    {info['https_port']}    SMTP ポート  {info['smtp_port']}",
        f"  TLSRPT          {info['tlsrpt_url']}",
        "  遅延            DNS の応答、HTTP のレスポンス、SMTP の応答のそれぞれの前に 1 ms",
    ]
    assert lines[6].split() == ["ドメイン", "シナリオ"]
    assert lines[7].split() == ["enforce-ok.mtasts.test", "enforce-ok"]
    assert lines[8].startswith("ドメインをチェックするには：mtasts check enforce-ok.mtasts.test --nameserver ")
    assert lines[9:] == ["Ctrl-C で停止します。", "ラボを停止しました"]


def test_lab_list_headers_in_japanese() -> None:
    result = CliRunner().invoke(app, ["--lang", "ja", "lab", "list"], env={"COLUMNS": "200", "LANG": "C"})
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["シナリオ", "送信側", "説明"]
    assert {row.split()[0] for row in rows} == set(CATALOGUE)  # names and descriptions: data, in English
    english = CliRunner().invoke(app, ["lab", "list"], env={"COLUMNS": "200", "LANG": "C"})
    assert english.stdout.splitlines()[0].split() == ["scenario", "sender", "description"]
