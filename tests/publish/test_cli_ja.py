"""``mtasts publish`` in Japanese: ``plan``, ``status``, ``apply`` (refused and done), ``retire``,
``verify`` (drift findings), ``init``, ``export`` and a configuration error under ``--lang ja`` /
``LANG=ja_JP.UTF-8``,
against the worlds of the English tests (the lab's DNS or Debian's ``knotd``, the policy host,
one trustme CA, the history in a SQLite file).

Where a command changes nothing, it runs in English and in Japanese on the same world: every
sentence of the English output (a step, its reason, a refusal, a finding's message, why it
matters and its fix, what comes next) must have a shape in :mod:`mtasts.i18n.messages`
(``Translated.complete``) and its translation must be what the Japanese output shows. Every
line of the Japanese output is Japanese, or data only (names, ids, records, stages, codes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.policy import Mode
from mtasts.i18n import set_language, translator
from mtasts.publish.history import Served
from mtasts.publish.host import PolicyHost
from mtasts.publish.verify import RULES, DomainFacts, verify_domain
from tests.commands import MTASTS
from tests.publish import test_apply, test_plan_cli, test_verify
from tests.publish.knot import Knot, need_knotd, start_knot

JA = translator("ja")
_JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")
# what a line may hold and still be data: names, addresses, ids, hashes, records, stages, codes
_DATA = re.compile(
    r'"[^"]*"|https?://\S+|\S+\.\S+|\S*\d\S*|\b(?:draft|testing|enforce|retiring|removed|none)\b'
    r"|\b[a-z0-9]+(?:-[a-z0-9]+)+\b|\b(?:id|sha256|max_age|IN|TXT)\b"
)


@pytest.fixture(autouse=True)
def _language_of_the_environment() -> Iterator[None]:
    """``--lang`` in-process sets the process's language: every test starts and ends without it."""
    set_language(None)
    yield
    set_language(None)


def is_data(line: str) -> bool:
    return re.search(r"[A-Za-z]{2,}", _DATA.sub(" ", line)) is None


