"""Mail submission against a real SMTP server (aiosmtpd on 127.0.0.1) with a trustme CA:
STARTTLS and implicit TLS verified, AUTH only inside TLS, and every failure named.

:func:`submission_server` is also what ``tests/cli/test_digest.py`` mails the digest to."""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mtasts.net.mailer import MailError, MailFailureKind, SmtpSecurity, SmtpSettings, compose, send

USER, PASSWORD = "digest@example.com", "correct horse battery staple"
SENDER, RECIPIENT = "TLSRPT digest <mtasts@example.com>", "postmaster@example.com"


@dataclass
class Delivered:
    """One message as the server received it, and how the client had got there."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool
    over_tls: bool


@dataclass
class Submission:
    """A running server: where it listens, and what it saw."""

    port: int
    delivered: list[Delivered] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # user, password, inside TLS
    commands: list[tuple[str, bool]] = field(default_factory=list)  # EHLO/AUTH/STARTTLS..., inside TLS


def _over_tls(server: Any) -> bool:
    """Whether this connection is encrypted: after STARTTLS the transport is the SSL one, with
    implicit TLS it was from the start (aiosmtpd's ``session.ssl`` only knows STARTTLS)."""
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


class _Recorder:
    """aiosmtpd handler: keeps each message; refuses recipients ``nobody@...``."""

    def __init__(self, record: Submission) -> None:
        self.record = record

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.record.delivered.append(
            Delivered(
                envelope.mail_from, list(envelope.rcpt_tos), parsed, bool(session.authenticated), _over_tls(server)
            )
        )
        return "250 2.0.0 queued"


def free_port() -> int:
    """A loopback port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(smtp_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    return context


@contextlib.contextmanager
def submission_server(
    ca: trustme.CA | None,
    *,
    mode: Literal["starttls", "tls", "plain"] = "starttls",
    names: tuple[str, ...] = (),
    auth_in_clear: bool = False,
) -> Iterator[Submission]:
    """A real submission server on 127.0.0.1, in a thread.

    ``starttls``: STARTTLS required before anything else, AUTH offered and accepted only after
    it (``require_starttls``, ``auth_require_tls``), mail only once logged in. ``tls``: implicit
    TLS (aiosmtpd cannot tell that the connection is encrypted, so AUTH is allowed on it: it is
    TLS from the first byte). ``plain``: no TLS; AUTH offered in clear with ``auth_in_clear``,
    which no careful client may use."""
    record = Submission(free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        record.logins.append((user, password, _over_tls(server)))
        return AuthResult(success=(user, password) == (USER, PASSWORD), handled=False)  # False: aiosmtpd replies 535

    options: dict[str, Any] = {"authenticator": authenticate, "server_hostname": "mail.test"}
    if mode == "starttls":
        assert ca is not None
        options |= {"tls_context": server_context(ca, *names), "require_starttls": True, "auth_require_tls": True}
        options |= {"auth_required": True}
    elif mode == "tls":
        assert ca is not None
        options |= {"ssl_context": server_context(ca, *names), "auth_require_tls": False}
    else:
        options |= {"auth_require_tls": not auth_in_clear}
    controller = Controller(_Recorder(record), hostname="127.0.0.1", port=record.port, **options)
    controller.start()
    try:
        yield record
    finally:
        controller.stop()


def digest_message() -> EmailMessage:
    return compose(
        sender=SENDER,
        recipients=[RECIPIENT],
        subject="TLSRPT digest",
        body="All reports arrived.\n",
        now=datetime.now(UTC),
    )


def settings(port: int, **changes: Any) -> SmtpSettings:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "timeout": 10.0} | changes
    return SmtpSettings(**values)


# --- what gets through ---------------------------------------------------------------------------


def test_starttls_then_auth_then_the_message(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca) as server:
        send(digest_message(), settings(server.port, user=USER, password=PASSWORD, ca_file=ca_file))
    assert server.logins == [(USER, PASSWORD, True)]  # AUTH went inside TLS, where the server offered it
    (mail,) = server.delivered
    assert (mail.authenticated, mail.over_tls) == (True, True)
    assert (mail.mail_from, mail.rcpt_tos) == ("mtasts@example.com", [RECIPIENT])
    assert mail.message["Subject"] == "TLSRPT digest"
    assert mail.message.get_content().splitlines() == ["All reports arrived."]


def test_implicit_tls(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca, mode="tls") as server:
        send(
            digest_message(),
            settings(server.port, security=SmtpSecurity.TLS, user=USER, password=PASSWORD, ca_file=ca_file),
        )
    assert server.logins == [(USER, PASSWORD, True)]
    (mail,) = server.delivered
    assert mail.over_tls


def test_a_plain_relay_only_when_chosen() -> None:
    with submission_server(None, mode="plain") as server:
        send(digest_message(), settings(server.port, security=SmtpSecurity.NONE))
    (mail,) = server.delivered
    assert not mail.over_tls


# --- what does not, and says why -----------------------------------------------------------------


def test_a_certificate_the_system_does_not_trust_sends_nothing(smtp_ca: trustme.CA) -> None:
    with submission_server(smtp_ca) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, user=USER, password=PASSWORD))  # no CA file: the system store
    assert caught.value.kind is MailFailureKind.UNTRUSTED
    assert "not trusted" in str(caught.value)
    assert "unable to get local issuer certificate" in str(caught.value)
    assert (server.logins, server.delivered) == ([], [])  # the password never left


def test_a_certificate_for_another_name_sends_nothing(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca, names=("mail.test",)) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, user=USER, password=PASSWORD, ca_file=ca_file))
    assert caught.value.kind is MailFailureKind.UNTRUSTED
    assert "IP address mismatch" in str(caught.value)
    assert (server.logins, server.delivered) == ([], [])


def test_a_server_without_starttls_gets_neither_password_nor_mail() -> None:
    with submission_server(None, mode="plain", auth_in_clear=True) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, user=USER, password=PASSWORD))
    assert caught.value.kind is MailFailureKind.NO_STARTTLS
    assert str(caught.value) == f"127.0.0.1:{server.port} does not offer STARTTLS; nothing was sent in clear"
    assert (server.logins, server.delivered) == ([], [])  # AUTH was offered in clear and not used


def test_a_wrong_password(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, user=USER, password="wrong", ca_file=ca_file))
    assert caught.value.kind is MailFailureKind.AUTH_REFUSED
    assert f"refused the user name or password of {USER!r}: 535 5.7.8" in str(caught.value)
    assert server.delivered == []


def test_a_server_that_wants_auth_when_no_user_is_given(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, ca_file=ca_file))
    assert caught.value.kind is MailFailureKind.REFUSED
    assert "530 5.7.0 Authentication required" in str(caught.value)
    assert server.delivered == []


def test_implicit_tls_on_a_starttls_port(smtp_ca: trustme.CA, ca_file: Path) -> None:
    with submission_server(smtp_ca) as server, pytest.raises(MailError) as caught:
        send(digest_message(), settings(server.port, security=SmtpSecurity.TLS, ca_file=ca_file))
    assert caught.value.kind is MailFailureKind.TLS
    assert "(is it a STARTTLS or plain port?)" in str(caught.value)


def test_one_recipient_refused_of_two(smtp_ca: trustme.CA, ca_file: Path) -> None:
    message = compose(
        sender=SENDER, recipients=[RECIPIENT, "nobody@example.com"], subject="s", body="b", now=datetime.now(UTC)
    )
    with submission_server(smtp_ca) as server, pytest.raises(MailError) as caught:
        send(message, settings(server.port, user=USER, password=PASSWORD, ca_file=ca_file))
    assert caught.value.kind is MailFailureKind.REFUSED
    assert "refused nobody@example.com (550 5.1.1 no such user); the other recipients got it" in str(caught.value)
    (mail,) = server.delivered
    assert mail.rcpt_tos == [RECIPIENT]


def test_nobody_listening() -> None:
    port = free_port()
    with pytest.raises(MailError) as caught:
        send(digest_message(), settings(port))
    assert caught.value.kind is MailFailureKind.UNREACHABLE
    assert str(caught.value) == f"cannot reach 127.0.0.1:{port}: Connection refused"


def test_a_server_that_never_answers() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(MailError) as caught:
            send(digest_message(), settings(silent.getsockname()[1], timeout=0.5))
    assert caught.value.kind is MailFailureKind.TIMEOUT
    assert "did not answer within 0.5 s (during connect)" in str(caught.value)


def test_a_ca_file_with_no_certificate(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(MailError) as caught:
        send(digest_message(), settings(free_port(), ca_file=tmp_path / "empty.pem"))
    assert caught.value.kind is MailFailureKind.CA_FILE
    assert str(caught.value).startswith(f"cannot use the CA file {tmp_path / 'empty.pem'}: ")


# --- settings and headers ------------------------------------------------------------------------


def test_settings_never_allow_auth_in_clear_and_hide_the_password() -> None:
    with pytest.raises(ValueError, match="never sent over an unencrypted connection"):
        SmtpSettings("localhost", 25, SmtpSecurity.NONE, USER, PASSWORD)
    with pytest.raises(ValueError, match="needs a password"):
        SmtpSettings("localhost", 587, user=USER)
    assert PASSWORD not in repr(SmtpSettings("localhost", 587, user=USER, password=PASSWORD))
    assert SmtpSettings("2001:db8::25", 587).address == "[2001:db8::25]:587"


def test_compose_sets_date_and_a_message_id_on_the_senders_domain() -> None:
    now = datetime(2026, 12, 2, 6, 0, 5, tzinfo=UTC)
    message = compose(sender=SENDER, recipients=[RECIPIENT, "hostmaster@example.org"], subject="s", body="b", now=now)
    assert message["Date"] == "Wed, 02 Dec 2026 06:00:05 +0000"
    assert parsedate_to_datetime(message["Date"]) == now
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message["Message-ID"])
    assert message["To"] == "postmaster@example.com, hostmaster@example.org"
    local = compose(sender="mtasts", recipients=[RECIPIENT], subject="s", body="b", now=now)
    assert local["Message-ID"].endswith("@localhost>")
    assert abs(parsedate_to_datetime(digest_message()["Date"]) - datetime.now(UTC)) < timedelta(minutes=1)
