"""``mtasts: error: ...`` in Japanese: the commands that fail, each run as a user runs it, in
English and with ``--lang ja``. The line is translated where it is written
(:func:`mtasts.cli.exitcodes.in_language`): whole, or not at all; its prefix stays English.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n import translator
from mtasts.lab.testing import running_lab
from mtasts.lab.world import check_options

JA = translator("ja")
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
JA_LOCALE = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
_ERROR = "mtasts: error: "
_KANA = re.compile(r"[\u3040-\u30ff]")

# (command, exit status); {tmp} is the test's folder, holding the files made by _files
ERRORS: list[tuple[str, int]] = [
    # check
    ("check --nameserver nope example.com", 2),
    ("check --nameserver 127.0.0.1:99999 example.com", 2),
    ("check --ca-file {tmp}/none.pem example.com", 3),
    ("check --ca-file {tmp}/notpem.pem example.com", 3),
    ("check --ca-file {tmp}/bad.pem example.com", 3),
    ("check --output {tmp}/x.txt example.com", 2),
    ("check --resume example.com", 2),
    ("check --shard 3/2 example.com", 2),
    ("check --shard x example.com", 2),
    ("check --output {tmp}/no/x.jsonl example.com", 3),
    ("check --file {tmp}/none.txt", 3),
    ("check --file {tmp}/latin1.txt", 3),
    # monitor
    ("monitor run bad..name", 2),
    ("monitor run --file {tmp}/none.txt", 3),
    ("monitor run --file {tmp}/domains.txt", 2),
    ("monitor run --file {tmp}/latin1.txt", 3),
    ("monitor run --nameserver nope example.com", 2),
    ("monitor run --interval 0 example.com", 2),
    ("monitor run --interval 30d example.com", 2),
    ("monitor run", 2),
    # web
    ("web serve --listen nope", 2),
    ("web serve --listen [::1", 2),
    ("web serve --listen host:443", 2),
    ("web serve --listen 127.0.0.1:70000", 2),
    ("web serve --nameserver nope", 2),
    ("web serve --db mysql://x/y", 2),
    ("web serve --publish-config {tmp}/none.toml", 3),
    ("web user add alice --password-file {tmp}/pw --db {tmp}/u.sqlite3", 2),
    ("web user add alice --password-file {tmp}/none --db {tmp}/u.sqlite3", 3),
    ("web user list --db {tmp}/none.sqlite3", 3),
    ("web user remove bob --db {tmp}/none.sqlite3", 3),
    # resolver
    ("resolver query --profile nope example.com", 2),
    ("resolver query --direct --listen inet:127.0.0.1:1 example.com", 2),
    ("resolver query --listen nope example.com", 2),
    ("resolver query --listen inet:127.0.0.1:9 example.com", 3),
    ("resolver query --direct --nameserver nope example.com", 2),
    ("resolver query --direct --ca-file {tmp}/none.pem example.com", 2),
    ("resolver query --direct --overrides {tmp}/none.toml example.com", 2),
    ("resolver query --direct --overrides {tmp}/bad.toml example.com", 2),
    ("resolver query --config {tmp}/none.toml example.com", 3),
    ("resolver query --config {tmp}/bad.toml example.com", 2),
    ("resolver query --config {tmp}/listen9.toml example.com", 3),
    ("resolver cache show bad..name --db {tmp}/c.sqlite3", 2),
    ("resolver cache show example.com --db {tmp}/none.sqlite3", 3),
    ("resolver cache list --db {tmp}/none.sqlite3", 3),
    ("resolver cache list --redis redis://x --db {tmp}/c.sqlite3", 2),
    ("resolver cache list --store nope://x", 2),
    ("resolver cache list --store redis://", 2),
    ("resolver cache list --store sqlite:", 2),
    ("resolver cache flush --admin nope", 2),
    ("resolver cache flush --admin 127.0.0.1:9", 3),
    ("resolver cache export --db {tmp}/c.sqlite3", 2),
    ("resolver cache export --postfix --profile nope --db {tmp}/c.sqlite3", 2),
    ("resolver serve --listen nope", 2),
    ("resolver serve --unix-mode 99x", 2),
    ("resolver serve --db {tmp}/c.sqlite3 --memory-only", 2),
    ("resolver serve --nameserver nope", 2),
    ("resolver serve --ca-file {tmp}/none.pem", 2),
    ("resolver serve --config {tmp}/none.toml", 3),
    ("resolver selftest", 2),
    ("resolver selftest --postfix --map hash:/x", 2),
    ("resolver selftest --postfix --zone x", 2),
    ("resolver selftest --postfix --map socketmap:inet:127.0.0.1:9:postfix --listen inet:127.0.0.1:9", 2),
]


def _files(tmp: Path) -> None:
    (tmp / "notpem.pem").write_text("hello\n")
    (tmp / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
    (tmp / "pw").write_text("secret\n")
    (tmp / "pw").chmod(0o644)
    (tmp / "domains.txt").write_text("example.com every day\n")
    (tmp / "latin1.txt").write_bytes(b"caf\xe9.example\n")
    (tmp / "bad.toml").write_text("listen = [\n")
    (tmp / "listen9.toml").write_text('listen = ["inet:127.0.0.1:9"]\n')


@pytest.mark.parametrize(("command", "code"), ERRORS, ids=[c for c, _ in ERRORS])
def test_each_error_line_is_in_japanese(command: str, code: int, tmp_path: Path) -> None:
    _files(tmp_path)
    args = [arg.format(tmp=tmp_path) for arg in command.split(" ")]
    english = CliRunner().invoke(app, args, env=C_LOCALE)
    japanese = CliRunner().invoke(app, ["--lang", "ja", *args], env=C_LOCALE)
    assert (english.exit_code, japanese.exit_code) == (code, code), english.output
    assert english.stderr.startswith(_ERROR), english.stderr
    said = english.stderr.removeprefix(_ERROR).rstrip("\n")
    assert "\n" not in said, english.stderr
    assert JA.translate(said).complete, said
    assert japanese.stderr == f"{_ERROR}{JA.text(said)}\n"
    assert _KANA.search(japanese.stderr)


def test_the_lines_a_user_sees(tmp_path: Path) -> None:
    """Two lines in full, under LANG=ja_JP.UTF-8 and --lang ja alike (what the reader is shown,
    not just "some Japanese")."""
    for env, lang in ((JA_LOCALE, []), (C_LOCALE, ["--lang", "ja"])):
        result = CliRunner().invoke(app, [*lang, "check", "--nameserver", "nope", "example.com"], env=env)
        assert (result.exit_code, result.stderr) == (
            2,
            "mtasts: error: --nameserver 'nope'："
            "'nope' は IP アドレスではありません（ネームサーバーは IP[:PORT] の形で指定してください）\n",
        )
        missing = tmp_path / "none.pem"
        result = CliRunner().invoke(app, [*lang, "check", "--ca-file", str(missing), "example.com"], env=env)
        assert (result.exit_code, result.stderr) == (
            3,
            f"mtasts: error: --ca-file {missing}：読めません：そのようなファイルやディレクトリはありません\n",
        )


def test_english_stays_as_it_was(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--nameserver", "nope", "example.com"], env=C_LOCALE)
    assert result.stderr == (
        "mtasts: error: --nameserver 'nope': 'nope' is not an IP address (give the nameserver as IP[:PORT])\n"
    )


def test_a_line_the_catalogue_does_not_know_stays_english_whole(tmp_path: Path) -> None:
    """A partly known line is not half translated: the reader gets the English sentence whole
    (here a store URL whose reason comes from the Redis client, in English)."""
    from mtasts.cli.exitcodes import in_language
    from mtasts.i18n import set_language

    set_language("ja")
    assert in_language("--db: something no shape knows") == "--db: something no shape knows"
    assert in_language("must not be empty") == "空にはできません"
    # a line a command has already translated is left alone
    assert in_language(JA.text("--redis-prefix: must not be empty")) == JA.text("--redis-prefix: must not be empty")


# --- the warnings of mtasts check and mtasts monitor (mtasts: warning: ...), whole or not at all


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that refuses every document (400: not worth sending again)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_webhook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_notification_that_cannot_be_sent_is_said_in_japanese(refusing_webhook: str, tmp_path: Path) -> None:
    """``monitor run`` with a webhook that refuses the document and an SMTP server that cannot be
    reached: each channel's warning line whole in Japanese, what the systems said kept as data."""
    from tests.monitor.conftest import TWO_MX

    smtp = f"127.0.0.1:{_closed_port()}"
    with running_lab([TWO_MX]) as world:
        domain = world.domain("two-mx")
        world.call(lambda: world.lab.set_records(f"_smtp._tls.{domain}", "TXT", ['"v=TLSRPTv1; rua=ftp://x"']))
        address, port = world.nameserver
        args = [
            "monitor", "run", domain,
            "--nameserver", f"{address}:{port}", "--ca-file", str(world.lab.ca_file),
            "--https-port", str(world.https_port), "--smtp-port", str(world.smtp_port), "--timeout", "2",
            "--webhook", refusing_webhook,
            "--mail-to", "ops@example.com", "--mail-from", "mtasts@example.com", "--smtp", smtp,
        ]  # fmt: skip
        english = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "en.sqlite3")], env=C_LOCALE)
        japanese = CliRunner().invoke(app, ["--lang", "ja", *args, "--db", str(tmp_path / "ja.sqlite3")], env=C_LOCALE)
    assert english.exit_code == japanese.exit_code == 0, english.output
    kept = " (1 notification kept, sent again at the next run)"
    assert sorted(english.stderr.splitlines()) == [
        f"mtasts: warning: mail to {smtp}: cannot reach {smtp}: Connection refused{kept}",
        f"mtasts: warning: webhook {refusing_webhook}: attempt 1: HTTP 400"
        f" (not retried: the receiver refuses the document){kept}",
    ]
    assert sorted(japanese.stderr.splitlines()) == [
        f"mtasts: warning: {smtp} へのメール：{smtp} に接続できません：接続を拒否されました"
        "（通知 1 件を保管し、次の実行で送り直します）",
        f"mtasts: warning: Webhook {refusing_webhook}：1 回目：HTTP 400"
        "（受信側がこの文書を拒否しているため、再試行しません）（通知 1 件を保管し、次の実行で送り直します）",
    ]
    for line in english.stderr.splitlines():
        error = line.removeprefix("mtasts: warning: ").removesuffix(kept)
        assert JA.translate(error).complete, error


