"""When each monitored domain is checked: an interval per domain, jittered, pure.

The jitter spreads checks so that ten thousand domains with the same interval do not all run in
the same second (nor hit one DNS provider or policy host in a burst). It is deterministic: the
fraction comes from a hash of the domain and of its last run, so a test with a fixed clock, or
two ``monitor run`` invocations, agree on what is due, and no random state is kept anywhere.

A domain checked at ``last`` is due at ``last + interval × (1 - jitter × u)``, ``u`` in [0, 1):
never later than its interval, so a cron job running ``mtasts monitor run`` every interval
always finds it due. A domain never checked is due at once for ``run``; the daemon (``serve``)
spreads the first checks over ``interval × jitter`` from its start instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_JITTER",
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "Monitored",
    "due_at",
    "due_domains",
    "parse_interval",
]

DEFAULT_INTERVAL: Final = timedelta(hours=1)
DEFAULT_JITTER: Final = 0.1
MIN_INTERVAL: Final = timedelta(minutes=1)
MAX_INTERVAL: Final = timedelta(days=7)

_INTERVAL_RE = re.compile(r"(\d{1,7})([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h``, ``1d`` → a timedelta (1 minute to 7 days); else ``ValueError``."""
    match = _INTERVAL_RE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not an interval (e.g. 900, 15m, 1h, 1d)")
    interval = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise ValueError(f"{text!r} is out of range: give 1m to 7d")
    return interval


@dataclass(frozen=True, slots=True)
class Monitored:
    """One domain to watch, with its interval (A-labels, lower case)."""

    domain: str
    interval: timedelta = DEFAULT_INTERVAL


def _unit(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def due_at(
    domain: str, interval: timedelta, last_run: datetime | None, *, jitter: float = DEFAULT_JITTER, start: datetime
) -> datetime:
    """When ``domain`` is next due (see the module); ``start``: when the scheduler started."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if last_run is None:
        return start + interval * (jitter * _unit(domain, "first"))
    return last_run + interval * (1 - jitter * _unit(domain, last_run.isoformat()))


def due_domains(
    watched: Iterable[Monitored],
    last_runs: Mapping[str, datetime],
    *,
    now: datetime,
    start: datetime,
    jitter: float = DEFAULT_JITTER,
) -> tuple[list[Monitored], datetime | None]:
    """The domains due at ``now`` (earliest first) and when the next of the others is due."""
    due: list[tuple[datetime, Monitored]] = []
    later: datetime | None = None
    for item in watched:
        when = due_at(item.domain, item.interval, last_runs.get(item.domain), jitter=jitter, start=start)
        if when <= now:
            due.append((when, item))
        elif later is None or when < later:
            later = when
    due.sort(key=lambda pair: (pair[0], pair[1].domain))
    return [item for _, item in due], later
