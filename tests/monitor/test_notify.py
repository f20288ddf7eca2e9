"""Notifications: a webhook against a real HTTP server on loopback (retries with backoff, the
sleeps injected and recorded, so nothing waits), and mail to a real submission server (aiosmtpd
with STARTTLS and AUTH); a delivery that fails is recorded and sent by the next run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from mtasts.lab.testing import LabController
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.monitor.notify import MailNotifier, WebhookNotifier
from mtasts.monitor.webhook import RetryPolicy, WebhookTarget
from mtasts.net.mailer import SmtpSecurity, SmtpSettings
from mtasts.store.store import ReportStore
from tests.monitor.conftest import MonitorFactory
from tests.net.test_mailer import PASSWORD, USER, submission_server


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses`` (the last
    one repeats) and keeps what it got."""

    statuses: list[int]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mtasts?token=t"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "POST /hooks/mtasts?token=t HTTP/1.1"
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        self.headers.append(headers)
        self.bodies.append(json.loads(body))
        status = self.statuses[min(len(self.bodies) - 1, len(self.statuses) - 1)]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver([200])
    server = await asyncio.start_server(made.handle, "127.0.0.1", 0)
    made.port = server.sockets[0].getsockname()[1]
    yield made
    server.close()
    await server.wait_closed()


class Sleeps:
    """The injected sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def open_an_event(world: LabController, monitor: Any) -> str:
    """Check a lab domain, then break its TLSRPT record: one event opens."""
    domain = world.domain("two-mx")
    await monitor.check(domain)
    world.call(lambda: world.lab.set_records(f"_smtp._tls.{domain}", "TXT", ['"v=TLSRPTv1; rua=ftp://x"']))
    outcome = await monitor.check(domain)
    assert len(outcome.transitions) == 1
    return domain


async def test_the_webhook_is_retried_with_backoff_until_it_is_accepted(
    world: LabController, make_monitor: MonitorFactory, receiver: Receiver
) -> None:
    receiver.statuses = [503, 502, 200]
    sleeps = Sleeps()
    notifier = WebhookNotifier(WebhookTarget(receiver.url, timeout=5), RetryPolicy(attempts=4), sleep=sleeps)
    monitor = make_monitor(notifiers=(notifier,))
    domain = await open_an_event(world, monitor)
    (delivery,) = await monitor.deliver()
    assert (delivery.channel, delivery.count, delivery.error) == ("webhook", 1, "")
    assert len(receiver.bodies) == 3
    assert sleeps.waits == [1.0, 2.0]  # doubling from 1 s
    assert receiver.headers[0]["content-type"] == "application/json"
    (event,) = receiver.bodies[-1]["events"]
    assert (event["transition"], event["domain"], event["code"]) == ("opened", domain, "finding")
    assert event["subject"] == f"tlsrpt-syntax _smtp._tls.{domain}"
    assert event["severity"] == "warning"
    assert event["fix"]
    assert event["explanation"]
    assert await monitor.deliver() == []  # delivered once: nothing left


async def test_a_webhook_that_stays_down_loses_nothing(
    world: LabController, make_monitor: MonitorFactory, receiver: Receiver, store: ReportStore
) -> None:
    receiver.statuses = [500]
    sleeps = Sleeps()
    notifier = WebhookNotifier(WebhookTarget(receiver.url, timeout=5), RetryPolicy(attempts=3), sleep=sleeps)
    monitor = make_monitor(notifiers=(notifier,))
    await open_an_event(world, monitor)
    (failed,) = await monitor.deliver()
    assert "attempt 3: HTTP 500" in failed.error
    assert len(receiver.bodies) == 3
    assert sleeps.waits == [1.0, 2.0]
    (pending,) = SqlMonitorHistory(store).pending()
    assert pending.attempts == 1  # one delivery round, recorded with its error
    receiver.statuses = [200]
    receiver.bodies.clear()
    (delivered,) = await monitor.deliver()
    assert delivered.error == ""
    (event,) = receiver.bodies[0]["events"]
    assert event["id"] == pending.transition.event_id
    assert SqlMonitorHistory(store).pending() == []


async def test_a_refused_document_is_not_sent_again_within_the_run(
    world: LabController, make_monitor: MonitorFactory, receiver: Receiver
) -> None:
    receiver.statuses = [400]
    sleeps = Sleeps()
    monitor = make_monitor(notifiers=(WebhookNotifier(WebhookTarget(receiver.url), sleep=sleeps),))
    await open_an_event(world, monitor)
    (failed,) = await monitor.deliver()
    assert "HTTP 400 (not retried" in failed.error
    assert len(receiver.bodies) == 1
    assert sleeps.waits == []


async def test_an_unreachable_webhook_is_named(world: LabController, make_monitor: MonitorFactory) -> None:
    sleeps = Sleeps()
    target = WebhookTarget("http://127.0.0.1:9/x", timeout=2)  # discard port: nothing listens
    monitor = make_monitor(notifiers=(WebhookNotifier(target, RetryPolicy(attempts=2), sleep=sleeps),))
    await open_an_event(world, monitor)
    (failed,) = await monitor.deliver()
    assert "attempt 1: connection refused; attempt 2: connection refused" in failed.error


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "is not an http:// or https:// URL"),
        ("https://user:pw@example.com/x", "no credentials"),
        ("https:///x", "is not an http:// or https:// URL"),
    ],
)
def test_webhook_urls_are_checked_when_given(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        WebhookTarget(url)


@pytest.fixture(scope="module")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


async def test_events_are_mailed_through_starttls_and_auth(
    world: LabController, make_monitor: MonitorFactory, smtp_ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(ca_file))
    with submission_server(smtp_ca) as server:
        settings = SmtpSettings("127.0.0.1", server.port, SmtpSecurity.STARTTLS, USER, PASSWORD, ca_file, 10.0)
        notifier = MailNotifier(settings, "mtasts monitor <monitor@example.com>", ("postmaster@example.com",))
        monitor = make_monitor(notifiers=(notifier,))
        domain = await open_an_event(world, monitor)
        (delivery,) = await monitor.deliver()
    assert delivery.error == ""
    (mail,) = server.delivered
    assert (mail.authenticated, mail.over_tls) == (True, True)
    assert mail.rcpt_tos == ["postmaster@example.com"]
    assert mail.message["Subject"] == f"mtasts monitor: 1 new: {domain}"
    body = mail.message.get_content()
    assert f"NEW warning {domain}: finding [tlsrpt-syntax _smtp._tls.{domain}]" in body
    assert "Fix: " in body


async def test_a_mail_server_that_is_down_keeps_the_event_for_the_next_run(
    world: LabController, make_monitor: MonitorFactory, smtp_ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(ca_file))
    with submission_server(smtp_ca) as server:
        port = server.port
    settings = SmtpSettings("127.0.0.1", port, SmtpSecurity.STARTTLS, USER, PASSWORD, ca_file, 5.0)
    monitor = make_monitor(notifiers=(MailNotifier(settings, "monitor@example.com", ("postmaster@example.com",)),))
    await open_an_event(world, monitor)
    (failed,) = await monitor.deliver()  # the server is gone
    assert failed.error.startswith(f"mail to 127.0.0.1:{port}:")
    with submission_server(smtp_ca) as again:
        moved = dataclasses.replace(settings, port=again.port)  # the server is back (on another port)
        monitor.notifiers = (MailNotifier(moved, "monitor@example.com", ("postmaster@example.com",)),)
        (delivered,) = await monitor.deliver()
    assert delivered.error == ""
    assert len(again.delivered) == 1
