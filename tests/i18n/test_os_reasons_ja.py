"""The operating system's reasons inside the sentences of the commands, in Japanese: each command
run as a user runs it (a child process under ``LANG=ja_JP.UTF-8``), its line whole in Japanese,
and the same line in English under ``LANG=C`` (the English is the source and stays as it was).

The reason comes from ``exc.strerror`` ("No such file or directory"), lower-cased by some modules
("connection refused"), or after Python's ``[Errno N]``: :class:`mtasts.i18n.Translator` knows
it in every spelling, and a reason it does not know stays as it is without turning the sentence
around it English.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtasts.i18n import Translated, translator
from tests.commands import MTASTS
from tests.publish.hosting import config_text, make_domains

JA = translator("ja")
_BASE = {"LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": "", "NO_COLOR": "1", "COLUMNS": "200"}
NOT_FOUND_JA = "そのようなファイルやディレクトリはありません"
REFUSED_JA = "接続を拒否されました"


def mtasts(*args: str, lang: str = "ja_JP.UTF-8", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MTASTS, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **_BASE, "LANG": lang},
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("mtasts: error: ")]
    return line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def refusing_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the translator: every spelling of a reason, and a reason it does not know


@pytest.mark.parametrize(
    ("english", "japanese"),
    [
        ("cannot read it: No such file or directory", f"読めません：{NOT_FOUND_JA}"),
        ("cannot read it: no such file or directory", f"読めません：{NOT_FOUND_JA}"),
        ("cannot read it: [Errno 2] No such file or directory", f"読めません：[Errno 2] {NOT_FOUND_JA}"),
        ("cannot start the lab: Address already in use", "ラボを起動できません：アドレスはすでに使用されています"),
        ("cannot start the lab: address already in use", "ラボを起動できません：アドレスはすでに使用されています"),
        (
            "cannot connect: 192.0.2.1: Connection refused; 2001:db8::1: Network is unreachable",
            f"接続できません：192.0.2.1：{REFUSED_JA}; 2001:db8::1：ネットワークに到達できません",
        ),
    ],
)
def test_a_reason_is_known_in_every_spelling(english: str, japanese: str) -> None:
    assert JA.translate(english) == Translated(japanese, True)


def test_a_reason_the_catalogue_does_not_know_stays_as_it_is_in_a_japanese_sentence() -> None:
    said = JA.translate("cannot start the lab: the flux capacitor is empty")
    assert (said.text, said.complete) == ("ラボを起動できません：the flux capacitor is empty", True)
    # a reason is data only where the shape says so: an unknown sentence is still reported as English
    assert not JA.translate("the flux capacitor is empty").complete


# --- the commands


def test_a_missing_file_to_ingest(tmp_path: Path) -> None:
    args = ("report", "ingest", "/nonexistent", "--db", f"sqlite:///{tmp_path}/reports.sqlite3")
    english, japanese = mtasts(*args, lang="C"), mtasts(*args)
    assert english.returncode == japanese.returncode == 3
    assert "error: cannot read /nonexistent: No such file or directory" in english.stderr.splitlines()
    assert f"エラー: /nonexistent を読めません：{NOT_FOUND_JA}" in japanese.stderr.splitlines()


def test_a_missing_ca_file() -> None:
    args = ("check", "--ca-file", "/nonexistent", "example.com")
    english, japanese = mtasts(*args, lang="C"), mtasts(*args)
    assert english.returncode == japanese.returncode == 3
    assert error_line(english) == "mtasts: error: --ca-file /nonexistent: cannot read it: No such file or directory"
    assert error_line(japanese) == f"mtasts: error: --ca-file /nonexistent：読めません：{NOT_FOUND_JA}"


def test_report_serve_with_a_certificate_it_cannot_read(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n")
    through_a_file = f"{key}/cert.pem"
    db = ("--db", f"sqlite:///{tmp_path}/reports.sqlite3")
    cases = [
        (str(tmp_path), "is a folder, not a file", "ファイルではなくフォルダです"),
        (through_a_file, "a part of the path is not a folder", "パスの途中にフォルダでないものがあります"),
        (
            str(key),
            "no PEM certificate in it (it holds a private key, not a certificate)",
            "PEM の証明書が入っていません（入っているのは証明書ではなく秘密鍵です）",
        ),
    ]
    for cert, english_reason, japanese_reason in cases:
        args = ("report", "serve", "--cert", cert, "--key", str(key), *db)
        english, japanese = mtasts(*args, lang="C"), mtasts(*args)
        assert english.returncode == japanese.returncode == 3
        assert error_line(english) == f"mtasts: error: --cert {cert}: {english_reason}"
        assert error_line(japanese) == f"mtasts: error: --cert {cert}：{japanese_reason}"


def test_report_serve_on_a_port_in_use(taken_port: int, tmp_path: Path) -> None:
    args = ("report", "serve", "--no-tls", "--host", "127.0.0.1", "--port", str(taken_port))
    result = mtasts(*args, "--db", f"sqlite:///{tmp_path}/reports.sqlite3")
    assert result.returncode == 3
    assert error_line(result) == (
        f"mtasts: error: --port {taken_port}：127.0.0.1:{taken_port} はほかのプログラムが使用中です"
        "（--port 0 なら空いているポートを選びます）"
    )


def test_publish_serve_on_an_address_in_use(taken_port: int, tmp_path: Path) -> None:
    domains = make_domains(tmp_path / "domains", 1)
    config = tmp_path / "publish.toml"
    config.write_text(config_text(domains, listen=(f"127.0.0.1:{taken_port}",)))
    english, japanese = (
        mtasts("publish", "serve", "--config", str(config), lang="C"),
        mtasts("publish", "serve", "--config", str(config)),
    )
    assert english.returncode == japanese.returncode == 3
    assert error_line(english) == (
        f"mtasts: error: cannot listen on 127.0.0.1:{taken_port} (the policy listener, [server] listen): "
        "Address already in use; another program listens there: stop it, or give [server] listen another address"
    )
    assert error_line(japanese) == (
        f"mtasts: error: 127.0.0.1:{taken_port} で待ち受けできません（ポリシーのリスナー、[server] listen）："
        "アドレスはすでに使用されています。別のプログラムがそこで待ち受けています。"
        "それを止めるか、[server] listen に別のアドレスを指定してください"
    )


def test_publish_serve_with_a_certificate_it_cannot_read(tmp_path: Path) -> None:
    domains = make_domains(tmp_path / "domains", 1)
    cert = str(domains.cert(domains.names[0]))
    config = tmp_path / "publish.toml"
    config.write_text(config_text(domains).replace(cert, f"{cert}/x"))
    result = mtasts("publish", "serve", "--config", str(config))
    assert result.returncode == 3
    line = error_line(result)
    assert f"{cert}/x を読めません：ディレクトリではありません" in line, line
    assert "Not a directory" not in line


@pytest.mark.skipif(os.geteuid() != 0, reason="--standard-ports needs root")
def test_lab_up_on_a_port_in_use() -> None:
    """The lab's nameserver listens on the first address of --network, port 53 with
    --standard-ports: another program there stops it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.213.0.1", 53))
        sock.listen()
        args = ("lab", "up", "--standard-ports", "--network", "127.213.0.0/16", "-s", "enforce-ok")
        english, japanese = mtasts(*args, lang="C"), mtasts(*args)
    assert english.returncode == japanese.returncode == 3
    assert error_line(english) == "mtasts: error: cannot start the lab: Address already in use"
    assert error_line(japanese) == "mtasts: error: ラボを起動できません：アドレスはすでに使用されています"