def test_a_warning_the_catalogue_does_not_know_stays_english_whole() -> None:
    """A reason the catalogue does not know leaves the whole warning English, as an error line
    (a made-up reason, through the function the command uses); a known one is Japanese whole."""
    from mtasts.cli.monitor import _delivery_warning
    from mtasts.i18n import set_language
    from mtasts.monitor.service import Delivery

    set_language("ja")
    unknown = Delivery("webhook", 2, "webhook https://hook.example/: attempt 1: the receiver is on fire")
    assert _delivery_warning(unknown) == (
        "webhook https://hook.example/: attempt 1: the receiver is on fire"
        " (2 notifications kept, sent again at the next run)"
    )
    known = Delivery(
        "webhook", 2, "webhook https://hook.example/: attempt 1: connection refused; attempt 2: connection refused"
    )
    assert _delivery_warning(known) == (
        "Webhook https://hook.example/：1 回目：接続を拒否されました; 2 回目：接続を拒否されました"
        "（通知 2 件を保管し、次の実行で送り直します）"
    )


@pytest.mark.lab
def test_a_lost_check_worker_is_said_in_japanese(lab: Any, tmp_path: Path) -> None:
    """``check -w 2`` under ``LANG=ja_JP.UTF-8``, one worker killed as the OOM killer would: the
    warning is whole Japanese (the checks go on, as in English: tests/check/test_bulk.py)."""
    from tests.check.test_bulk import _descendants, _nx, _wait_for_lines
    from tests.cli.terminal import COMMAND, environment

    names = _nx(lab, 500)
    listing = tmp_path / "domains.txt"
    listing.write_text("\n".join(names) + "\n")
    output = tmp_path / "results.jsonl"
    options = check_options(lab.info(), timeout=2)
    process = subprocess.Popen(
        [*COMMAND, "check", "-f", str(listing), "-o", str(output), "-w", "2", "-c", "8", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment({"NO_COLOR": "1", **JA_LOCALE}),
    )
    _wait_for_lines(output, 100, process)
    workers = [pid for pid, parent in _descendants(process.pid).items() if parent != process.pid]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    (warning,) = [line for line in stderr.decode().splitlines() if line.startswith("mtasts: warning: ")]
    match = re.fullmatch(
        r"mtasts: warning: チェックのワーカーが、(\d+) 件のドメインのチェック中にシグナル 9 で強制終了しました。"
        r"(\d+) 件をチェックし直します",
        warning,
    )
    assert match, warning
    english = f"a check worker was killed by signal 9 while checking {match[1]} domains; {match[2]} are checked again"
    assert warning == f"mtasts: warning: {JA.text(english)}"
