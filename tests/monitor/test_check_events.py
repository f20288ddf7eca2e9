"""Each check-based event fires once when its condition appears and clears when it goes, on a
real lab domain whose DNS and policy host the test changes between runs (``Lab.set_records``,
``Lab.serve_policy``) and with a clock the test moves (certificate expiry)."""

from __future__ import annotations

from datetime import UTC, timedelta

from mtasts.core.policy import Mode, Policy
from mtasts.core.problems import Severity
from mtasts.lab.scenarios import DEFAULT_POLICY_ID
from mtasts.lab.testing import LabController
from mtasts.monitor.events import TransitionKind
from tests.monitor.conftest import Clock, MonitorFactory, cleared, open_codes, opened


def policy_body(domain: str, *, max_age: int = 604_800, mode: Mode = Mode.ENFORCE) -> bytes:
    return Policy(mode=mode, max_age=max_age, mx=(f"mx1.{domain}", f"mx2.{domain}")).to_text().encode()


async def test_a_body_changed_under_the_same_id_fires_once_and_clears_when_the_id_changes(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    baseline = await monitor.check(domain)
    assert baseline.transitions == ()
    world.call(lambda: world.lab.serve_policy(domain, policy_body(domain, max_age=1_209_600)))
    changed = await monitor.check(domain)
    assert opened(changed) == [("policy-changed-same-id", "")]
    (event,) = changed.transitions
    assert event.severity is Severity.ERROR
    assert f"still {DEFAULT_POLICY_ID}" in event.message
    again = await monitor.check(domain)
    assert again.transitions == ()
    assert open_codes(again) == {"policy-changed-same-id"}
    world.call(lambda: world.lab.set_records(f"_mta-sts.{domain}", "TXT", ['"v=STSv1; id=20261202T100000"']))
    new_id = await monitor.check(domain)
    assert cleared(new_id) == [("policy-changed-same-id", "")]
    assert opened(new_id) == [("policy-id-changed", "")]
    assert f"from {DEFAULT_POLICY_ID} to 20261202T100000" in new_id.transitions[-1].message
    # a notice is about one change: it closes at the next run, without a notification
    after = await monitor.check(domain)
    assert after.transitions == ()
    assert after.open_events == ()


async def test_mx_changes_say_whether_the_policy_still_matches(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    other = world.domain("enforce-ok")
    await monitor.check(domain)
    world.call(lambda: world.lab.set_records(domain, "MX", [f"10 mx1.{domain}."]))
    fewer = await monitor.check(domain)
    assert opened(fewer) == [("mx-changed", "")]
    assert fewer.transitions[0].severity is Severity.INFO
    assert fewer.transitions[0].message.endswith(f"(removed mx2.{domain}): the policy still lists every MX")
    quiet = await monitor.check(domain)
    assert quiet.transitions == ()
    assert quiet.open_events == ()
    world.call(lambda: world.lab.set_records(domain, "MX", [f"10 mx1.{domain}.", f"20 mx1.{other}."]))
    outside = await monitor.check(domain)
    assert set(opened(outside)) == {("mx-changed", ""), ("finding", f"mx-not-in-policy mx1.{other}")}
    mx_event = next(t for t in outside.transitions if t.code == "mx-changed")
    assert mx_event.severity is Severity.ERROR  # the policy is in enforce: senders refuse that MX
    assert f"the policy does not list mx1.{other}" in mx_event.message
    world.call(lambda: world.lab.set_records(domain, "MX", [f"10 mx1.{domain}.", f"20 mx2.{domain}."]))
    back = await monitor.check(domain)
    assert cleared(back) == [("finding", f"mx-not-in-policy mx1.{other}")]
    assert opened(back) == [("mx-changed", "")]


async def test_a_new_finding_fires_once_and_clears_when_resolved(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    name = f"_smtp._tls.{domain}"
    await monitor.check(domain)
    world.call(lambda: world.lab.set_records(name, "TXT", ['"v=TLSRPTv1; rua=ftp://nowhere"']))
    broken = await monitor.check(domain)
    assert opened(broken) == [("finding", f"tlsrpt-syntax {name}")]
    assert broken.transitions[0].severity is Severity.WARNING
    assert broken.transitions[0].fix  # the finding's own fix travels with the event
    assert (await monitor.check(domain)).transitions == ()
    world.call(
        lambda: world.lab.set_records(name, "TXT", [f'"v=TLSRPTv1; rua=https://tlsrpt.{world.lab.zone}/v1/report"'])
    )
    fixed = await monitor.check(domain)
    assert cleared(fixed) == [("finding", f"tlsrpt-syntax {name}")]
    assert fixed.open_events == ()


async def test_certificates_cross_30_14_and_7_days_once_each(
    world: LabController, make_monitor: MonitorFactory, clock: Clock
) -> None:
    monitor, domain = make_monitor(report_events=False), world.domain("two-mx")  # months pass: no reports
    made = world.lab.certs.now.astimezone(UTC)  # the lab's certificates are valid for 365 days from here
    hosts = {f"policy mta-sts.{domain}", f"mx mx1.{domain}", f"mx mx2.{domain}"}
    assert (await monitor.check(domain)).transitions == ()
    clock.now = made + timedelta(days=340)
    month = await monitor.check(domain)
    assert set(opened(month)) == {("cert-expiry-30d", host) for host in hosts}
    assert all(t.severity is Severity.WARNING for t in month.transitions)
    assert (await monitor.check(domain)).transitions == ()
    clock.now = made + timedelta(days=352)
    fortnight = await monitor.check(domain)
    # the nearer threshold replaces the farther one; that clearing is not notified
    assert set(opened(fortnight)) == {("cert-expiry-14d", host) for host in hosts}
    assert cleared(fortnight) == []
    assert open_codes(fortnight) == {"cert-expiry-14d"}  # and not the inspector's expiring-soon findings
    clock.now = made + timedelta(days=359)
    week = await monitor.check(domain)
    assert set(opened(week)) == {("cert-expiry-7d", host) for host in hosts}
    assert all(t.severity is Severity.ERROR for t in week.transitions)
    assert "expires in 6 days" in next(t.message for t in week.transitions if t.subject.startswith("policy"))
    # as after renewing them: a year to go again
    clock.now = made + timedelta(days=1)
    renewed = await monitor.check(domain)
    assert set(cleared(renewed)) == {("cert-expiry-7d", host) for host in hosts}
    assert renewed.open_events == ()


async def test_the_record_gone_fires_once_and_clears_when_it_is_back(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    name = f"_mta-sts.{domain}"
    await monitor.check(domain)
    world.call(lambda: world.lab.set_records(name, "TXT", []))
    gone = await monitor.check(domain)
    assert set(opened(gone)) == {("sts-record-gone", ""), ("finding", f"no-sts-record {name}")}
    gone_event = next(t for t in gone.transitions if t.code == "sts-record-gone")
    assert f"(its id was {DEFAULT_POLICY_ID})" in gone_event.message
    assert (await monitor.check(domain)).transitions == ()
    world.call(lambda: world.lab.set_records(name, "TXT", [f'"v=STSv1; id={DEFAULT_POLICY_ID}"']))
    back = await monitor.check(domain)
    assert set(cleared(back)) == {("sts-record-gone", ""), ("finding", f"no-sts-record {name}")}
    assert back.open_events == ()


async def test_the_policy_gone_fires_once_and_clears_when_it_is_served_again(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    await monitor.check(domain)
    world.call(lambda: world.lab.serve_policy(domain, b"not here\n", status=404))
    gone = await monitor.check(domain)
    codes = opened(gone)
    assert ("policy-gone", "") in codes
    assert any(code == "finding" and subject.startswith("policy-fetch-http-status") for code, subject in codes)
    gone_event = next(t for t in gone.transitions if t.code == "policy-gone")
    assert "404" in gone_event.message
    assert (await monitor.check(domain)).transitions == ()
    world.call(lambda: world.lab.serve_policy(domain, None))
    back = await monitor.check(domain)
    assert ("policy-gone", "") in cleared(back)
    assert back.open_events == ()
    assert all(t.kind is TransitionKind.CLEARED for t in back.transitions)
