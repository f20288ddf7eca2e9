"""Real Postfix end to end: Debian's Postfix asks ``mtasts resolver serve`` over socketmap and
delivers to the lab's MX hosts; the lab's mailboxes and its log of TLS handshakes (and Postfix's
own log) say what happened.

How it is wired (honest, no shortcuts in the mail path):

* A dedicated lab on the standard ports (DNS on 53, SMTP on 25, at its own loopback addresses),
  because an unmodified Postfix only knows port 25 and only asks nameservers on port 53.
* The resolver daemon is the real command (``mtasts resolver serve`` in a subprocess) pointed at
  the lab's nameserver, CA and HTTPS port, listening on 127.0.0.1.
* The Postfix instance (:mod:`tests.resolver.postfix`) runs with its own config directory, no
  chroot, in a private mount namespace whose ``/etc/resolv.conf`` names the lab's nameserver (the
  only way to give one Postfix instance its own DNS without touching the machine's resolver).
  ``smtp_tls_policy_maps = socketmap:inet:127.0.0.1:PORT:postfix`` and the lab CA as
  ``smtp_tls_CAfile``; no ``transport_maps``, so Postfix picks MX hosts from DNS itself, which is
  what the preferred-MX cases are about.

Two domains need MX host names the scenario table cannot express (a preferred MX with a bad
certificate next to a good one; an MX two labels below a ``*.`` pattern): the test adds those
hosts to the lab's plan (real A records, real listeners with certificates for their names)
before the lab starts.

Skipped only where Postfix (or a mount namespace) is unavailable; CI installs Postfix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from mtasts.core.policy import Mode
from mtasts.core.verdict import Delivery
from mtasts.lab.plan import Record, SmtpHost
from mtasts.lab.scenarios import CertKind, Expectation, Scenario
from mtasts.lab.smtp import Handshake, HandshakeOutcome, Message
from mtasts.lab.testing import LabController
from mtasts.lab.world import Ports
from tests.commands import MTASTS
from tests.resolver.postfix import PostfixInstance, missing_postfix, wait_for

pytestmark = pytest.mark.lab

_MISSING = missing_postfix()
if _MISSING is not None:
    pytestmark = [pytest.mark.lab, pytest.mark.skip(reason=_MISSING)]

DELIVERY_TIMEOUT = 45.0

SCENARIOS = (
    "enforce-ok",
    "no-sts-record",
    # the preferred MX (mx1) has an expired certificate; mx2 (added below) is good
    Scenario(
        "pf-preferred-expired",
        "Enforce; the preferred MX's certificate has expired, the second MX is correct.",
        Expectation(Delivery.VALIDATED),
        mx_records=("10 mx1.{domain}.", "20 mx2.{domain}."),
        policy_mx=("mx1.{domain}", "mx2.{domain}"),
        mx_cert=CertKind.EXPIRED,
    ),
    # both MX hosts have expired certificates
    Scenario(
        "pf-all-bad",
        "Enforce; every MX's certificate has expired.",
        Expectation(Delivery.DEFER),
        mx_count=(2, 1),
        mx_cert=CertKind.EXPIRED,
    ),
    # x.y.mx.<d> (preferred, two labels below the pattern's base) and a.mx.<d> (one label), both
    # with good certificates for their own names (added below)
    Scenario(
        "pf-wildcard-deep",
        "Enforce with mx: *.mx.<domain>; the preferred MX is two labels below mx.<domain>.",
        Expectation(Delivery.VALIDATED),
        mx_records=("10 x.y.mx.{domain}.", "20 a.mx.{domain}."),
        policy_mx=("*.mx.{domain}",),
    ),
    Scenario(
        "pf-testing-bad-cert",
        "Testing mode; the MX's certificate has expired.",
        Expectation(Delivery.NOT_ENFORCED),
        policy_mode=Mode.TESTING,
        mx_cert=CertKind.EXPIRED,
    ),
)
EXTRA_MX = ("mx2.pf-preferred-expired", "x.y.mx.pf-wildcard-deep", "a.mx.pf-wildcard-deep")


def add_mx_hosts(controller: LabController, names: tuple[str, ...]) -> None:
    """Give the (not yet started) lab MX hosts with good certificates for ``names`` (under the
    lab's zone): an A record each, at an unused address at the top of the lab's network."""
    lab = controller.lab
    plan = lab.plan
    addresses = dict(plan.addresses)
    hosts = list(plan.smtp_hosts)
    records = list(plan.records)
    top = list(ipaddress.IPv4Network(lab.network).hosts())[-len(names) :]
    for name, address in zip((f"{n}.{lab.zone}" for n in names), map(str, top), strict=True):
        assert name not in addresses
        assert address not in addresses.values()
        addresses[name] = address
        records.append(Record(name, "A", address))
        hosts.append(SmtpHost(name, address, cert=CertKind.GOOD))
    lab.plan = dataclasses.replace(
        plan, records=tuple(records), smtp_hosts=tuple(hosts), addresses=MappingProxyType(addresses)
    )


@pytest.fixture(scope="module")
def mail_lab() -> Iterator[LabController]:
    """A lab of the scenarios above on ports 53 and 25 (its own loopback network)."""
    controller = LabController(SCENARIOS, ports=Ports(dns=53, smtp=25))
    add_mx_hosts(controller, EXTRA_MX)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


class Daemon:
    """``mtasts resolver serve`` in a subprocess; its stderr collected by a thread."""

    def __init__(self, arguments: list[str]) -> None:
        env = {**os.environ, "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [*MTASTS, "resolver", "serve", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = wait_for(self._listening, timeout=20, what="the resolver to listen")
        self.address = line.split(" listening on ", 1)[1].split(" ", 1)[0].rstrip(",")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def _listening(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the resolver exited: {''.join(self.stderr)}")
        return next((line for line in self.stderr if " listening on " in line), None)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture(scope="module")
def resolver_daemon(mail_lab: LabController) -> Iterator[Daemon]:
    info = mail_lab.info()
    daemon = Daemon(
        [
            "--listen",
            "inet:127.0.0.1:0",
            "--memory-only",
            "--nameserver",
            info["nameserver"],
            "--ca-file",
            info["ca_file"],
            "--https-port",
            str(info["https_port"]),
        ]
    )
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def postfix(mail_lab: LabController, resolver_daemon: Daemon) -> Iterator[PostfixInstance]:
    info = mail_lab.info()
    instance = PostfixInstance(
        nameserver=info["nameserver_address"],
        ca_pem=Path(info["ca_file"]).read_bytes(),
        policy_maps=f"socketmap:{resolver_daemon.address}:postfix",
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def domain(lab: LabController, scenario: str) -> str:
    return lab.domain(scenario)


def received(lab: LabController, host: str, subject: str) -> list[Message]:
    """The messages MX ``host`` accepted with ``subject``."""
    needle = f"Subject: {subject}".encode()
    return [m for m in lab.messages(host) if needle in m.data]


def handshakes(lab: LabController, host: str) -> tuple[Handshake, ...]:
    """The STARTTLS handshakes MX ``host`` answered (the lab's log, read on its loop)."""
    found: tuple[Handshake, ...] = lab.call(lambda: lab.lab.mailboxes.handshakes(host))
    return found


def assert_refused(lab: LabController, host: str) -> None:
    """The lab's log shows that Postfix refused every TLS session with ``host``: at least one
    handshake, and in none did it greet again over TLS (Postfix completes the handshake, finds
    the certificate wrong, sends QUIT and hangs up; a handshake that fails outright counts too)."""
    seen = handshakes(lab, host)
    assert seen, f"{host}: no handshake in the lab's log"
    refused = {HandshakeOutcome.ABANDONED, HandshakeOutcome.FAILED}
    assert all(h.outcome in refused for h in seen), seen
    assert all(set(h.commands) <= {"QUIT"} for h in seen), seen


def subject_for(test: str) -> str:
    return f"{test} {uuid.uuid4().hex[:12]}"


def wait_sent(postfix: PostfixInstance, queue_id: str) -> str:
    """Postfix's status=sent line for ``queue_id``, once logged."""

    def sent() -> str | None:
        return next((line for line in postfix.log_lines(queue_id) if "status=sent" in line), None)

    try:
        return wait_for(sent, timeout=DELIVERY_TIMEOUT, what=f"Postfix to deliver {queue_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- Postfix log ---\n{postfix.log()}") from None


# --- the map, as Postfix reads it -----------------------------------------------------------


def test_postmap_queries_the_socketmap_as_postfix_does(mail_lab: LabController, postfix: PostfixInstance) -> None:
    table = postfix_table(postfix)
    enforce = domain(mail_lab, "enforce-ok")
    found = postfix.postmap_query(enforce, table)
    assert (found.returncode, found.stdout.strip()) == (0, f"secure match=mx1.{enforce} servername=hostname")
    # keys arrive verbatim from Postfix; the daemon lower-cases them
    assert postfix.postmap_query(enforce.upper(), table).stdout.strip() == found.stdout.strip()
    two = domain(mail_lab, "pf-preferred-expired")
    assert postfix.postmap_query(two, table).stdout.strip() == f"secure match=mx1.{two}:mx2.{two} servername=hostname"
    wild = domain(mail_lab, "pf-wildcard-deep")
    assert postfix.postmap_query(wild, table).stdout.strip() == f"secure match=a.mx.{wild} servername=hostname"
    for key in (domain(mail_lab, "pf-testing-bad-cert"), domain(mail_lab, "no-sts-record"), f".{enforce}"):
        missing = postfix.postmap_query(key, table)
        assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", ""), key


def postfix_table(postfix: PostfixInstance) -> str:
    shown = subprocess.run(
        ["postconf", "-c", str(postfix.config), "-h", "smtp_tls_policy_maps"],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


# --- delivery -------------------------------------------------------------------------------


def test_enforce_domain_is_delivered_over_verified_tls(mail_lab: LabController, postfix: PostfixInstance) -> None:
    d = domain(mail_lab, "enforce-ok")
    subject = subject_for("enforce")
    queue_id = postfix.submit(f"user@{d}", subject)
    sent = wait_sent(postfix, queue_id)
    assert f"relay=mx1.{d}[" in sent
    (message,) = received(mail_lab, f"mx1.{d}", subject)
    assert message.rcpt_to == (f"user@{d}",)
    assert message.tls_version in ("TLSv1.2", "TLSv1.3")
    assert f"Verified TLS connection established to mx1.{d}[" in postfix.log()


def test_preferred_mx_with_expired_certificate_is_skipped(mail_lab: LabController, postfix: PostfixInstance) -> None:
    d = domain(mail_lab, "pf-preferred-expired")
    subject = subject_for("preferred-expired")
    queue_id = postfix.submit(f"user@{d}", subject)
    sent = wait_sent(postfix, queue_id)
    assert f"relay=mx2.{d}[" in sent
    assert len(received(mail_lab, f"mx2.{d}", subject)) == 1
    assert mail_lab.messages(f"mx1.{d}") == ()
    log = postfix.log()
    assert f"server certificate verification failed for mx1.{d}[" in log
    assert f"Verified TLS connection established to mx2.{d}[" in log
    assert_refused(mail_lab, f"mx1.{d}")
    assert [h.outcome for h in handshakes(mail_lab, f"mx2.{d}")] == [HandshakeOutcome.USED]


def test_every_mx_bad_under_enforce_defers_with_4_7_5(mail_lab: LabController, postfix: PostfixInstance) -> None:
    """Both MX hosts are tried, over TLS, and refused by Postfix for their certificates. Postfix
    checks the certificate after the TLS handshake and then hangs up (OpenSSL's handshake
    completes; Postfix's verify callback only records the failure), so the refusal is in
    Postfix's log, per host, and in the lab's: every handshake each MX answered was refused
    (abandoned right after it, or failed), none carried a command."""
    d = domain(mail_lab, "pf-all-bad")
    subject = subject_for("all-bad")
    queue_id = postfix.submit(f"user@{d}", subject)

    def deferred() -> str | None:
        return next((line for line in postfix.log_lines(queue_id) if "status=deferred" in line), None)

    line = wait_for(deferred, timeout=DELIVERY_TIMEOUT, what=f"Postfix to defer {queue_id}")
    assert "dsn=4.7.5" in line
    assert "Server certificate not verified" in line
    postfix.flush()  # a second attempt: still deferred, never bounced
    wait_for(
        lambda: True if sum("status=deferred" in x for x in postfix.log_lines(queue_id)) >= 2 else None,
        timeout=DELIVERY_TIMEOUT,
        what="a second deferral",
    )
    queued = postfix.queued(queue_id)
    assert queued is not None
    assert queued["queue_name"] == "deferred"
    (recipient,) = queued["recipients"]
    assert "Server certificate not verified" in recipient["delay_reason"]
    assert not any("status=bounced" in x for x in postfix.log_lines(queue_id))
    assert mail_lab.messages(f"mx1.{d}") == ()
    assert mail_lab.messages(f"mx2.{d}") == ()
    log = postfix.log()
    for host in (f"mx1.{d}", f"mx2.{d}"):
        assert f"server certificate verification failed for {host}[" in log
        assert_refused(mail_lab, host)


def test_wildcard_policy_sends_only_to_the_one_label_mx(mail_lab: LabController, postfix: PostfixInstance) -> None:
    d = domain(mail_lab, "pf-wildcard-deep")
    subject = subject_for("wildcard-deep")
    queue_id = postfix.submit(f"user@{d}", subject)
    sent = wait_sent(postfix, queue_id)
    assert f"relay=a.mx.{d}[" in sent
    assert len(received(mail_lab, f"a.mx.{d}", subject)) == 1
    assert mail_lab.messages(f"x.y.mx.{d}") == ()  # the preferred MX, which the policy does not allow
    # Postfix did try the preferred MX first, and refused it for the match list alone (its
    # certificate is valid for its name): with a '.mx.<d>' answer it would have delivered there
    refused = rf"server certificate verification failed for x\.y\.mx\.{re.escape(d)}\[[0-9.]+\]:25: .*hostname mismatch"
    assert re.search(refused, postfix.log())
    assert_refused(mail_lab, f"x.y.mx.{d}")


def test_testing_domain_with_bad_certificate_is_delivered(mail_lab: LabController, postfix: PostfixInstance) -> None:
    d = domain(mail_lab, "pf-testing-bad-cert")
    subject = subject_for("testing-bad-cert")
    queue_id = postfix.submit(f"user@{d}", subject)
    wait_sent(postfix, queue_id)
    (message,) = received(mail_lab, f"mx1.{d}", subject)
    assert message.tls_version is not None  # opportunistic TLS, the expired certificate not checked
    assert f"Untrusted TLS connection established to mx1.{d}[" in postfix.log()


def test_domain_without_mta_sts_is_delivered_opportunistically(
    mail_lab: LabController, postfix: PostfixInstance
) -> None:
    d = domain(mail_lab, "no-sts-record")
    subject = subject_for("no-sts")
    queue_id = postfix.submit(f"user@{d}", subject)
    wait_sent(postfix, queue_id)
    (message,) = received(mail_lab, f"mx1.{d}", subject)
    assert message.tls_version is not None
    assert f"Trusted TLS connection established to mx1.{d}[" in postfix.log()  # encrypted, name unchecked
    assert f"Verified TLS connection established to mx1.{d}[" not in postfix.log()
