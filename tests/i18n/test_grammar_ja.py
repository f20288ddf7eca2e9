"""``mtasts resolver selftest`` in Japanese: each reason :mod:`mtasts.resolver.grammar` gives
for an answer Postfix would not take (what a failing selftest line shows after its code) is a
shape of the catalogue, translated whole; the answer's own words stay as they are."""

from __future__ import annotations

import re

import pytest

from mtasts.i18n import translator
from mtasts.resolver.grammar import PostfixVersion, check_answer

JA = translator("ja")
_JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")
V3_3, V3_9, V3_11 = PostfixVersion(3, 3), PostfixVersion(3, 9), PostfixVersion(3, 11)

# (reply, Postfix version, the codes the grammar finds): one bad answer per rule
BAD_ANSWERS: list[tuple[str, PostfixVersion, set[str]]] = [
    ("OK secure { match=.example.com", V3_9, {"unbalanced-brace"}),
    ("OK secure match=a}b", V3_9, {"stray-brace"}),
    ("TEMP resolver down", V3_9, {"deferral"}),
    ("MAYBE secure", V3_9, {"not-a-reply"}),
    ("OK " + "x" * 100_000, V3_9, {"too-large"}),
    ("OK   ", V3_9, {"empty"}),
    ("OK paranoid match=mx.example.com", V3_9, {"unknown-level"}),
    ("OK secure colour=red match=mx.example.com", V3_9, {"unknown-attribute"}),
    ("OK secure match=mx.example.com servername=hostname", V3_3, {"attribute-too-new"}),
    ("OK secure match=mx.example.com match=mx2.example.com", V3_9, {"repeated-attribute"}),
    ("OK secure", V3_9, {"no-match"}),
    ("OK secure match=mx.example.com ciphers=", V3_9, {"empty-value"}),
    ("OK secure match=mx.example.com::.example.net", V3_9, {"empty-match-name"}),
    ("OK secure match=192.0.2.1", V3_9, {"address-in-match"}),
    ("OK secure match=-bad-.example", V3_9, {"bad-match-name"}),
    ("OK secure match=mx.example.com servername=-bad-", V3_9, {"bad-servername"}),
    ("OK secure match=mx.example.com connection_reuse=maybe", V3_9, {"bad-connection-reuse"}),
    ("OK secure match=mx.example.com policy_type=dane", V3_11, {"bad-policy-type"}),
    ("OK secure match=mx.example.com policy_domain=-bad-", V3_11, {"bad-policy-domain"}),
    ("OK secure match=mx.example.com mx_host_pattern=.example.com", V3_11, {"dot-mx-host-pattern"}),
    ("OK secure match=mx.example.com mx_host_pattern=*.-bad-", V3_11, {"bad-mx-host-pattern"}),
]


@pytest.mark.parametrize(("reply", "version", "codes"), BAD_ANSWERS, ids=[sorted(c)[0] for _, _, c in BAD_ANSWERS])
def test_every_reason_an_answer_is_refused_is_said_whole_in_japanese(
    reply: str, version: PostfixVersion, codes: set[str]
) -> None:
    problems = check_answer(reply, version)
    assert {p.code for p in problems} == codes, problems
    for problem in problems:
        translated = JA.translate(problem.message)
        assert translated.complete, f"no shape fits: {problem.message!r}"
        assert _JAPANESE.search(translated.text), translated.text
        words = re.sub(r"'[^']*'|\S*=\S*", " ", translated.text)  # the answer's own words stay
        assert not re.search(r"\b(?:is|not|an?|the|never|needs|has|without)\b", words), translated.text


def test_the_answer_s_own_words_stay_as_they_are() -> None:
    (problem,) = check_answer("OK secure match=mx.example.com servername=-bad-", V3_9)
    assert JA.text(problem.message) == "servername=-bad- は hostname、nexthop、名前のどれでもありません"
    (problem,) = check_answer("OK secure match=mx.example.com mx_host_pattern=.example.com", V3_11)
    assert JA.text(problem.message) == (
        "mx_host_pattern=.example.com は Postfix 3.10.5 以降どれにも一致しません（*.example.com と書いてください）"
    )
    (problem,) = check_answer("OK secure match=a}b", V3_9)
    assert JA.text(problem.message) == "語の中に波括弧があります：'match=a}'"
