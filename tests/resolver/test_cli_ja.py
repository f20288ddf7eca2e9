"""``mtasts resolver ...`` in Japanese: ``query --direct`` against the lab, the cache commands on
a real SQLite cache and against a running daemon, and the daemon's start lines. The answer
Postfix gets (``OK secure match=...``, ``NOTFOUND``), the codes (source, state, reason) and JSON
stay English; the labels and sentences around them are translated, every one of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n import set_language, translator
from mtasts.i18n.width import cells as columns
from tests.resolver import test_selftest
from tests.resolver.helpers import ServeProcess
from tests.resolver.postfix import free_port
from tests.resolver.test_control import fill

JA = translator("ja")
daemon = test_selftest.daemon  # the fixtures of selftest's real-Postfix tests
postfix_dir = test_selftest.postfix_dir
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""}
JA_LOCALE = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}


@pytest.fixture(autouse=True)
def _language_of_the_environment() -> Iterator[None]:
    """``--lang ja`` sets the process's language: undone after each test, so no later test
    (run in the same process) speaks Japanese."""
    set_language(None)
    yield
    set_language(None)


def resolver(*args: str, lang: str = "ja") -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--lang", lang, "resolver", *args], env=C_LOCALE)
    return result.exit_code, result.output


def _complete(english: str) -> None:
    assert JA.translate(english).complete, english


@pytest.mark.lab
def test_query_direct_for_an_enforce_domain(lab: Any, resolver_options: list[str]) -> None:
    domain = lab.domain("enforce-ok")
    code, out = resolver("query", domain, "--direct", *resolver_options)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"{domain}: OK secure match=mx1.{domain} servername=hostname"  # the answer itself
    assert lines[1] == "  プロファイル  postfix"
    assert lines[2] == "  出どころ      fetched"
    assert re.fullmatch(rf"  ポリシー      mode enforce、max_age \d+、mx mx1\.{re.escape(domain)}", lines[3])
    assert re.fullmatch(r"  id            \S+", lines[4])
    assert re.fullmatch(r"  有効期限      \S+Z", lines[5])
    # the same lookup in English is as it was
    code, english = resolver("query", domain, "--direct", *resolver_options, lang="en")
    assert english.splitlines()[1] == "  profile     postfix"
    assert english.splitlines()[3].startswith("  policy      mode enforce, max_age ")


@pytest.mark.lab
def test_query_direct_testing_says_why_with_its_code(lab: Any, resolver_options: list[str]) -> None:
    code, out = resolver("query", lab.domain("testing-ok"), "--direct", *resolver_options)
    assert code == 0, out
    assert "  理由          mode-testing" in out.splitlines()


@pytest.mark.lab
def test_query_with_dns_down_translates_the_last_error(lab: Any) -> None:
    args = ["query", lab.domain("enforce-ok"), "--nameserver", "127.0.0.1:9", "--timeout", "0.5"]
    code, english = resolver(*args, lang="en")
    assert code == 1, english
    said = next(line for line in english.splitlines() if line.startswith("  last error  "))
    _complete(said.removeprefix("  last error  "))
    code, out = resolver(*args)
    assert code == 1, out
    assert f"  直近のエラー  {JA.text(said.removeprefix('  last error  '))}" in out.splitlines()
    code, document = resolver(*args, "--json")
    assert json.loads(document)["last_error"] == said.removeprefix("  last error  ")  # JSON stays English


def test_query_of_a_non_domain_key() -> None:
    code, out = resolver("query", "[mx.example.com]:25", "--nameserver", "127.0.0.1:9")
    assert code == 0, out
    assert out.splitlines() == [
        "[mx.example.com]:25: NOTFOUND",
        "  プロファイル  postfix",
        "  出どころ      not-a-domain",
        "  理由          メールドメインではありません（親ドメインの確認、アドレス、[host]、host:port）"
        "：すぐに答えました",
    ]


def test_cache_list_show_and_flush(tmp_path: Path) -> None:
    db = str(tmp_path / "cache.sqlite3")
    fill(Path(db))
    code, out = resolver("cache", "list", "--db", db)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["ドメイン", "状態", "mode", "id", "有効期限"]
    assert lines[1].split()[:4] == ["example.com", "policy", "enforce", "id1"]
    assert lines[-1] == "キャッシュ済みのドメイン 3 件"
    # the columns line up as in English: a Japanese character is two columns wide
    english = resolver("cache", "list", "--db", db, lang="en")[1].splitlines()
    assert columns(lines[0][: lines[0].index("mode")]) == english[0].index("mode")
    assert lines[1:-1] == english[1:-1]

    code, out = resolver("cache", "show", "example.com", "--db", db)
    assert code == 0, out
    assert out.splitlines()[:3] == ["example.com: policy", "  mode          enforce", "  id            id1"]
    assert "  有効期限      " in out
    assert "  次の確認      " in out

    code, out = resolver("cache", "flush", "example.com", "--db", db)
    assert (code, out.splitlines()) == (
        0,
        [
            f"ストア（{db}）からキャッシュ済みのドメイン 1 件をフラッシュしました",
            JA.gettext(
                "daemon: not asked (no --admin, and no admin address in the configuration): a running daemon keeps "
                "its copy in memory until it expires or the daemon restarts"
            ),
        ],
    )
    result = CliRunner().invoke(app, ["--lang", "ja", "resolver", "cache", "show", "example.com", "--db", db])
    assert (result.exit_code, result.stderr) == (1, "mtasts: error: example.com はキャッシュにありません\n")


def test_serve_start_lines_and_flush_of_its_memory(tmp_path: Path) -> None:
    """The daemon's start lines in the reader's language (LANG), and ``cache flush --admin``
    reaching it; the log lines it writes stay English."""
    admin = free_port()
    env = {**JA_LOCALE, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path)}
    arguments = ["--listen", "inet:127.0.0.1:0", "--memory-only", "--admin", f"127.0.0.1:{admin}"]
    with ServeProcess(arguments, env=env) as serving:
        serving.wait_line(
            r"^mtasts: リゾルバーが inet:127\.0\.0\.1:\d+ で待ち受けています"
            r"（キャッシュ：memory.*）。設定：.*。pid \d+$"
        )
        serving.wait_line(rf"^mtasts: リゾルバーのメトリクス：http://127\.0\.0\.1:{admin}/metrics$")
        db = tmp_path / "cache.sqlite3"
        fill(db)
        code, out = resolver("cache", "flush", "--db", str(db), "--admin", f"127.0.0.1:{admin}")
        assert code == 0, out
        assert out.splitlines() == [
            f"ストア（{db}）からキャッシュ済みのドメイン 3 件をフラッシュしました",
            f"デーモンのメモリー（http://127.0.0.1:{admin}/cache/flush）から"
            "キャッシュ済みのドメイン 0 件をフラッシュしました",
        ]
        assert serving.stop() == 0


@pytest.mark.lab
@test_selftest.needs_postfix
def test_selftest_report(lab: Any, daemon: str, postfix_dir: Path) -> None:
    """The report of ``selftest --postfix`` against a real Postfix's tools and the daemon."""
    enforce = lab.domain("enforce-ok")
    code, out = resolver("selftest", "--postfix", "--postfix-config", str(postfix_dir), enforce)
    assert code == 0, out
    assert out.splitlines()[0] == f"Postfix 3.7.11、マップ socketmap:{daemon}:postfix（smtp_tls_policy_maps から）"
    assert out.splitlines()[1].split() == [
        enforce,
        "有効",
        "OK",
        "secure",
        f"match=mx1.{enforce}",
        "servername=hostname",
    ]
    assert out.splitlines()[3:] == [
        "どの答えも Postfix 3.7.11 で有効です（問い合わせ 2 件）",
        "使われているプロファイル：postfix。3.7.11 に勧めるプロファイル：postfix",
    ]
