"""The schedule: jittered, never later than the interval, deterministic; and the daemon's loop
driven over simulated days by an injected clock and sleep (no real waiting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mtasts.lab.testing import LabController
from mtasts.monitor.schedule import Monitored, due_at, due_domains, parse_interval
from mtasts.monitor.service import Scheduler
from tests.monitor.conftest import Clock, MonitorFactory

START = datetime(2026, 12, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2D", 172_800), (" 7d ", 604_800)]
)
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "why"), [("10", "out of range"), ("8d", "out of range"), ("1w", "not an interval"), ("", "not")]
)
def test_bad_intervals(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_interval(text)


def test_the_jitter_is_early_only_deterministic_and_spread() -> None:
    last = START
    times = [due_at(f"d{n}.example", HOUR, last, jitter=0.2, start=START) for n in range(1000)]
    assert all(last + HOUR * 0.8 <= when <= last + HOUR for when in times)
    assert times == [due_at(f"d{n}.example", HOUR, last, jitter=0.2, start=START) for n in range(1000)]
    assert len({when.minute for when in times}) >= 12  # spread over the 12 minutes of jitter
    assert due_at("d1.example", HOUR, last, jitter=0, start=START) == last + HOUR


def test_domains_never_checked_are_spread_over_the_first_interval_times_jitter() -> None:
    watched = [Monitored(f"d{n}.example") for n in range(100)]
    due, later = due_domains(watched, {}, now=START, start=START, jitter=0.1)
    assert len(due) <= 1
    assert later is not None
    assert later <= START + HOUR * 0.1
    due, _ = due_domains(watched, {}, now=START + HOUR * 0.1, start=START, jitter=0.1)
    assert len(due) == 100


class Sleeper:
    """The injected sleep moves the clock instead of waiting."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)


async def test_the_daemon_checks_each_domain_at_its_own_interval(
    world: LabController, make_monitor: MonitorFactory, clock: Clock
) -> None:
    monitor = make_monitor(report_events=False)
    fast, slow = world.domain("two-mx"), world.domain("enforce-ok")
    watched = [Monitored(fast, timedelta(minutes=10)), Monitored(slow, timedelta(hours=1))]
    scheduler = Scheduler(monitor, watched, clock=clock, jitter=0.1)
    begin = clock.now
    checked: list[tuple[str, float]] = []
    while clock.now < begin + timedelta(hours=3):
        wait = await scheduler.cycle()
        for domain, status in monitor.statuses.items():
            if status.checked_at == clock.now:
                checked.append((domain, (clock.now - begin).total_seconds() / 60))
        await Sleeper(clock)(wait)
    runs = {domain: [minute for d, minute in checked if d == domain] for domain in (fast, slow)}
    assert 18 <= len(runs[fast]) <= 21  # every 9 to 10 minutes for 3 hours
    assert 3 <= len(runs[slow]) <= 4
    gaps = [b - a for a, b in zip(runs[fast], runs[fast][1:], strict=False)]
    assert all(9 <= gap <= 10.01 for gap in gaps), gaps
    assert runs[fast][0] <= 1
    assert runs[slow][0] <= 6
    # and the history agrees with what was seen
    assert len(monitor.history.runs(fast)) == len(runs[fast])
