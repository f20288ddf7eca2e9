"""The findings catalogue (mtasts.i18n): every sentence the inspector says about every lab
scenario is translated whole into Japanese; the catalogue lacks no message and holds no stale
one; the shipped .mo is compiled from the .po; what is data stays as it was; ``mtasts check``
and the web page speak the chosen language while codes and JSON stay English."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mtasts.check.inspect import DomainReport, Inspector
from mtasts.cli.main import app as mtasts_app
from mtasts.i18n import LANGUAGES, LOCALE_DIR, current, language_from_environment, translator
from mtasts.i18n.messages import MESSAGES, PLURALS
from mtasts.lab.scenarios import CATALOGUE
from mtasts.net.settings import NetworkSettings
from mtasts.web import WebSettings, create_app
from tests.web.conftest import lab_options

babel_extract = pytest.importorskip("babel.messages.extract", reason="Babel (a test dependency) is not installed")
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
_COMPILE = "pybabel compile -d src/mtasts/i18n/locale -D findings"
OTHER_LANGUAGES = [t for t in LANGUAGES if t != "en"]


def _sentences(report: DomainReport) -> Iterator[tuple[str, str]]:
    """(where, English sentence) for everything a person reads about ``report``."""
    for finding in report.findings:
        yield f"{finding.code} message", finding.message
        yield f"{finding.code} fix", finding.fix
    verdict = report.verdict
    yield "verdict", verdict.summary
    for mx in verdict.mx:
        yield f"reason of {mx.host}", mx.reason
    if verdict.readiness:
        yield "readiness", verdict.readiness


@pytest.fixture(scope="module")
def lab_reports(lab: Any) -> list[DomainReport]:
    """Every scenario of the lab, and one checked as a public inspector would (private addresses refused)."""
    import asyncio

    info = lab.info()
    settings = NetworkSettings(
        nameserver=lab.nameserver,
        ca_file=Path(info["ca_file"]),
        timeout=2.0,
        https_port=lab.https_port,
        smtp_port=lab.smtp_port,
    )

    async def run() -> list[DomainReport]:
        names = [lab.domain(name) for name in CATALOGUE]
        reports = [r async for r in Inspector(settings).check_many(names, concurrency=8)]
        reports.append(await Inspector(replace(settings, allow_private=False)).check(lab.domain("enforce-ok")))
        return reports

    return asyncio.run(run())


@pytest.mark.lab
@pytest.mark.parametrize("tag", OTHER_LANGUAGES)
def test_every_sentence_of_every_lab_scenario_is_translated(lab_reports: list[DomainReport], tag: str) -> None:
    tr = translator(tag)
    untranslated = sorted(
        {
            (where, text)
            for report in lab_reports
            for where, text in _sentences(report)
            if not tr.translate(text).complete
        }
    )
    assert not untranslated, (
        f"{len(untranslated)} sentences have no shape in src/mtasts/i18n/messages.py (or no {tag} text): {untranslated}"
    )
    codes = {f.code for report in lab_reports for f in report.findings}
    assert len(codes) >= 40  # the scenarios cover the catalogue, so this covers every finding


def _key(message_id: str | tuple[str, ...]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def _forms(string: str | tuple[str, ...]) -> tuple[str, ...]:
    return (string,) if isinstance(string, str) else tuple(string)


def test_babel_extracts_the_table() -> None:
    """The standard toolchain sees what the code uses: pybabel's extraction of messages.py."""
    path = Path(__file__).resolve().parents[2] / "src" / "mtasts" / "i18n"
    found = {
        _key(message)
        for _, _, message, _, _ in babel_extract.extract_from_dir(
            path, [("messages.py", "python"), ("cli_messages.py", "python")], keywords={"N_": None, "NP_": (1, 2)}
        )
    }
    assert found == set(MESSAGES) | {singular for singular, _ in PLURALS}


@pytest.mark.parametrize("tag", OTHER_LANGUAGES)
def test_every_message_is_translated(tag: str) -> None:
    po_path = LOCALE_DIR / tag / "LC_MESSAGES" / "findings.po"
    with po_path.open("rb") as stream:
        catalogue = read_po(stream)
    wanted = set(MESSAGES) | {singular for singular, _ in PLURALS}
    translated = {_key(m.id): m for m in catalogue if m.id}
    missing = sorted(wanted - set(translated))
    assert not missing, f"{po_path} lacks {len(missing)} messages: {missing}"
    empty = sorted(k for k, m in translated.items() if not m.string or not all(_forms(m.string)))
    assert not empty, f"{po_path}: empty translations: {empty}"
    assert not [k for k, m in translated.items() if m.fuzzy], "fuzzy translations to review"
    unused = sorted(set(translated) - wanted)
    assert not unused, f"{po_path}: messages the code no longer says (remove them): {unused}"
    for key, message in translated.items():
        for form in _forms(message.string):
            assert set(_PLACEHOLDER.findall(form)) == set(_PLACEHOLDER.findall(key)), (key, form)


@pytest.mark.parametrize("tag", OTHER_LANGUAGES)
def test_the_shipped_mo_is_compiled_from_the_po(tag: str) -> None:
    folder = LOCALE_DIR / tag / "LC_MESSAGES"
    with (folder / "findings.po").open("rb") as stream:
        source = {_key(m.id): _forms(m.string) for m in read_po(stream) if m.id}
    with (folder / "findings.mo").open("rb") as stream:
        compiled = {_key(m.id): _forms(m.string) for m in read_mo(stream) if m.id}
    assert compiled == source, f"the .mo is stale: run {_COMPILE}"


