"""Where events go: e-mail through :mod:`mtasts.net.mailer` (the digest's mailer and settings)
and a JSON webhook (:mod:`mtasts.monitor.webhook`).

A notifier gets the transitions owed on its channel, all of them in one message (one mail, one
POST per batch), and either returns or raises :class:`NotifyError`; the monitor then records
the delivery or the failure, and a failed one is sent again at the next run, so nothing is lost
while a mail server or a webhook receiver is down.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import orjson

from mtasts.core.untrusted import printable
from mtasts.monitor.events import EVENT_KINDS, Transition, TransitionKind
from mtasts.monitor.webhook import DEFAULT_RETRY, RetryPolicy, Sleep, WebhookError, WebhookTarget, post_json
from mtasts.net.mailer import MailError, SmtpSettings, compose, send

__all__ = ["MailNotifier", "Notifier", "NotifyError", "WebhookNotifier", "mail_text", "webhook_body"]


class NotifyError(Exception):
    """The notification could not be delivered; ``str()`` says why, for people."""


class Notifier(Protocol):
    @property
    def channel(self) -> str:
        """The channel name stored with each delivery (``mail``, ``webhook``)."""
        ...

    async def send(self, transitions: Sequence[Transition], *, now: datetime) -> None: ...


def _summary(transitions: Sequence[Transition]) -> str:
    counts = Counter(t.kind for t in transitions)
    parts = []
    if counts[TransitionKind.OPENED]:
        parts.append(f"{counts[TransitionKind.OPENED]} new")
    if counts[TransitionKind.CLEARED]:
        parts.append(f"{counts[TransitionKind.CLEARED]} cleared")
    domains = sorted({t.domain for t in transitions})
    shown = ", ".join(domains[:3]) + (f" and {len(domains) - 3} more" if len(domains) > 3 else "")
    return f"{' and '.join(parts)}: {shown}"


def mail_text(transitions: Sequence[Transition]) -> tuple[str, str]:
    """The subject and plain-text body of one notification mail."""
    lines = [f"mtasts monitor: {_summary(transitions)}", ""]
    for transition in transitions:
        lines.append(transition.to_text())
        if transition.kind is TransitionKind.OPENED:
            lines.append(f"    {EVENT_KINDS[transition.code].explanation}")
            lines.append(f"    Fix: {transition.fix}")
        else:
            lines.append(f"    (open since {transition.opened_at:%Y-%m-%d %H:%M} UTC)")
        lines.append("")
    errors = any(t.kind is TransitionKind.OPENED and t.severity.value == "error" for t in transitions)
    flag = "[error] " if errors else ""
    return f"{flag}mtasts monitor: {_summary(transitions)}", "\n".join(map(printable, lines))


def webhook_body(transitions: Sequence[Transition], *, now: datetime) -> bytes:
    """The JSON document a webhook receives (keys documented in docs/monitor.md)."""
    return orjson.dumps(
        {"source": "mtasts monitor", "sent_at": now.isoformat(), "events": [t.to_dict() for t in transitions]}
    )


@dataclass(frozen=True, slots=True)
class MailNotifier:
    """One mail per batch to ``recipients`` through the submission server of ``settings``."""

    settings: SmtpSettings
    sender: str
    recipients: tuple[str, ...]

    @property
    def channel(self) -> str:
        return "mail"

    async def send(self, transitions: Sequence[Transition], *, now: datetime) -> None:
        subject, body = mail_text(transitions)
        message = compose(sender=self.sender, recipients=self.recipients, subject=subject, body=body, now=now)
        try:  # smtplib is blocking: one short submission, off the event loop
            await asyncio.to_thread(send, message, self.settings)
        except MailError as exc:
            raise NotifyError(f"mail to {self.settings.address}: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class WebhookNotifier:
    """One POST per batch, retried by ``retry`` (``sleep`` injectable for tests)."""

    target: WebhookTarget
    retry: RetryPolicy = DEFAULT_RETRY
    sleep: Sleep = field(default=asyncio.sleep)

    @property
    def channel(self) -> str:
        return "webhook"

    async def send(self, transitions: Sequence[Transition], *, now: datetime) -> None:
        try:
            await post_json(self.target, webhook_body(transitions, now=now), retry=self.retry, sleep=self.sleep)
        except WebhookError as exc:
            raise NotifyError(f"webhook {self.target.url}: {exc}") from exc
