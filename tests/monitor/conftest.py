"""A small lab of its own per test (the tests change its DNS and policy host between runs, so
the session-wide lab stays as every other test expects it), a clock the test moves, and a
monitor on a fresh SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mtasts.check.inspect import Inspector
from mtasts.lab.scenarios import Delivery, Expectation, Scenario
from mtasts.lab.testing import LabController, running_lab
from mtasts.monitor.events import TransitionKind
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.monitor.notify import Notifier
from mtasts.monitor.service import DomainOutcome, Monitor
from mtasts.net.settings import NetworkSettings
from mtasts.store.store import ReportStore

# a correct enforce deployment with two MX hosts, both listed in its policy
TWO_MX = Scenario("two-mx", "Two MX hosts, both in the policy.", Expectation(Delivery.VALIDATED), mx_count=(2, 1))


@dataclass
class Clock:
    """The time the inspector, the rules and the history see; a test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def world() -> Iterator[LabController]:
    with running_lab([TWO_MX, "enforce-ok"]) as lab:
        yield lab


@pytest.fixture
def clock(world: LabController) -> Clock:
    """An hour after the lab's certificates were made (they are valid for 365 days)."""
    return Clock(world.lab.certs.now.astimezone(UTC) + timedelta(hours=1))


def lab_settings(world: LabController) -> NetworkSettings:
    return NetworkSettings(
        nameserver=world.nameserver,
        ca_file=world.lab.ca_file,
        timeout=2.0,
        https_port=world.https_port,
        smtp_port=world.smtp_port,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'monitor.sqlite3'}") as opened:
        yield opened


class MonitorFactory:
    def __init__(self, world: LabController, clock: Clock, store: ReportStore) -> None:
        self.world, self.clock, self.store = world, clock, store

    def __call__(self, *, notifiers: tuple[Notifier, ...] = (), report_events: bool = True, **options: Any) -> Monitor:
        inspector = Inspector(lab_settings(self.world), clock=self.clock)
        reports = self.store if report_events else None
        history = SqlMonitorHistory(self.store)
        return Monitor(history, inspector, reports=reports, notifiers=notifiers, clock=self.clock, **options)


@pytest.fixture
def make_monitor(world: LabController, clock: Clock, store: ReportStore) -> MonitorFactory:
    return MonitorFactory(world, clock, store)


def opened(outcome: DomainOutcome) -> list[tuple[str, str]]:
    """The (code, subject) of the events this run opened."""
    return [(t.code, t.subject) for t in outcome.transitions if t.kind is TransitionKind.OPENED]


def cleared(outcome: DomainOutcome) -> list[tuple[str, str]]:
    """The (code, subject) of the events this run cleared (and notified)."""
    return [(t.code, t.subject) for t in outcome.transitions if t.kind is TransitionKind.CLEARED]


def open_codes(outcome: DomainOutcome) -> set[str]:
    return {event.code for event in outcome.open_events}