# --- the translator -----------------------------------------------------------------------------


def test_a_sentence_is_translated_whole_and_its_data_kept() -> None:
    ja = translator("ja")
    english = "the MX lookup of example.com failed: the nameserver answered SERVFAIL"
    assert (
        ja.text(english)
        == "example.com の MX レコードの問い合わせに失敗しました：ネームサーバーが SERVFAIL を返しました"
    )
    quoted = "mx1.example.com (192.0.2.1): STARTTLS was refused: 454 4.7.0 TLS not available"
    assert ja.text(quoted) == "mx1.example.com（192.0.2.1）：STARTTLS が拒否されました：454 4.7.0 TLS not available"
    assert translator("en").text(english) == english


def test_a_number_placeholder_never_swallows_a_name() -> None:
    text = "_mta-sts.example.com: 2 TXT records begin with 'v=STSv1;'; senders then assume there is no policy"
    assert translator("ja").text(text) == (
        "_mta-sts.example.com：'v=STSv1;' で始まる TXT レコードが 2 件あります。"
        "この場合、送信側はポリシーがないものとみなします"
    )


def test_lists_of_reasons_are_translated_one_by_one() -> None:
    text = (
        "switching to enforce now would block mail to mx1.example.com: not listed in the policy; "
        "mx2.example.com: no validated TLS"
    )
    assert translator("ja").text(text) == (
        "今 enforce に切り替えると、mx1.example.com：ポリシーに記載されていません; "
        "mx2.example.com：検証済みの TLS がありません へのメールが配送できなくなります"
    )


def test_what_the_catalogue_does_not_know_stays_english_and_says_so() -> None:
    result = translator("ja").translate("a sentence mtasts never says")
    assert (result.text, result.complete) == ("a sentence mtasts never says", False)


def test_hostile_input_costs_its_length() -> None:
    """A quoted TXT record can be long and full of the separators the shapes use; recognition
    is str.find over literal pieces, so it ends (no regular expression to backtrack)."""
    hostile = "the TXT lookup of " + ": " * 40_000 + " failed: " + "; " * 5_000
    result = translator("ja").translate(hostile)
    assert (result.text, result.complete) == (hostile, False)  # no name holds white space: left as it was
    assert translator("ja").translate("x" * 200_000).text == "x" * 200_000  # over MAX_TEXT: not read


@pytest.mark.parametrize(
    ("environ", "tag"),
    [
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LC_ALL": "C", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LC_MESSAGES": "ja_JP.eucJP", "LANG": "en_US.UTF-8"}, "ja"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "ja"}, "ja"),
        ({}, "en"),
    ],
)
def test_the_language_of_the_environment(environ: dict[str, str], tag: str) -> None:
    assert language_from_environment(environ) == tag
    assert current(environ).tag == tag


# --- where people read it: mtasts check and the web page ----------------------------------------


@pytest.mark.lab
@pytest.mark.parametrize("how", ["--lang", "LANG"])
def test_mtasts_check_speaks_japanese(lab: Any, how: str) -> None:
    domain = lab.domain("mx-cert-expired")
    arguments = ["check", domain, *lab_options(lab)]
    env = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    if how == "--lang":
        result = CliRunner().invoke(mtasts_app, ["--lang", "ja", *arguments], env={"LANG": "C"})
    else:
        result = CliRunner().invoke(mtasts_app, arguments, env=env)
    assert result.exit_code == 1, result.output
    assert f"対処：mx1.{domain} の証明書を更新し、MTA に再読み込みさせてください。" in result.stdout
    assert "✗ エラー mx-cert-expired" in result.stdout
    assert "判定：メールの配送は保留されます。MTA-STS の検証に通る MX がありません" in result.stdout

    json_result = CliRunner().invoke(mtasts_app, ["--lang", "ja", "check", "--json", domain, *lab_options(lab)])
    [report] = json.loads(json_result.stdout)
    [finding] = [f for f in report["findings"] if f["code"] == "mx-cert-expired"]
    assert finding["fix"] == f"Renew the certificate of mx1.{domain} and reload the MTA."  # JSON stays English


@pytest.mark.lab
async def test_the_web_page_shows_translated_findings(lab: Any) -> None:
    info = lab.info()
    network = NetworkSettings(
        nameserver=lab.nameserver, ca_file=Path(info["ca_file"]), timeout=2.0,
        https_port=lab.https_port, smtp_port=lab.smtp_port,
    )  # fmt: skip
    app = create_app(WebSettings(network=network))
    domain = lab.domain("mx-cert-expired")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://web.test") as client:
            started = await client.get("/check", params={"domain": domain, "lang": "ja"})
            job_id = started.headers["location"].rsplit("/", 1)[1]
            await client.get("/check/events", params={"id": job_id})
            page = (await client.get(f"/result/{job_id}")).text
            english = (await client.get(f"/result/{job_id}", params={"lang": "en"})).text
    finally:
        await app.state.checks.close()
    assert f"mx1.{domain} の証明書を更新し、MTA に再読み込みさせてください。" in page
    assert "証明書の有効期限は" in page
    assert "メールの配送は保留されます" in page
    assert "mx-cert-expired" in page  # codes stay as they are
    assert f"Renew the certificate of mx1.{domain} and reload the MTA." in english
