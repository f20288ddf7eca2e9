"""``mtasts monitor``: scheduled checks, their history, events when something changes, notifications.

Pure parts: :mod:`~mtasts.monitor.events` (the table of event kinds), :mod:`~mtasts.monitor.snapshot`
(what a run keeps), :mod:`~mtasts.monitor.rules` (conditions and transitions),
:mod:`~mtasts.monitor.schedule` (when a domain is due). I/O: :mod:`~mtasts.monitor.history`
(the database), :mod:`~mtasts.monitor.notify` and :mod:`~mtasts.monitor.webhook` (mail, webhook),
:mod:`~mtasts.monitor.service` (the monitor and the daemon's loop), :mod:`~mtasts.monitor.metrics`.
"""

from mtasts.monitor.events import EVENT_KINDS, Condition, EventKind, OpenEvent, Source, Transition, TransitionKind
from mtasts.monitor.schedule import Monitored, due_at, due_domains, parse_interval

__all__ = [
    "EVENT_KINDS",
    "Condition",
    "EventKind",
    "Monitored",
    "OpenEvent",
    "Source",
    "Transition",
    "TransitionKind",
    "due_at",
    "due_domains",
    "parse_interval",
]
