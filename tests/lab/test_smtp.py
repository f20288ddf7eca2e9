"""MX hosts, spoken to by ``smtplib`` with ``starttls``: real ESMTP and each fault."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import socket
import ssl
import time
from typing import BinaryIO

import pytest
from cryptography import x509

from mtasts.lab import Limits
from mtasts.lab.smtp import _buffered
from mtasts.lab.testing import LabController, running_lab
from tests.lab.helpers import LabSMTP

pytestmark = pytest.mark.lab

MESSAGE = "From: a@sender.test\r\nTo: b@{domain}\r\nSubject: hello\r\n\r\n.leading dot\r\nbody\r\n"


def mx_host(lab: LabController, scenario: str) -> str:
    return f"mx1.{lab.domain(scenario)}"


def test_mail_over_validated_tls_is_stored_per_host(lab: LabController) -> None:
    host = mx_host(lab, "enforce-ok")
    domain = lab.domain("enforce-ok")
    with LabSMTP(lab, host) as smtp:
        code, banner = smtp.ehlo("sender.test")
        assert code == 250
        assert smtp.has_extn("starttls")
        assert banner.startswith(host.encode())
        smtp.starttls(context=lab.client_context())
        assert smtp.sock is not None
        assert isinstance(smtp.sock, ssl.SSLSocket)
        smtp.ehlo("sender.test")
        assert not smtp.has_extn("starttls")
        smtp.sendmail("a@sender.test", [f"b@{domain}", f"c@{domain}"], MESSAGE.format(domain=domain))
    messages = [m for m in lab.messages(host) if m.mail_from == "a@sender.test"]
    assert messages
    message = messages[-1]
    assert message.rcpt_to == (f"b@{domain}", f"c@{domain}")
    assert message.tls_version in ("TLSv1.2", "TLSv1.3")
    assert b"\r\n.leading dot\r\n" in message.data
    assert all(m.host == host for m in lab.messages(host))
    assert message not in lab.messages(mx_host(lab, "testing-ok"))


def test_mail_in_clear_text_is_marked(lab: LabController) -> None:
    host = mx_host(lab, "testing-ok")
    with LabSMTP(lab, host) as smtp:
        smtp.sendmail("clear@sender.test", ["x@testing-ok.test"], b"Subject: clear\r\n\r\nhi\r\n")
    (message,) = [m for m in lab.messages(host) if m.mail_from == "clear@sender.test"]
    assert message.tls_version is None


def test_no_starttls(lab: LabController) -> None:
    with LabSMTP(lab, mx_host(lab, "mx-no-starttls")) as smtp:
        smtp.ehlo("sender.test")
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 502
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.starttls(context=lab.client_context())


def test_starttls_refused_with_454(lab: LabController) -> None:
    with LabSMTP(lab, mx_host(lab, "mx-starttls-454")) as smtp:
        smtp.ehlo("sender.test")
        assert smtp.has_extn("starttls")
        with pytest.raises(smtplib.SMTPResponseException) as info:
            smtp.starttls(context=lab.client_context())
        assert info.value.smtp_code == 454


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("mx-cert-wrong-name", "Hostname mismatch"),
        ("mx-cert-expired", "certificate has expired"),
        ("mx-cert-untrusted", "unable to get local issuer certificate"),
        ("mx-cert-self-signed", "self-signed certificate"),
        ("mx-cert-chain-incomplete", "unable to get local issuer certificate"),
    ],
)
def test_certificate_faults(lab: LabController, scenario: str, reason: str) -> None:
    smtp = LabSMTP(lab, mx_host(lab, scenario))
    try:
        smtp.ehlo("sender.test")
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            smtp.starttls(context=lab.client_context())
        assert reason in str(info.value.verify_message)
    finally:
        smtp.close()


def test_chain_incomplete_succeeds_with_the_intermediate(lab: LabController) -> None:
    context = lab.client_context(extra_ca=lab.lab.intermediate_file.read_bytes())
    with LabSMTP(lab, mx_host(lab, "mx-cert-chain-incomplete")) as smtp:
        smtp.starttls(context=context)
        assert smtp.noop()[0] == 250


def test_certificate_expiring_soon_still_verifies(lab: LabController) -> None:
    with LabSMTP(lab, mx_host(lab, "mx-cert-expiring-soon")) as smtp:
        smtp.starttls(context=lab.client_context())
        assert isinstance(smtp.sock, ssl.SSLSocket)
        der = smtp.sock.getpeercert(binary_form=True)
    assert der is not None
    left = x509.load_der_x509_certificate(der).not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=1) < left < dt.timedelta(days=4)


def test_tls10_only_refuses_tls12_and_speaks_tls10(lab: LabController) -> None:
    host = mx_host(lab, "mx-tls10-only")
    smtp = LabSMTP(lab, host)
    try:
        with pytest.raises(ssl.SSLError) as info:
            smtp.starttls(context=lab.client_context())
        assert not isinstance(info.value, ssl.SSLCertVerificationError)
    finally:
        smtp.close()
    with LabSMTP(lab, host) as smtp:
        smtp.starttls(context=lab.lab.certs.legacy_client_context())
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert smtp.sock.version() == "TLSv1"


def test_unreachable(lab: LabController) -> None:
    with pytest.raises(ConnectionRefusedError):
        LabSMTP(lab, mx_host(lab, "mx-unreachable"))


def test_mx_not_in_policy_still_accepts_mail(lab: LabController) -> None:
    """The MX itself is fine; only the policy does not list it."""
    with LabSMTP(lab, mx_host(lab, "mx-not-in-policy")) as smtp:
        smtp.starttls(context=lab.client_context())
        assert smtp.noop()[0] == 250


# --- protocol and robustness ------------------------------------------------------------------


def test_command_order_and_unknown_commands(lab: LabController) -> None:
    with LabSMTP(lab, mx_host(lab, "enforce-ok")) as smtp:
        assert smtp.docmd("MAIL", "FROM:<a@b>")[0] == 503
        assert smtp.docmd("XYZZY")[0] == 500
        assert smtp.docmd("\x01\x02")[0] == 500
        assert smtp.docmd("EHLO")[0] == 501
        assert smtp.docmd("HELO", "x")[0] == 250
        assert smtp.docmd("RCPT", "TO:<a@b>")[0] == 503
        assert smtp.docmd("MAIL", "FROM:<a@b>")[0] == 250
        assert smtp.docmd("MAIL", "FROM:<a@b>")[0] == 503
        assert smtp.docmd("DATA")[0] == 503
        assert smtp.docmd("RSET")[0] == 250
        assert smtp.docmd("VRFY", "a")[0] == 252


def test_commands_pipelined_after_starttls_are_refused(lab: LabController) -> None:
    host = mx_host(lab, "enforce-ok")
    with lab.connect(host, lab.smtp_port) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"EHLO x\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        assert reader.readline().startswith(b"554 ")
        assert reader.read() == b""
        reader.close()


def _client_hello(host: str) -> bytes:
    """The bytes of a real ClientHello for ``host`` (made in memory, sent by the test)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _until_ehlo_done(lab: LabController, host: str) -> tuple[socket.socket, BinaryIO]:
    sock = lab.connect(host, lab.smtp_port)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220 ")
    sock.sendall(b"EHLO x\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    return sock, reader


def test_a_client_hello_sent_with_starttls_is_refused_not_lost(lab: LabController) -> None:
    """A client that does not wait for the 220 (RFC 3207 §4 says it must): its ClientHello is
    already read when STARTTLS is answered, so upgrading would lose it; the MX refuses instead
    of stalling until the handshake deadline."""
    host = mx_host(lab, "enforce-ok")
    sock, reader = _until_ehlo_done(lab, host)
    with sock, reader:
        sock.sendall(b"STARTTLS\r\n" + _client_hello(host))
        assert reader.readline().startswith(b"554 ")
        assert reader.read() == b""


def test_clear_text_after_the_220_is_never_obeyed(lab: LabController) -> None:
    """After "220 Ready to start TLS" only TLS is read: a command sent in clear text then (an
    injection attempt) ends the connection as a failed handshake and is never executed."""
    host = mx_host(lab, "enforce-ok")
    before = len(lab.messages(host))
    sock, reader = _until_ehlo_done(lab, host)
    with sock, reader:
        sock.sendall(b"STARTTLS\r\n")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"MAIL FROM:<injected@x>\r\nRCPT TO:<a@b>\r\nDATA\r\nx\r\n.\r\n")
        rest = reader.read()
    assert b"250" not in rest  # nothing answered as SMTP; at most a TLS alert
    assert b"354" not in rest
    assert len(lab.messages(host)) == before


