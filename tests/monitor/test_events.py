"""The event kinds' texts: a finding event reads as new when it opens and as resolved when it
clears (in the webhook's document as on the web page), and every title, fix and message the
rules write has its Japanese in the findings catalogue (the web pages show them through it)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from mtasts.core.problems import Severity
from mtasts.i18n import translator
from mtasts.monitor.events import CHECK_CODES, EVENT_KINDS, Condition, Transition, TransitionKind, events_table
from mtasts.monitor.notify import mail_text, webhook_body
from mtasts.monitor.rules import check_conditions, report_conditions
from mtasts.monitor.snapshot import CertificateSeen, RecordState
from tests.monitor import test_rules

NOW = test_rules.NOW
MESSAGE = "the MX mx3.example.com matches no 'mx' line of the policy; senders refuse to deliver to it"
FIX = "Add 'mx: mx3.example.com' (or a '*.' pattern covering it) to the policy and change the policy id."
KEYS = ["id", "transition", "domain", "code", "subject", "severity", "title", "message", "explanation", "fix"]


def finding(kind: TransitionKind) -> Transition:
    at = NOW if kind is TransitionKind.OPENED else NOW + timedelta(hours=1)
    subject = "mx-not-in-policy mx3.example.com"
    return Transition(kind, 7, "example.com", "finding", subject, Severity.WARNING, MESSAGE, FIX, NOW, at)


def test_a_finding_is_new_when_opened_and_resolved_when_cleared() -> None:
    opened, cleared = finding(TransitionKind.OPENED), finding(TransitionKind.CLEARED)
    assert opened.to_dict()["title"] == "a new finding"
    assert cleared.to_dict()["title"] == "the finding is resolved"
    document = json.loads(webhook_body([opened, cleared], now=NOW))
    assert [(e["transition"], e["code"], e["title"]) for e in document["events"]] == [
        ("opened", "finding", "a new finding"),
        ("cleared", "finding", "the finding is resolved"),
    ]
    assert [list(e)[: len(KEYS)] for e in document["events"]] == [KEYS, KEYS]  # the keys did not change
    subject, body = mail_text([opened, cleared])
    assert subject == "mtasts monitor: 1 new and 1 cleared: example.com"
    assert f"NEW warning example.com: finding [mx-not-in-policy mx3.example.com]: {MESSAGE}" in body
    assert f"CLEARED warning example.com: finding [mx-not-in-policy mx3.example.com]: {MESSAGE}" in body
    assert f"    Fix: {FIX}" in body


def test_a_kind_without_a_cleared_title_keeps_its_title() -> None:
    kind = EVENT_KINDS["sts-record-gone"]
    assert kind.titled(cleared=True) == kind.titled(cleared=False) == "the _mta-sts record is gone"


def test_the_docs_table_names_both_titles() -> None:
    assert "| a new finding (cleared: the finding is resolved): The check reports" in events_table()


# the rules tests' clean snapshot, with a policy host certificate far from expiry
GOOD = replace(
    test_rules.GOOD, certificates=(CertificateSeen("policy", "mta-sts.example.com", NOW + timedelta(days=60)),)
)


def rule_conditions() -> list[Condition]:
    """A condition of every kind of check event the rules write the message of, and of the
    report event they write themselves (the other report events quote the digest, translated
    with it; a finding event quotes the inspector)."""
    runs = [
        replace(GOOD, policy_sha256="b" * 64),  # policy-changed-same-id
        replace(GOOD, record_id="20261203"),  # policy-id-changed
        replace(GOOD, mx=("mx1.example.com", "mx2.example.com"), mx_unmatched=("mx2.example.com",)),
        replace(GOOD, mx=("mx9.example.com",), policy_sha256=None, policy_failure="the policy file is not valid"),
        replace(GOOD, mx=(), policy_sha256=None, policy_failure="no valid policy"),
        replace(GOOD, mx=("mx2.example.com",)),  # added and removed, the policy lists every MX
        replace(GOOD, record=RecordState.ABSENT, record_id=None),  # sts-record-gone
        replace(
            GOOD,
            certificates=(
                CertificateSeen("policy", "mta-sts.example.com", NOW + timedelta(days=20)),
                CertificateSeen("mx", "mx1.example.com", NOW - timedelta(days=1)),
            ),
        ),
    ]
    found = [c for run in runs for c in check_conditions(GOOD, run, (), now=NOW)]
    monitored = NOW - timedelta(days=30)
    return found + report_conditions("example.com", [], [], today=NOW.date(), monitored_since=monitored)


def test_the_rules_write_every_kind_of_message() -> None:
    conditions = rule_conditions()
    assert {c.code for c in conditions} == (CHECK_CODES - {"finding", "cert-expiry-14d"}) | {"no-reports"}
    messages = [c.message for c in conditions]
    assert len(messages) == len(set(messages))
    assert "the MX hosts of example.com changed (added mx2.example.com; removed mx1.example.com): " in " ".join(
        messages
    )


@pytest.mark.parametrize(
    "english",
    [
        *(text for kind in EVENT_KINDS.values() for text in (kind.title, kind.cleared_title, kind.fix) if text),
        *(c.message for c in rule_conditions()),
        "the check did not run",
        "the check stopped on an unexpected error",
    ],
)
def test_every_text_of_an_event_has_its_japanese(english: str) -> None:
    translated = translator("ja").translate(english)
    assert translated.complete, english
    assert translated.text != english
    assert any(c >= "\u3000" for c in translated.text), translated.text  # Japanese, not a copy
