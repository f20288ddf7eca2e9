"""Policy hosts, asked by ``ssl`` + ``http.client``: each fault as described."""

from __future__ import annotations

import datetime as dt
import socket
import ssl

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from mtasts.core.policy import parse_policy
from mtasts.core.problems import PolicyParseError
from mtasts.lab.https import HttpError, Request, parse_head, render_answer
from mtasts.lab.plan import HttpAnswer
from mtasts.lab.testing import LabController
from tests.lab.helpers import https_request

pytestmark = pytest.mark.lab


def policy_host(lab: LabController, scenario: str) -> str:
    return f"mta-sts.{lab.domain(scenario)}"


@pytest.mark.parametrize("scenario", ["enforce-ok", "testing-ok", "none-ok", "wildcard-ok", "split-txt-ok"])
def test_correct_policy(lab: LabController, scenario: str) -> None:
    status, headers, body = https_request(lab, policy_host(lab, scenario))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    policy = parse_policy(body)
    assert policy.mode.value == lab.lab.scenario(scenario).policy_mode.value
    assert policy.matches(f"mx1.{lab.domain(scenario)}")


def test_policy_behind_cname(lab: LabController) -> None:
    domain = lab.domain("cname-policy-host-ok")
    (a,) = lab.resolver().resolve(f"mta-sts.{domain}", "A")
    raw = socket.create_connection((a.address, lab.https_port), timeout=2)
    with lab.client_context().wrap_socket(raw, server_hostname=f"mta-sts.{domain}") as tls:
        tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(100).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(("scenario", "status"), [("policy-404", 404), ("policy-500", 500)])
def test_status_faults(lab: LabController, scenario: str, status: int) -> None:
    assert https_request(lab, policy_host(lab, scenario))[0] == status


def test_redirect_answers_3xx_to_a_working_url(lab: LabController) -> None:
    host = policy_host(lab, "policy-redirect")
    status, headers, _ = https_request(lab, host)
    assert status == 301
    location = headers["Location"]
    assert location.startswith(f"https://{host}/")
    moved_status, _, body = https_request(lab, host, location.removeprefix(f"https://{host}"))
    assert moved_status == 200
    parse_policy(body)


def test_wrong_content_type(lab: LabController) -> None:
    status, headers, body = https_request(lab, policy_host(lab, "policy-content-type"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    parse_policy(body)


def test_too_large(lab: LabController) -> None:
    status, headers, body = https_request(lab, policy_host(lab, "policy-too-large"))
    assert status == 200
    assert int(headers["Content-Length"]) == len(body) > 64 * 1024


def test_syntax_error(lab: LabController) -> None:
    status, _, body = https_request(lab, policy_host(lab, "policy-syntax"))
    assert status == 200
    with pytest.raises(PolicyParseError):
        parse_policy(body)


def test_hang_accepts_and_never_answers(lab: LabController) -> None:
    with pytest.raises(TimeoutError):
        https_request(lab, policy_host(lab, "policy-hang"), timeout=0.3)


def test_refused(lab: LabController) -> None:
    with pytest.raises(ConnectionRefusedError):
        https_request(lab, policy_host(lab, "policy-refused"))


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("policy-cert-wrong-name", "Hostname mismatch"),
        ("policy-cert-expired", "certificate has expired"),
        ("policy-cert-untrusted", "unable to get local issuer certificate"),
    ],
)
def test_certificate_faults(lab: LabController, scenario: str, reason: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        https_request(lab, policy_host(lab, scenario))
    assert reason in str(info.value.verify_message)


def test_certificate_expiring_soon_still_verifies(lab: LabController) -> None:
    host = policy_host(lab, "policy-cert-expiring-soon")
    raw = lab.connect(host, lab.https_port)
    with lab.client_context().wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    left = x509.load_der_x509_certificate(der).not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=1) < left < dt.timedelta(days=4)


def test_other_paths_and_methods(lab: LabController) -> None:
    host = policy_host(lab, "enforce-ok")
    assert https_request(lab, host, "/")[0] == 404
    assert https_request(lab, host, method="POST", body=b"x")[0] == 405
    status, headers, body = https_request(lab, host, method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0


# --- robustness -------------------------------------------------------------------------------


def raw_tls(lab: LabController, data: bytes, scenario: str = "enforce-ok") -> bytes:
    host = policy_host(lab, scenario)
    raw = lab.connect(host, lab.https_port)
    with lab.client_context().wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(data)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"garbage\r\n\r\n", b"400"),
        (b"\xff\xfe\r\n\r\n", b"400"),
        (b"BREW /pot HTTP/1.1\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", b"413"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
    ],
)
def test_bad_requests_get_an_error_status(lab: LabController, data: bytes, status: bytes) -> None:
    assert raw_tls(lab, data).split(b" ")[1] == status


def test_clients_that_leave_early(lab: LabController) -> None:
    host = policy_host(lab, "enforce-ok")
    with lab.connect(host, lab.https_port):
        pass  # connect and leave before the handshake
    with lab.connect(host, lab.https_port) as sock:
        sock.sendall(b"\x16\x03\x01\x00\xff\x01")  # half a ClientHello
    with lab.connect(host, lab.https_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port
        sock.recv(100)  # an alert or the end of the stream, not a stall (the timeout is 2 s)
    raw = lab.connect(host, lab.https_port)
    with lab.client_context().wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n")  # then leave mid-request
    assert https_request(lab, host)[0] == 200


# --- sans-I/O ---------------------------------------------------------------------------------


def test_parse_head() -> None:
    request = parse_head(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Type:  text/plain \r\n\r\n")
    assert isinstance(request, Request)
    assert request.path == "/a"
    assert request.header("HOST") == "x"
    assert request.header("content-type") == "text/plain"
    assert request.header("missing") is None


@pytest.mark.parametrize(
    "head",
    [b"GET\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET http://x/ HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nbad\r\n\r\n"],
)
def test_parse_head_errors(head: bytes) -> None:
    assert isinstance(parse_head(head), HttpError)


def test_render_answer() -> None:
    data = render_answer(HttpAnswer(301, b"moved", location="https://x/"))
    assert data.startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
    assert b"\r\nLocation: https://x/\r\n" in data
    assert data.endswith(b"\r\n\r\nmoved")
    assert render_answer(HttpAnswer(299, b"x"), head_only=True).startswith(b"HTTP/1.1 299 Status\r\n")


@given(st.binary(max_size=300))
def test_parse_head_takes_any_bytes(data: bytes) -> None:
    assert isinstance(parse_head(data + b"\r\n\r\n"), Request | HttpError)


def _served_names(lab: LabController, host: str, server_name: str | None) -> list[str]:
    """The DNS names of the certificate a policy host presents for ``server_name`` (SNI)."""
    context = ssl.create_default_context(cafile=str(lab.lab.ca_file))
    context.check_hostname = False
    with lab.connect(host, lab.https_port) as raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_policy_hosts_choose_their_certificate_by_sni(lab: LabController) -> None:
    """Like shared web hosting: with SNI the host's own certificate, without it the default site's."""
    host = policy_host(lab, "enforce-ok")
    zone = lab.info()["zone"]
    assert _served_names(lab, host, host) == [host]
    assert _served_names(lab, host, None) == [f"default.{zone}"]
    assert _served_names(lab, host, f"mta-sts.{lab.domain('testing-ok')}") == [f"default.{zone}"]