def test_the_digest_mailed_to_a_refusing_server(refusing_port: int, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/reports.sqlite3"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert mtasts("report", "ingest", str(empty), "--db", db).returncode == 0  # the database, with no report
    smtp = f"127.0.0.1:{refusing_port}"
    args = ("report", "digest", "--mail-to", "ops@example.com", "--smtp", smtp, "--smtp-security", "none")
    english, japanese = mtasts(*args, "--db", db, lang="C"), mtasts(*args, "--db", db)
    assert english.returncode == japanese.returncode == 3
    assert error_line(english) == f"mtasts: error: cannot send the digest: cannot reach {smtp}: Connection refused"
    assert error_line(japanese) == f"mtasts: error: まとめを送信できません：{smtp} に接続できません：{REFUSED_JA}"


def test_imap_on_a_refusing_port(refusing_port: int, tmp_path: Path) -> None:
    where = f"127.0.0.1:{refusing_port}"
    args = ("report", "ingest", "--imap", f"imap://user:secret@{where}/INBOX", "--db", f"sqlite:///{tmp_path}/r.db")
    english, japanese = mtasts(*args, lang="C"), mtasts(*args)
    assert english.returncode == japanese.returncode == 3
    assert error_line(english) == f"mtasts: error: IMAP connect failed: Connection refused ({where})"
    assert error_line(japanese) == f"mtasts: error: IMAP の connect に失敗しました：{REFUSED_JA}（{where}）"
