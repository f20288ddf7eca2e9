"""Independent clients for the lab self-tests: stdlib ``ssl``, ``http.client``, ``smtplib``."""

from __future__ import annotations

import http.client
import smtplib
import socket
import ssl

from mtasts.lab.testing import LabController


def https_request(
    lab: LabController,
    host: str,
    path: str = "/.well-known/mta-sts.txt",
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 2.0,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One HTTPS request to lab host ``host`` (SNI and certificate check for ``host``)."""
    context = context or lab.client_context()
    raw = lab.connect(host, lab.https_port, timeout=timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    connection = http.client.HTTPConnection(host, lab.https_port, timeout=timeout)
    connection.sock = tls
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


class LabSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that reaches MX host names at their lab addresses (the name stays the
    one STARTTLS checks the certificate against)."""

    def __init__(self, lab: LabController, host: str, *, timeout: float = 2.0) -> None:
        self._lab = lab
        super().__init__(host, lab.smtp_port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._lab.address(host), port), timeout)
