"""The roll-out state machine (:mod:`mtasts.publish.rollout`): pure, time injected, no sleeping.

Every test builds the history, the live state and the report rows as plain data, as ``plan``
and ``status`` gather them, and asserts what a user reads: the steps in RFC 8461 §8 order, the
exact TXT record, the guard that refuses and when it will pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mtasts.core.findings import Finding
from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import Severity
from mtasts.core.tlsrpt_report import FailureRow, PolicyRow
from mtasts.core.verdict import MxState, sender_verdict, unknown_verdict
from mtasts.publish.config import DomainConfig
from mtasts.publish.history import MemoryPublishHistory, Served
from mtasts.publish.rollout import (
    Action,
    Evidence,
    Guard,
    LiveInspection,
    LiveState,
    Rules,
    Stage,
    domain_status,
    evidence_from_rows,
    evidence_window,
    mint_id,
    plan_rollout,
    retire_entry,
    retire_safe_at,
    stage_of,
)
from mtasts.publish.rollout import testing_since as since_testing  # not collected as a test

DOMAIN = "example.com"
MX = ("mx1.example.com", "mx2.example.com")
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def entry(mode: str = "testing", max_age: int = 86400, mx: tuple[str, ...] = MX) -> DomainConfig:
    policy = Policy(mode=Mode(mode), max_age=max_age, mx=mx)
    return DomainConfig(name=DOMAIN, mode=Mode(mode), max_age=max_age, mx=mx, policy=policy)


def body(mode: str = "testing", max_age: int = 86400, mx: tuple[str, ...] = MX) -> bytes:
    return Policy(mode=Mode(mode), max_age=max_age, mx=mx).to_text().encode()


def served(policy_id: str, since: datetime, mode: str = "testing", max_age: int = 86400) -> Served:
    return Served(DOMAIN, policy_id, body(mode, max_age), Mode(mode), max_age, since)


def history_of(*entries: Served) -> list[Served]:
    history = MemoryPublishHistory()
    for item in entries:
        history.record(item)
    return history.entries(DOMAIN)


def inspection(*states: MxState, blocking: tuple[Finding, ...] = ()) -> LiveInspection:
    """The inspector's prediction as the CLI builds it: the core's sender verdict under enforce."""
    enforced = Policy(mode=Mode.ENFORCE, max_age=86400, mx=MX)
    return LiveInspection(sender_verdict(enforced, states), blocking)


CLEAN = inspection(*(MxState(host, reachable=True, tls_valid=True) for host in MX))


def live(
    served_body: bytes | None,
    policy_id: str | None,
    mx: tuple[str, ...] | None = MX,
    inspected: LiveInspection | None = CLEAN,
) -> LiveState:
    records = () if policy_id is None else (f"v=STSv1; id={policy_id}",)
    return LiveState(
        served_body=served_body,
        fetch_error="" if served_body is not None else "connection refused",
        sts_records=records,
        mx_hosts=mx,
        inspection=inspected,
    )


def actions(plan: object) -> list[Action]:
    return [step.action for step in plan.steps]  # type: ignore[attr-defined]


def sts_rows(day: date, *orgs: str) -> list[PolicyRow]:
    return [PolicyRow(day, org, "sts", DOMAIN, 100, 0) for org in orgs]


def clean_evidence(now: datetime, history: list[Served], *orgs: str, failures: tuple[FailureRow, ...] = ()) -> Evidence:
    since, until = evidence_window(history, now)
    rows = [row for offset in range((until - since).days + 1) for row in sts_rows(since + timedelta(offset), *orgs)]
    return evidence_from_rows(DOMAIN, MX, rows, failures, since=since, until=until)


# --- the order of the steps ------------------------------------------------------------------------


def test_a_new_domain_is_served_then_verified_and_only_then_announced() -> None:
    plan = plan_rollout(DOMAIN, entry(), [], live(None, None), now=T0)
    assert plan.stage is Stage.DRAFT
    assert plan.target is Stage.TESTING
    assert actions(plan) == [Action.SERVE, Action.VERIFY, Action.RECORD, Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert plan.policy_id == "20261201T120000"
    publish = plan.steps[3]
    assert publish.record is not None
    assert publish.record.to_zone_line() == '_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=20261201T120000"'
    assert "only once the verify step has passed" in publish.text
    assert "connection refused" in plan.steps[0].reason
    assert plan.body == body()


def test_the_publish_step_says_the_ttl_the_record_is_published_with() -> None:
    """With ``[dns] ttl`` the zone is updated with that TTL: the step shows the same."""
    plan = plan_rollout(DOMAIN, entry(), [], live(None, None), now=T0, record_ttl=300)
    publish = plan.steps[3]
    assert publish.record is not None
    assert publish.record.ttl == 300
    assert '_mta-sts.example.com. 300 IN TXT "v=STSv1; id=20261201T120000"' in publish.text
    assert plan.to_dict()["steps"][3]["zone_line"] == '_mta-sts.example.com. 300 IN TXT "v=STSv1; id=20261201T120000"'


def test_a_changed_body_gets_a_new_id_announced_after_serving_it() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY))
    changed = entry(mx=(*MX, "mx3.example.com"))
    plan = plan_rollout(DOMAIN, changed, history, live(body(), "20261101T000000"), now=T0)
    assert actions(plan) == [Action.SERVE, Action.VERIFY, Action.RECORD, Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert plan.policy_id == "20261201T120000"
    assert "the live id 20261101T000000 was announced for another body" in plan.steps[3].reason


def test_once_the_host_serves_the_new_body_only_the_id_is_left() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY))
    changed = entry(mx=(*MX, "mx3.example.com"))
    plan = plan_rollout(DOMAIN, changed, history, live(changed.body, "20261101T000000"), now=T0)
    assert actions(plan) == [Action.RECORD, Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert "(verified)" in plan.steps[1].text


def test_nothing_to_do_when_what_is_live_is_the_history_and_the_configuration() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY))
    plan = plan_rollout(DOMAIN, entry(), history, live(body(), "20261101T000000"), now=T0)
    assert plan.nothing_to_do
    assert plan.policy_id == "20261101T000000"


def test_a_recorded_body_whose_id_is_not_live_yet_keeps_its_id() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY), served("20261130T000000", T0 - DAY))
    plan = plan_rollout(DOMAIN, entry(), history, live(body(), "20261101T000000"), now=T0)
    assert actions(plan) == [Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert plan.policy_id == "20261130T000000"


def test_a_policy_live_before_the_history_is_adopted_not_republished() -> None:
    plan = plan_rollout(DOMAIN, entry(), [], live(body(), "20250101T000000"), now=T0)
    assert actions(plan) == [Action.RECORD]
    assert plan.policy_id == "20250101T000000"
    assert "its testing days count from then" in plan.steps[0].reason


def test_two_sts_records_are_no_policy_and_get_replaced() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY))
    state = LiveState(body(), "", ("v=STSv1; id=20261101T000000", "v=STSv1; id=old"), "", MX)
    plan = plan_rollout(DOMAIN, entry(), history, state, now=T0)
    assert actions(plan) == [Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert "no single valid v=STSv1 record" in plan.steps[0].reason


def test_ids_are_unique_per_body_even_within_one_second() -> None:
    assert mint_id(T0, []) == "20261201T120000"
    assert mint_id(T0, ["20261201T120000", "20261201T120001"]) == "20261201T120002"
    history = history_of(served("20261201T120000", T0 - DAY))
    plan = plan_rollout(DOMAIN, entry(max_age=3600), history, live(body(), "20261201T120000"), now=T0)
    assert plan.policy_id == "20261201T120001"


def test_from_dns_mx_come_from_the_live_mx() -> None:
    config = DomainConfig(name=DOMAIN, mode=Mode.TESTING, max_age=86400, mx=None)
    plan = plan_rollout(DOMAIN, config, [], live(None, None, mx=("mx9.example.com",)), now=T0)
    assert plan.body == body(mx=("mx9.example.com",))
    unknown = plan_rollout(DOMAIN, config, [], live(None, None, mx=None), now=T0)
    assert not unknown.steps
    assert "live MX of example.com are unknown" in unknown.refusals[0]


# --- the testing → enforce guard ----------------------------------------------------------------------


def test_enforce_is_refused_too_early_and_accepted_once_the_reports_show_enough_clean_days() -> None:
    history = history_of(served("20261201T120000", T0))
    enforce = entry("enforce")
    state = live(body(), "20261201T120000")

    # day 3: too few days, one reporter
    now = T0 + 3 * DAY
    early = plan_rollout(DOMAIN, enforce, history, state, now=now, evidence=clean_evidence(now, history, "Google"))
    assert early.steps == ()
    refused = {g.guard for g in early.guards if not g.passed}
    assert refused == {Guard.TESTING_DAYS, Guard.REPORTERS}
    days = next(g for g in early.guards if g.guard is Guard.TESTING_DAYS)
    assert days.value == 3
    assert days.ready_at == T0 + 14 * DAY
    assert any("testing → enforce refused: in testing for 3 days" in r for r in early.refusals)

    # day 15, two reporters, but a certificate failure on a listed MX on day 5
    now = T0 + 15 * DAY
    bad_day = (T0 + 5 * DAY).date()
    failure = FailureRow(bad_day, "Microsoft", "sts", DOMAIN, "certificate-expired", 7, receiving_mx_hostname=MX[0])
    evidence = clean_evidence(now, history, "Google", "Microsoft", failures=(failure,))
    dirty = plan_rollout(DOMAIN, enforce, history, state, now=now, evidence=evidence)
    assert [g.guard for g in dirty.guards if not g.passed] == [Guard.FAILURES]
    failures = next(g for g in dirty.guards if g.guard is Guard.FAILURES)
    assert failures.value == 7
    assert failures.ready_at == datetime(2026, 12, 20, tzinfo=UTC)  # 14 clean days after 2026-12-06
    assert dirty.steps == ()

    # day 19: the failure has left the 14-day window
    now = datetime(2026, 12, 20, tzinfo=UTC)
    evidence = clean_evidence(now, history, "Google", "Microsoft", failures=(failure,))
    assert evidence.failures == ()
    ready = plan_rollout(DOMAIN, enforce, history, state, now=now, evidence=evidence)
    assert all(g.passed for g in ready.guards)
    assert ready.refusals == ()
    assert actions(ready) == [Action.SERVE, Action.VERIFY, Action.RECORD, Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert ready.target is Stage.ENFORCE
    assert ready.body == body("enforce")


def test_enforce_is_refused_without_report_data() -> None:
    history = history_of(served("20261201T120000", T0))
    plan = plan_rollout(DOMAIN, entry("enforce"), history, live(body(), "20261201T120000"), now=T0 + 30 * DAY)
    reporters = next(g for g in plan.guards if g.guard is Guard.REPORTERS)
    assert not reporters.passed
    assert reporters.message.startswith("no report data")


def test_enforce_straight_from_draft_is_refused() -> None:
    plan = plan_rollout(DOMAIN, entry("enforce"), [], live(None, None), now=T0)
    days = next(g for g in plan.guards if g.guard is Guard.TESTING_DAYS)
    assert not days.passed
    assert "not in testing" in days.message
    assert plan.steps == ()


def test_failures_on_unlisted_mx_do_not_count_but_policy_host_failures_do() -> None:
    day = T0.date()
    rows = [
        FailureRow(day, "A", "sts", DOMAIN, "starttls-not-supported", 3, receiving_mx_hostname="old.example.net"),
        FailureRow(day, "A", "sts", DOMAIN, "sts-policy-fetch-error", 2),
        FailureRow(day, "A", "sts", DOMAIN, "validation-failure", 5, receiving_mx_hostname=MX[0]),
        FailureRow(day, "B", "sts", "other.example", "certificate-expired", 9, receiving_mx_hostname=MX[0]),
        FailureRow(day, "B", "sts", DOMAIN, "certificate-not-trusted", 4),  # no MX named: it may be ours
    ]
    evidence = evidence_from_rows(DOMAIN, MX, [], rows, since=day, until=day)
    assert [(f.result_type, f.sessions) for f in evidence.failures] == [
        ("sts-policy-fetch-error", 2),
        ("certificate-not-trusted", 4),
    ]


def test_reporters_are_organisations_that_saw_the_sts_policy_in_the_window() -> None:
    day = T0.date()
    rows = [
        PolicyRow(day, "Google", "sts", "Example.COM", 10, 0),
        PolicyRow(day, "Google", "sts", DOMAIN, 10, 0),
        PolicyRow(day, "Yahoo", "no-policy-found", DOMAIN, 10, 0),
        PolicyRow(day - 20 * DAY, "Old", "sts", DOMAIN, 10, 0),
        PolicyRow(day, "Other", "sts", "other.example", 10, 0),
    ]
    evidence = evidence_from_rows(DOMAIN, MX, rows, [], since=day - 13 * DAY, until=day)
    assert evidence.reporters == ("Google",)


def test_a_live_mx_missing_from_the_policy_blocks_enforce() -> None:
    history = history_of(served("20261201T120000", T0))
    now = T0 + 20 * DAY
    state = live(body(), "20261201T120000", mx=(*MX, "mx3.example.com"))
    evidence = clean_evidence(now, history, "Google", "Microsoft")
    plan = plan_rollout(DOMAIN, entry("enforce"), history, state, now=now, evidence=evidence)
    assert [g.guard for g in plan.guards if not g.passed] == [Guard.LIVE_MX]
    assert "mx3.example.com" in plan.refusals[0]


def enforce_ready(inspected: LiveInspection | None) -> list[object]:
    """The guards that refuse enforce on day 20 with clean reports, given the live inspection."""
    history = history_of(served("20261201T120000", T0))
    now = T0 + 20 * DAY
    evidence = clean_evidence(now, history, "Google", "Microsoft")
    state = live(body(), "20261201T120000", inspected=inspected)
    plan = plan_rollout(DOMAIN, entry("enforce"), history, state, now=now, evidence=evidence)
    failed = [g for g in plan.guards if not g.passed]
    assert bool(failed) == bool(plan.refusals)
    assert (plan.steps == ()) == bool(failed)
    return failed


def test_the_live_inspection_passes_enforce_when_every_listed_mx_validates() -> None:
    assert enforce_ready(CLEAN) == []


def test_an_mx_with_a_bad_certificate_in_the_live_inspection_blocks_enforce() -> None:
    expired = Finding(
        "mx-cert-expired",
        Severity.ERROR,
        "mx2.example.com (192.0.2.2): the certificate expired",
        "Renew the certificate of mx2.example.com.",
        "mx2.example.com",
    )
    states = (MxState(MX[0], True, True), MxState(MX[1], True, False, "the certificate expired"))
    (guard,) = enforce_ready(inspection(*states, blocking=(expired,)))
    assert guard.guard is Guard.LIVE_CHECK  # type: ignore[attr-defined]
    assert guard.value == 1  # type: ignore[attr-defined]
    assert guard.message == (  # type: ignore[attr-defined]
        "the live inspection predicts that enforce would block mail to "
        "mx2.example.com (would skip it: the certificate expired) [mx-cert-expired]"
        "; needs every listed MX to pass: fix them (mtasts check says how) or take them out of the policy"
    )


@pytest.mark.parametrize(
    ("inspected", "message"),
    [
        (
            None,
            "the live inspection of the MX did not run; "
            "needs an answer to the domain's MX lookup: plan again once its DNS answers",
        ),
        (
            LiveInspection(unknown_verdict("not known: the nameserver this check uses does not answer")),
            "the live inspection could not tell: not known: the nameserver this check uses does not answer; "
            "needs a verdict on every listed MX: plan again once that is fixed",
        ),
        (
            inspection(MxState(MX[0], True, True)),  # mx2 was never probed (time budget)
            "the live inspection predicts that enforce would block mail to mx2.example.com (not probed)"
            "; needs every listed MX to pass: fix them (mtasts check says how) or take them out of the policy",
        ),
        (
            inspection(MxState(MX[0], True, True), MxState(MX[1], False, False, "no address")),
            "the live inspection predicts that enforce would block mail to "
            "mx2.example.com (would skip it: unreachable)"
            "; needs every listed MX to pass: fix them (mtasts check says how) or take them out of the policy",
        ),
    ],
)
def test_what_the_live_inspection_does_not_know_holds_enforce_back(
    inspected: LiveInspection | None, message: str
) -> None:
    (guard,) = enforce_ready(inspected)
    assert guard.guard is Guard.LIVE_CHECK  # type: ignore[attr-defined]
    assert guard.message == message  # type: ignore[attr-defined]


def test_force_with_a_reason_overrides_and_is_carried_into_the_record_step() -> None:
    history = history_of(served("20261201T120000", T0))
    plan = plan_rollout(
        DOMAIN,
        entry("enforce"),
        history,
        live(body(), "20261201T120000"),
        now=T0 + DAY,
        force_reason="incident 42: senders must not fall back",
    )
    assert plan.forced_reason == "incident 42: senders must not fall back"
    record = next(s for s in plan.steps if s.action is Action.RECORD)
    assert record.forced_reason == plan.forced_reason
    assert any("guard overridden (incident 42" in n for n in plan.notes)


def test_a_refused_body_the_host_already_serves_is_flagged() -> None:
    history = history_of(served("20261201T120000", T0))
    plan = plan_rollout(DOMAIN, entry("enforce"), history, live(body("enforce"), "20261201T120000"), now=T0 + DAY)
    assert plan.steps == ()
    assert any("already serves this body" in n and "do not publish a new id" in n for n in plan.notes)


# --- max_age growth -----------------------------------------------------------------------------------


def test_max_age_grows_only_after_enforce_was_served_for_its_old_value() -> None:
    history = history_of(served("20261101T000000", T0 - 30 * DAY), served("20261201T120000", T0, "enforce"))
    longer = entry("enforce", max_age=604800)
    state = live(body("enforce"), "20261201T120000")
    early = plan_rollout(DOMAIN, longer, history, state, now=T0 + timedelta(hours=12))
    (guard,) = early.guards
    assert guard.guard is Guard.MAX_AGE
    assert not guard.passed
    assert guard.ready_at == T0 + DAY
    assert early.steps == ()
    later = plan_rollout(DOMAIN, longer, history, state, now=T0 + DAY)
    assert later.refusals == ()
    assert Action.SERVE in actions(later)
    shorter = plan_rollout(DOMAIN, entry("enforce", max_age=3600), history, state, now=T0 + timedelta(hours=1))
    assert shorter.guards == ()
    assert Action.SERVE in actions(shorter)


def test_testing_to_enforce_keeps_the_testing_max_age_first() -> None:
    history = history_of(served("20261201T120000", T0))
    now = T0 + 20 * DAY
    evidence = clean_evidence(now, history, "Google", "Microsoft")
    plan = plan_rollout(
        DOMAIN, entry("enforce", max_age=604800), history, live(body(), "20261201T120000"), now=now, evidence=evidence
    )
    assert [g.guard for g in plan.guards if not g.passed] == [Guard.MAX_AGE]
    assert "serve enforce with max_age 86400 first" in plan.refusals[0]


# --- retiring -----------------------------------------------------------------------------------------


def test_retiring_serves_none_then_waits_out_the_longest_max_age_then_deletes() -> None:
    testing = served("20261001T000000", T0 - 60 * DAY)
    enforce = served("20261101T000000", T0 - 30 * DAY, "enforce", 604800)
    retire = entry("none", max_age=86400)

    first = plan_rollout(DOMAIN, retire, history_of(testing, enforce), live(enforce.body, enforce.policy_id), now=T0)
    assert first.target is Stage.RETIRING
    assert actions(first) == [Action.SERVE, Action.VERIFY, Action.RECORD, Action.PUBLISH_TXT, Action.CONFIRM_TXT]
    assert b"mode: none" in (first.body or b"")

    none = Served(DOMAIN, "20261201T120000", body("none"), Mode.NONE, 86400, T0)
    history = history_of(testing, enforce, none)
    assert stage_of(history) is Stage.RETIRING
    assert retire_safe_at(history) == T0 + 7 * DAY  # the enforce body, served until T0, max_age a week
    waiting = plan_rollout(DOMAIN, retire, history, live(body("none"), none.policy_id), now=T0 + 6 * DAY)
    (wait,) = waiting.steps
    assert wait.action is Action.WAIT
    assert wait.not_before == T0 + 7 * DAY
    assert "enforce policy 20261101T000000 (max_age 604800)" in wait.reason

    done = plan_rollout(DOMAIN, retire, history, live(body("none"), none.policy_id), now=T0 + 7 * DAY)
    assert actions(done) == [Action.DELETE_RECORDS, Action.STOP_SERVING]
    assert done.target is Stage.REMOVED
    delete = done.steps[0]
    assert delete.record is not None
    assert delete.record.to_zone_line() == f'_mta-sts.{DOMAIN}. 3600 IN TXT "v=STSv1; id={none.policy_id}"'
    assert delete.text == f"delete the TXT record at _mta-sts.{DOMAIN}: {delete.record.to_zone_line()}"
    assert f"_smtp._tls.{DOMAIN} is not mtasts's" in done.steps[1].reason
    deleted = plan_rollout(DOMAIN, retire, history, live(body("none"), None), now=T0 + 7 * DAY)
    assert actions(deleted) == [Action.STOP_SERVING]

    # taken out of the configuration once the wait is over: the removal goes on
    out = plan_rollout(DOMAIN, None, history, live(body("none"), none.policy_id), now=T0 + 7 * DAY)
    assert actions(out) == [Action.DELETE_RECORDS, Action.STOP_SERVING]
    # taken out too early: nothing is planned, and the plan says to put it back
    early = plan_rollout(DOMAIN, None, history, live(body("none"), none.policy_id), now=T0 + 6 * DAY)
    assert early.steps == ()
    assert 'may hold an earlier policy until 2026-12-08 12:00 UTC; put it back with mode = "none"' in early.notes[0]

    # removed: the history's last body has ended; a leftover entry is only a note
    removed = MemoryPublishHistory()
    for item in history:
        removed.record(item)
    removed.end(DOMAIN, T0 + 7 * DAY)
    after = plan_rollout(DOMAIN, retire, removed.entries(DOMAIN), live(None, None), now=T0 + 8 * DAY)
    assert after.stage is Stage.REMOVED
    assert after.steps == ()
    assert after.notes == (f"{DOMAIN} was removed on 2026-12-08 12:00 UTC: remove it from the configuration",)


def test_the_retiring_entry_is_mode_none_with_a_short_max_age_and_the_same_mx() -> None:
    retiring = retire_entry(entry("enforce", max_age=604800))
    assert (retiring.mode, retiring.max_age, retiring.mx) == (Mode.NONE, 86400, MX)
    assert retiring.body == body("none", 86400)
    assert retire_entry(entry("testing", max_age=3600)).max_age == 3600  # already shorter: kept
    assert retire_entry(entry(), Rules(retire_max_age=600)).max_age == 600


def test_retiring_a_domain_never_published_has_nothing_to_wait_for() -> None:
    plan = plan_rollout(DOMAIN, entry("none"), [], live(None, None), now=T0)
    assert plan.steps == ()
    assert "never published" in plan.notes[0]


def test_the_stages_follow_the_history() -> None:
    history = MemoryPublishHistory()
    assert stage_of(history.entries(DOMAIN)) is Stage.DRAFT
    history.record(served("a1", T0))
    assert stage_of(history.entries(DOMAIN)) is Stage.TESTING
    history.record(served("a2", T0 + 20 * DAY, "enforce"))
    assert stage_of(history.entries(DOMAIN)) is Stage.ENFORCE
    history.record(served("a3", T0 + 30 * DAY, "none"))
    assert stage_of(history.entries(DOMAIN)) is Stage.RETIRING
    history.end(DOMAIN, T0 + 40 * DAY)
    assert stage_of(history.entries(DOMAIN)) is Stage.REMOVED


def test_testing_days_count_across_testing_bodies_but_restart_after_enforce() -> None:
    history = history_of(served("a1", T0), served("a2", T0 + 5 * DAY))  # an MX change while testing
    assert since_testing(history) == T0
    again = history_of(served("a1", T0), served("a2", T0 + 5 * DAY, "enforce"), served("a3", T0 + 6 * DAY))
    assert since_testing(again) == T0 + 6 * DAY


# --- status -------------------------------------------------------------------------------------------


def test_status_says_when_enforce_becomes_possible() -> None:
    history = history_of(served("20261201T120000", T0))
    now = T0 + 3 * DAY
    status = domain_status(DOMAIN, entry(), history, now=now, evidence=clean_evidence(now, history, "A", "B"))
    assert status.stage is Stage.TESTING
    assert status.next == "enforce possible if reports stay clean"
    assert status.next_at == T0 + 14 * DAY
    days = next(g for g in status.guards if g.guard is Guard.TESTING_DAYS)
    assert days.value == 3


def test_status_waits_on_reporters_without_a_date() -> None:
    history = history_of(served("20261201T120000", T0))
    now = T0 + 20 * DAY
    status = domain_status(DOMAIN, entry(), history, now=now, evidence=clean_evidence(now, history, "A"))
    assert status.next_at is None
    assert "reports from 1 organisation" in status.next


def test_status_of_a_retiring_domain_gives_the_deletion_date() -> None:
    history = history_of(
        served("a1", T0 - 30 * DAY, "enforce", 604800), Served(DOMAIN, "a2", body("none"), Mode.NONE, 86400, T0)
    )
    status = domain_status(DOMAIN, entry("none"), history, now=T0 + DAY)
    assert status.stage is Stage.RETIRING
    assert status.next_at == T0 + 7 * DAY


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="testing_days"):
        Rules(testing_days=0)