def test_starttls_is_refused_when_the_stream_buffer_cannot_be_inspected() -> None:
    """The check that nothing follows STARTTLS reads asyncio's StreamReader buffer (no public
    peek exists): if that detail ever changes, STARTTLS is refused (fail closed), not unsafe."""
    reader = asyncio.StreamReader(loop=asyncio.new_event_loop())
    assert _buffered(reader) == 0
    reader.feed_data(b"MAIL FROM:<x>\r\n")
    assert _buffered(reader) == 15
    assert _buffered(object()) == -1  # type: ignore[arg-type]
    reader._loop.close()


def test_a_client_over_the_connection_cap_gets_421() -> None:
    with running_lab(["enforce-ok"], limits=Limits(max_connections_per_client=2)) as small:
        host = mx_host(small, "enforce-ok")
        held = [small.connect(host, small.smtp_port) for _ in range(2)]
        try:
            for sock in held:
                assert sock.recv(512).startswith(b"220 ")
            with small.connect(host, small.smtp_port) as refused:
                reply = b""
                while chunk := refused.recv(512):
                    reply += chunk
            assert reply == b"421 4.7.0 Too many connections, try again later\r\n"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 20  # slots come back once the server sees the ends
        while True:
            try:
                with LabSMTP(small, host) as smtp:
                    assert smtp.noop()[0] == 250
                break
            except smtplib.SMTPConnectError as exc:
                code = exc.smtp_code
            assert code == 421
            assert time.monotonic() < deadline, "the slots of closed connections never came back"
            time.sleep(0.05)