def assert_every_line_japanese(text: str) -> None:
    """Each line is Japanese or data, and holds no English phrase (three words running) outside
    data and the commands it names."""
    for line in text.splitlines():
        assert _JAPANESE.search(line) or is_data(line), f"an English line in the Japanese output: {line!r}"
        rest = _DATA.sub(" ", re.sub(r"`[^`]*`|mtasts(?: [a-z]+)+", " ", line))
        assert not re.search(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", rest), f"English left in: {line!r}"


def japanese(english: str) -> str:
    """``english`` in Japanese, failing when a part of it has no shape (or no translation)."""
    translated = JA.translate(english)
    assert translated.complete, f"no shape fits (or no translation): {english!r}"
    assert _JAPANESE.search(translated.text), translated.text
    return translated.text


def sentences(english: str) -> Iterator[str]:
    """The sentences of an English text output, without the structure around them: indentation,
    step numbers, labels, a finding's severity and code, a "next" line's date. Head lines (the
    domain's own, not indented) and the guards' values are checked line by line only."""
    for line in english.splitlines():
        if not line.startswith("  "):
            continue
        text = re.sub(r"^\d+\. ", "", line.strip())
        text = re.sub(r"^(?:error|warning|info) [a-z0-9-]+: ", "", text)
        text = re.sub(r"^(?:why|fix|note|next): ", "", text)
        text = re.sub(r", from \d{4}-\d\d-\d\d \d\d:\d\d UTC$", "", text)
        if text.startswith(("guards: ", "v=STSv1")):
            continue
        yield text


def assert_translated(english: str, ja: str) -> None:
    """Each sentence of the English output is translated whole and shown so in the Japanese;
    every Japanese line is Japanese or data; the two have the same lines. New policy ids come
    from the clock of each run, so ids are compared as one."""
    english, ja = (re.sub(r"\b\d{8}T\d{6}\b", "20260000T000000", text) for text in (english, ja))
    assert len(ja.splitlines()) == len(english.splitlines()), (english, ja)
    checked = 0
    for sentence in sentences(english):
        assert japanese(sentence) in ja, (sentence, ja)
        checked += 1
    assert checked, english
    assert_every_line_japanese(ja)


async def mtasts(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The real command in its own process (it drives its own event loop)."""
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8", **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


# --- plan: the steps and their reasons, and a refused enforce ---------------------------------------


@pytest.mark.lab
async def test_plan_in_japanese(tmp_path: Path) -> None:
    domain = test_plan_cli.DOMAIN
    live_id = test_plan_cli.LIVE_ID
    async with test_plan_cli.served_domain(tmp_path) as world:
        config, web_address = world.config, world.web_address
        args = ["publish", "plan", *world.options()]

        code, ja, err = await mtasts("--lang", "ja", *args)
        assert (code, err) == (0, "")
        assert ja == f"{domain}: testing: 何もする必要はありません（id {live_id}）\n"

        # the configuration changes: five steps, each with its reason
        config.write_text(test_plan_cli.config_text(web_address, 43200))
        code, english, _ = await mtasts(*args)
        assert code == 0
        code, ja, err = await mtasts(*args, env={"LANG": "ja_JP.UTF-8"})
        assert (code, err) == (0, "")
        assert_translated(english, ja)
        assert ja.count("     理由：") == 5
        assert "ポリシーホストを再読み込み" in ja or "mtasts publish reload" in ja

        # JSON stays English, whatever the language
        code, data, _ = await mtasts("--lang", "ja", *args, "--json")
        (plan,) = json.loads(data)
        assert [s["action"] for s in plan["steps"]] == ["serve", "verify", "record", "publish-txt", "confirm-txt"]
        assert plan["steps"][0]["reason"] in english

        # enforce three days into testing: each refusing guard on its line, in Japanese
        config.write_text(test_plan_cli.config_text(web_address, 86400, mode="enforce"))
        code, english, _ = await mtasts(*args)
        assert code == 1
        code, ja, err = await mtasts("--lang", "ja", *args)
        assert (code, err) == (1, "")
        assert_translated(english, ja)
        assert ja.splitlines()[0] == f"{domain}: testing → enforce"
        assert ja.splitlines()[1].startswith("  testing → enforce を拒否：")


# --- status: the guard values and what comes next; a configuration that cannot be read ---------------


def test_status_in_japanese(runner: CliRunner, tmp_path: Path) -> None:
    domain, mx = test_plan_cli.DOMAIN, test_plan_cli.MX
    config = tmp_path / "publish.toml"
    config.write_text(
        test_plan_cli.config_text("127.0.0.1", 86400) + '\n[[domain]]\nname = "new.example"\nmode = "testing"\n'
        'mx = ["mx.new.example"]\nmax_age = 86400\n'
    )
    db = tmp_path / "mtasts.sqlite3"
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    body = test_plan_cli.body(86400)
    test_plan_cli.record_history(db, Served(domain, test_plan_cli.LIVE_ID, body, Mode.TESTING, 86400, since))
    test_plan_cli.store_clean_report(db, since + timedelta(days=1), domain=domain, mx=mx)
    args = ["publish", "status", "--config", str(config), "--db", str(db)]

    english = runner.invoke(app, args)
    assert english.exit_code == 0, english.output
    ja = runner.invoke(app, ["--lang", "ja", *args])
    assert ja.exit_code == 0, ja.output
    assert_translated(english.output, ja.output)
    lines = ja.output.splitlines()
    assert lines[0] == (
        f"{domain}: testing（{since:%Y-%m-%d %H:%M} UTC から、id {test_plan_cli.LIVE_ID}、max_age 86400）"
    )
    assert lines[1] == "  確認項目：testing-days 3/14（未達）, reporters 1/2（未達）, failures 0/0"
    assert lines[2].startswith("  次：enforce は次を待っています：") or lines[2].startswith("  次：")
    assert lines[3] == "new.example: draft。設定：testing"
    assert lines[-1] == "2 件のドメイン: 1 testing, 1 draft"

    # --json stays English under --lang ja
    data = runner.invoke(app, ["--lang", "ja", *args, "--json"])
    assert json.loads(data.output)[0]["next"] in english.output


def test_a_configuration_that_cannot_be_read_is_said_in_japanese(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    english = runner.invoke(app, ["publish", "status", "--config", str(missing)])
    ja = runner.invoke(app, ["--lang", "ja", "publish", "status", "--config", str(missing)])
    assert ja.exit_code == english.exit_code == 3
    (line,) = english.output.splitlines()
    assert line.startswith("mtasts: error: ")
    assert ja.output == f"mtasts: error: {japanese(line.removeprefix('mtasts: error: '))}\n"
    assert f"{missing}：設定を読めません：" in ja.output

    # a configuration with mistakes: each problem (where, key, what is wrong; what to do) on its line
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nadmin = "off"\n\n[[domain]]\nname = "a.example"\nmode = "enforcing"\n'
        'mx = []\nmax_age = 99999999999\ncolour = "red"\n'
    )
    set_language(None)  # --lang ja of the run above set this process's language
    english = runner.invoke(app, ["publish", "status", "--config", str(bad)])
    ja = runner.invoke(app, ["--lang", "ja", "publish", "status", "--config", str(bad)])
    assert ja.exit_code == english.exit_code == 2
    assert len(english.output.splitlines()) == 4
    assert ja.output.splitlines() == [
        f"mtasts: error: {japanese(line.removeprefix('mtasts: error: '))}" for line in english.output.splitlines()
    ]
    assert "domain[1].mode：'enforcing' はモードではありません" in ja.output

    ja = runner.invoke(app, ["--lang", "ja", "publish", "plan", "--config", str(missing), "--force"])
    assert ja.exit_code == 2
    assert (
        ja.output
        == "mtasts: error: --force と --reason TEXT は一緒に指定します。確認項目を無視する理由を書いてください\n"
    )


_A_DOMAIN = '\n[[domain]]\nname = "a.example"\nmode = "testing"\nmx = ["mx.a.example"]\nmax_age = 86400\n'
BAD_TABLES = {
    "server": (
        '[server]\nlisten = ["192.0.2.1", "[::1]", "x:1", "192.0.2.1:99999", "[::ffff:192.0.2.1]:1", "192.0.2.1:5",'
        ' "192.0.2.1:5"]\nadmin = 5\naccess_log = "yes"\ncache_max_age = "x"\ncertificate_cache = 0\n'
        "requests_per_second = 0\ncolour = 1\n",
        "server.requests_per_second：0.001 以上でなければなりません; 値を大きくしてください",
    ),
    "acme": (
        '[acme]\ndirectory = "http://ca.example"\ncontact = ["hostmaster"]\nchallenge = "dns-01"\nstorage = 1\n'
        "listen = 80\nca_file = 3\n",
        "acme.challenge：'dns-01' は対応しているチャレンジではありません; 'http-01' か 'tls-alpn-01' を使ってください",
    ),
    "dns": (
        '[dns]\nserver = "ns.example"\nzone = 1\nkey_name = "-bad-"\nalgorithm = "hmac-md5"\nttl = -1\n'
        'timeout = "soon"\n',
        'dns.secret_file：ありません; 例：secret_file = "tsig.secret"',
    ),
    "report": (
        '[report]\npath = "no slash"\nstore = 3\naccept = "all"\nmax_body = 1\nrate_per_minute = 0\n'
        'body_timeout = "x"\nparse_workers = 999\n',
        "report.rate_per_minute：0 は 0.001〜1e+06 の数値ではありません; 例：rate_per_minute = 60",
    ),
}


@pytest.mark.parametrize("table", sorted(BAD_TABLES))
def test_every_problem_of_a_table_is_said_whole_in_japanese(runner: CliRunner, tmp_path: Path, table: str) -> None:
    """The problems of [server], [acme], [dns] and [report] (and the listen addresses' own), each
    line whole in Japanese: a half-translated line would be shown in English."""
    text, expected = BAD_TABLES[table]
    bad = tmp_path / "bad.toml"
    bad.write_text(text + _A_DOMAIN)
    args = ["publish", "plan", "--config", str(bad)]
    english = runner.invoke(app, args)
    ja = runner.invoke(app, ["--lang", "ja", *args])
    assert ja.exit_code == english.exit_code == 2, english.output
    lines = english.output.splitlines()
    assert len(lines) >= 5, english.output
    assert all(line.startswith(f"mtasts: error: {bad}:") and f" {table}." in line for line in lines), lines
    assert ja.output.splitlines() == [
        f"mtasts: error: {japanese(line.removeprefix('mtasts: error: '))}" for line in lines
    ]
    assert_every_line_japanese(ja.output)
    assert expected in ja.output


# --- apply: refused by the guards, and done; retire's first run ---------------------------------------


async def run_publish(
    world: test_apply.World, knot: Knot, host: PolicyHost, *args: str, lang: str | None = "ja"
) -> tuple[int, str, str]:
    assert host.admin_bound is not None
    return await mtasts(
        *(("--lang", lang) if lang else ()),
        "publish",
        *args,
        "--config",
        str(world.config),
        "--db",
        str(world.db),
        "--admin",
        host.admin_bound.to_text(),
        "--nameserver",
        f"{knot.host}:{knot.port}",
        "--ca-file",
        str(world.tmp / "certs" / "ca.pem"),
        "--https-port",
        str(host.bound[0].port),
        "--timeout",
        "5",
    )


@pytest.mark.lab
async def test_apply_refused_and_done_and_retire_in_japanese(tmp_path: Path) -> None:
    need_knotd()
    domain = test_apply.DOMAIN
    world = test_apply.World(tmp_path)
    with start_knot(tmp_path / "knot", domain, world.records(world.web)) as knot:
        world.config.write_text(test_apply.config_text(world.web, 86400, knot))
        host = world.host(world.config, world.web)
        await host.start()
        try:
            # refused: enforce three days into testing, no reports (nothing changes: run it twice)
            enforce = test_apply.config_text(world.web, 86400, knot).replace('mode = "testing"', 'mode = "enforce"')
            world.config.write_text(enforce)
            code, english, _ = await run_publish(world, knot, host, "apply", lang=None)
            assert code == 1
            code, ja, err = await run_publish(world, knot, host, "apply")
            assert (code, err) == (1, "")
            assert_translated(english, ja)
            assert ja.splitlines()[0] == f"{domain}:"
            assert all(line.startswith("  testing → enforce を拒否：") for line in ja.splitlines()[1:])
            assert "14 日間必要です" in ja

            # done: a new max_age, served, verified, recorded, published by RFC 2136, confirmed
            world.config.write_text(test_apply.config_text(world.web, 43200, knot))
            code, ja, err = await run_publish(world, knot, host, "apply")
            assert (code, err) == (0, ""), ja + err
            new = test_apply.entries(world.db)[-1]
            assert new.policy_id != test_apply.LIVE_ID
            english = "\n".join(
                [
                    f"{domain}: done",
                    "  served: reloaded the policy host: generation 2, 1 domain served",
                    f"  verified: mta-sts.{domain} serves the new body (sha256 {new.sha256[:12]})",
                    f"  recorded: id {new.policy_id} in the history",
                    f'  published: _mta-sts.{domain}. 300 IN TXT "v=STSv1; id={new.policy_id}" (RFC 2136 update)',
                    f"  confirmed: _mta-sts.{domain} answers id={new.policy_id}",
                ]
            )
            assert ja.splitlines() == [f"{domain}: 完了", *(f"  {japanese(s)}" for s in sentences(english))]

            code, ja, _ = await run_publish(world, knot, host, "apply")
            assert (code, ja) == (0, f"{domain}: 何もする必要はありません\n")

            # retire, first run: mode none configured, served, verified, recorded, published; then wait
            code, ja, err = await run_publish(world, knot, host, "retire", domain)
            assert (code, err) == (0, ""), ja + err
            lines = ja.splitlines()
            assert lines[0] == f"{domain}: 完了"
            assert lines[1] == "  " + japanese(f'configured: mode = "none", max_age = 43200 in {world.config}')
            assert lines[-1].startswith("  次：")
            assert f"mtasts publish retire {domain}" in lines[-1]
            assert_every_line_japanese(ja)
            assert 'mode = "none"' in world.config.read_text()
        finally:
            await host.stop()


# --- verify: drift findings, with why and fix ---------------------------------------------------------


def test_every_verify_rule_says_why_and_what_to_do_in_japanese() -> None:
    for code, rule in RULES.items():
        japanese(rule.why)
        assert japanese(rule.fix.replace("<domain>", "example.com")), code


# the table's cases say their details shortly; a real run quotes the parser's and the resolver's sentences
_REAL_DETAILS = {"mode is missing": "the policy has no 'mode' field", "SERVFAIL": "the nameserver answered SERVFAIL"}


@pytest.mark.parametrize(
    ("case", "domain_facts"), [c[:2] for c in test_verify.CASES], ids=[c[0] for c in test_verify.CASES]
)
def test_every_verify_finding_is_said_whole_in_japanese(case: str, domain_facts: DomainFacts) -> None:
    """Every finding of every case of the judging table: its message, why it matters and its fix."""
    changes = {
        field: _REAL_DETAILS[getattr(domain_facts, field)]
        for field in ("policy_invalid", "txt_error")
        if getattr(domain_facts, field) in _REAL_DETAILS
    }
    for finding in verify_domain(dataclasses.replace(domain_facts, **changes), now=test_verify.NOW).findings:
        for sentence in (finding.message, finding.why, finding.fix):
            japanese(sentence)


@pytest.mark.lab
async def test_verify_in_japanese(tmp_path: Path) -> None:
    good, drift, twice = test_verify.GOOD, test_verify.DRIFT, test_verify.TWICE
    async with test_verify.served_domains(tmp_path) as world:
        await world.drift()
        args = ["publish", "verify", *world.options()]
        code, english, _ = await mtasts(*args)
        assert code == 1
        code, ja, err = await mtasts("--lang", "ja", *args)
        assert (code, err) == (1, "")
        assert_translated(english, ja)
        lines = ja.splitlines()
        assert lines[0].startswith(f"{good}: 問題なし (id 20261101T000000, sha256 ")
        assert f"{drift}: 問題 3 件" in ja
        assert f"  エラー txt-multiple: _mta-sts.{twice} には v=STSv1 で始まる TXT レコードが 2 件あります" in lines
        assert "    v=STSv1; id=20261201T000000" in lines  # the evidence as it is
        assert "    対処：" in ja
        assert "    理由：" in ja
        assert lines[-1] == "3 件のドメインを検証しました：エラー 3 件, 警告 1 件, 注記 0 件"


# --- export: what was written and what to do next ------------------------------------------------------


def test_export_in_japanese(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nadmin = "off"\n\n'
        '[[domain]]\nname = "a.example"\nmode = "testing"\nmx = ["mx.a.example"]\nmax_age = 86400\n'
    )
    outputs = []
    for lang, folder in ((None, "en"), ("ja", "ja")):
        target = tmp_path / folder
        lang_args = ["--lang", lang] if lang else []
        result = runner.invoke(
            app, [*lang_args, "publish", "export", str(target), "--format", "nginx", "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output.replace(str(target), "/srv/export"))
    english, ja = outputs
    assert len(ja.splitlines()) == len(english.splitlines())
    assert_every_line_japanese(ja)
    (warning,) = (line for line in english.splitlines() if line.startswith("mtasts: warning: "))
    assert f"mtasts: warning: {japanese(warning.removeprefix('mtasts: warning: '))}\n" in ja
    (step,) = (line for line in english.splitlines() if line.startswith("next: "))
    assert f"次：{japanese(step.removeprefix('next: '))}\n" in ja
    assert "1 件のドメインを /srv/export に書き出しました（nginx）" in ja


# --- init: the entry added, and what would block enforce --------------------------------------------


@pytest.mark.lab
async def test_init_in_japanese(tmp_path: Path) -> None:
    from tests.publish import test_init

    domain = test_init.DOMAIN
    config = tmp_path / "publish.toml"
    async with test_init.live_domain(tmp_path) as (network, _):
        code, _, english = await mtasts("publish", "init", domain, "--print", *network)
        assert code == 0, english
        code, out, err = await mtasts("--lang", "ja", "publish", "init", domain, "--config", str(config), *network)
        assert code == 0, err
        assert out == (
            f"{domain}：{config} に追加しました（mode testing、max_age 86400、MX ホスト 2 台、rua {test_init.RUA}）"
            "。1 件の指摘が enforce を妨げます\n"
        )
        # the warning: the finding's message and fix, each translated whole
        (line,) = english.splitlines()
        head = f"mtasts: warning: {domain}: would block enforce: mx-cert-expired: "
        message, fix = line.removeprefix(head).split("; fix: ")
        assert err == (
            f"mtasts: warning: {domain}：enforce を妨げます：mx-cert-expired：{japanese(message)}。"
            f"対処：{japanese(fix)}\n"
        )

        code, _, err = await mtasts("--lang", "ja", "publish", "init", domain, "--config", str(config), *network)
        assert code == 2
        assert err == (
            f"mtasts: error: {domain} はすでに {config}（2 行目）に設定されています。そのエントリを編集してください\n"
        )
