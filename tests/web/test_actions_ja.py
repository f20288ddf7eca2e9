"""The publish actions' pages in Japanese: the plan (steps, their reasons, refusals, notes, why an
action is not possible), the result (the outcome's message, each step done, what comes next) and
the audit trail on the domain page, against the real world of :mod:`tests.web.test_actions`
(the policy host with its admin listener, Debian's ``knotd``, the lab's MX).

Each sentence is the English the code produced in this run (read from the JSON API and the audit
trail, which stay English), translated through the shapes of :mod:`mtasts.i18n.messages`: a
change of wording in the code that the shapes no longer fit fails here, as does a sentence
left in English on the Japanese page.
"""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from mtasts.core.policy import Mode
from mtasts.i18n import translator
from mtasts.web.actions import translate_list
from tests.web.auth_fixtures import form_token
from tests.web.test_actions import DOMAIN, Site, World, confirm, fingerprint
from tests.web.test_actions import site as site  # noqa: PLC0414 (the fixtures, shared)
from tests.web.test_actions import world as world  # noqa: PLC0414

pytestmark = pytest.mark.lab

JA = translator("ja")


def japanese(english: str) -> str:
    """``english`` in Japanese, failing when a part of it has no shape (or no translation)."""
    translated = JA.translate(english)
    assert translated.complete, f"no shape fits (or no translation): {english!r}"
    assert translated.text != english, english
    assert re.search("[\u3040-\u30ff\u4e00-\u9fff]", translated.text), translated.text
    return translated.text


def listed_in_japanese(english: str) -> str:
    """A list of sentences joined by "; " (the audit trail's entry, a refused run's message), as
    the pages show it, failing when a sentence of it has no shape."""
    translated = translate_list(JA, english)
    assert translated.complete, f"no shape fits a sentence of: {english!r}"
    return translated.text


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


def done_items(html: str) -> list[str]:
    """The steps done, as the result page lists them."""
    listed = section(html, '<ul id="done">', "</ul>")
    return [text_of(item) for item in re.findall(r"<li>(.*?)</li>", listed)]


def section(html: str, start: str, end: str | None = None) -> str:
    part = html[html.index(start) :]
    return part if end is None else part[: part.index(end)]


async def in_japanese(site: Site, name: str) -> httpx.AsyncClient:
    client = await site.signed_in(name)
    client.headers["accept-language"] = "ja"
    return client


async def plan_json(client: httpx.AsyncClient, action: str, **query: str) -> dict[str, object]:
    response = await client.get(f"/api/domains/{DOMAIN}/actions/{action}", params=query)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def plan_sentences(data: dict[str, object]) -> list[str]:
    plan = data["plan"]
    assert isinstance(plan, dict)
    steps = [t for s in plan["steps"] for t in (s["text"], s["reason"]) if t]
    return [*steps, *plan["refusals"], *plan["notes"], *(g["message"] for g in plan["guards"])]


def assert_shown_in_japanese(english: list[str], html: str) -> None:
    shown = text_of(html)
    for sentence in english:
        assert japanese(sentence) in shown, sentence
        assert sentence not in shown, sentence


async def test_the_action_pages_and_the_audit_trail_in_japanese(world: World, site: Site) -> None:
    alice = await in_japanese(site, "alice")

    never = await alice.get(f"/domains/{DOMAIN}/actions/retire")
    stop = (await plan_json(alice, "retire"))["stop"]
    assert isinstance(stop, str)
    assert japanese(stop) in text_of(never.text)
    assert "一度も公開されていません" in text_of(never.text)

    shown = await plan_json(alice, "apply")
    plan, done = await confirm(alice, "apply")
    sentences = plan_sentences(shown)
    assert len(sentences) >= 5  # serve, verify, record, publish-txt, confirm-txt and their reasons
    assert_shown_in_japanese(sentences, section(plan.text, 'id="plan"', 'id="confirm"'))
    assert "ポリシーホストを再読み込み" in text_of(plan.text)
    assert done.status_code == 200, done.text
    result = section(done.text, 'id="outcome"')
    (entry,) = [e for e in site.accounts.audit_entries(domain=DOMAIN) if e.action == "publish-apply"]
    steps = done_items(result)  # the audit trail's entry is "done; " and the steps done
    assert len(steps) == 5
    assert listed_in_japanese(entry.detail) == "; ".join(["完了", *steps])
    assert steps[0] == "配信しました：ポリシーホストを再読み込みしました：世代 2、2 ドメインを配信"
    assert steps[3].startswith(f"公開しました：_mta-sts.{DOMAIN}. 300 IN TXT")

    refused_plan = await plan_json(alice, "enforce")
    plan, refused = await confirm(alice, "enforce")
    assert_shown_in_japanese(plan_sentences(refused_plan), section(plan.text, 'id="plan"', 'id="confirm"'))
    assert "testing → enforce を拒否：" in text_of(plan.text)
    assert refused.status_code == 409
    (refusal, _) = site.accounts.audit_entries(domain=DOMAIN)
    message = refusal.detail.removeprefix("refused: ")
    assert listed_in_japanese(message) in text_of(section(refused.text, 'id="message"'))

    _, retired = await confirm(alice, "retire")
    assert 'data-outcome="done"' in retired.text
    assert world.mode() is Mode.NONE
    assert "次の作業：" in text_of(section(retired.text, 'id="next"'))
    (retire, *_) = site.accounts.audit_entries(domain=DOMAIN)
    steps = done_items(retired.text)
    assert steps[0].startswith("設定しました：")
    assert listed_in_japanese(retire.detail) == "; ".join(["完了", *steps])
    waiting = await plan_json(alice, "retire")
    page = await alice.get(f"/domains/{DOMAIN}/actions/retire")
    assert_shown_in_japanese(plan_sentences(waiting), section(page.text, 'id="plan"', 'id="confirm"'))
    assert "mode none を配信し続けます" in text_of(page.text)

    domain_page = (await alice.get(f"/domains/{DOMAIN}")).text
    audit = text_of(section(domain_page, 'id="audit"'))
    for each in site.accounts.audit_entries(domain=DOMAIN):
        assert listed_in_japanese(each.detail) in audit, each.detail
    assert "完了; 配信しました：ポリシーホストを再読み込みしました" in audit
    assert "拒否：testing → enforce を拒否：" in audit, audit


async def test_a_form_mistake_and_a_changed_plan_in_japanese(world: World, site: Site) -> None:
    alice = await in_japanese(site, "alice")
    plan = await alice.get(f"/domains/{DOMAIN}/actions/apply")
    world.config.write_text(world.config.read_text().replace("max_age = 86400\nrua", "max_age = 172800\nrua"))
    data = {"csrf_token": form_token(plan.text), "fingerprint": fingerprint(plan.text)}
    stale = await alice.post(f"/domains/{DOMAIN}/actions/apply", data=data)
    assert stale.status_code == 409
    assert "計画が、表示したときから変わりました" in text_of(stale.text)
    assert "the plan is not the one shown" not in stale.text

    retire = await alice.get(f"/domains/{DOMAIN}/actions/retire?max_age=-1")
    assert retire.status_code == 400
    assert "0 以上の整数" in text_of(section(retire.text, 'id="error"'))