def test_long_line_is_refused_and_closes(lab: LabController) -> None:
    host = mx_host(lab, "enforce-ok")
    with lab.connect(host, lab.smtp_port) as sock:
        assert sock.recv(512).startswith(b"220 ")
        sock.sendall(b"NOOP " + b"x" * 5000 + b"\r\n")
        reply = b""
        while chunk := sock.recv(512):
            reply += chunk
        assert reply.startswith(b"500 ")


def test_clients_that_leave_early(lab: LabController) -> None:
    host = mx_host(lab, "enforce-ok")
    with lab.connect(host, lab.smtp_port):
        pass
    with lab.connect(host, lab.smtp_port) as sock:
        sock.recv(512)
        sock.sendall(b"EHLO x\r\nSTARTTLS\r\n")
        sock.recv(4096)
        sock.sendall(b"\x16\x03\x01\x00\xff\x01")  # half a ClientHello, then leave
    with lab.connect(host, lab.smtp_port) as sock:
        sock.recv(512)
        sock.sendall(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial")  # leave mid-DATA
    with LabSMTP(lab, host) as smtp:
        assert smtp.noop()[0] == 250


def test_many_concurrent_idle_clients_do_not_block_others(lab: LabController) -> None:
    host = mx_host(lab, "enforce-ok")
    idle = [lab.connect(host, lab.smtp_port) for _ in range(50)]
    try:
        with LabSMTP(lab, host) as smtp:
            smtp.starttls(context=lab.client_context())
            assert smtp.noop()[0] == 250
    finally:
        for sock in idle:
            sock.close()
