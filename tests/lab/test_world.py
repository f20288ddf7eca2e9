"""The Lab as a whole: async API, info, limits, and a clean stop."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import smtplib
import socket
import ssl

import dns.asyncquery
import dns.message
import pytest

from mtasts.lab import Lab, Limits
from mtasts.lab.testing import LabController, running_lab
from tests.lab.helpers import LabSMTP

pytestmark = pytest.mark.lab

SMALL = Limits(idle_timeout=0.3, handshake_timeout=0.3, hang_timeout=0.3, max_message_bytes=1024)


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_async_lab() -> None:
    async with Lab(["enforce-ok", "mx-unreachable"]) as lab:
        info = lab.info()
        address, port = lab.nameserver
        assert info["nameserver"] == f"{address}:{port}"
        assert {d["scenario"] for d in info["domains"]} == {"enforce-ok", "mx-unreachable"}
        assert json.loads(json.dumps(info)) == info
        query = dns.message.make_query(f"_mta-sts.{lab.domain('enforce-ok')}", "TXT")
        response = await dns.asyncquery.udp(query, address, port=port, timeout=2)
        assert response.answer
        context = ssl.create_default_context(cafile=info["ca_file"])
        host = f"mta-sts.{lab.domain('enforce-ok')}"
        reader, writer = await asyncio.open_connection(
            lab.address(host), lab.https_port, ssl=context, server_hostname=host
        )
        writer.write(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK")
        writer.close()
        await writer.wait_closed()
        https = lab.https_port
        ca_file = lab.ca_file
    assert not lab.running
    assert not ca_file.exists()
    assert await asyncio.to_thread(refused, lab.address(host), https)
    assert await asyncio.to_thread(refused, address, port)


def test_stop_leaves_nothing_behind() -> None:
    controller = LabController(["enforce-ok", "policy-hang"], limits=SMALL)
    controller.start()
    host = f"mta-sts.{controller.domain('enforce-ok')}"
    mx = f"mx1.{controller.domain('enforce-ok')}"
    hang = f"mta-sts.{controller.domain('policy-hang')}"
    address, dns_port = controller.nameserver
    https_port, smtp_port = controller.https_port, controller.smtp_port
    # connections still open when the lab stops
    idle = controller.connect(mx, smtp_port)
    hanging = controller.client_context().wrap_socket(controller.connect(hang, https_port), server_hostname=hang)
    hanging.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n\r\n")
    dns_tcp = socket.create_connection((address, dns_port), timeout=1)
    try:
        controller.stop()
        assert controller.leftover_tasks == ()
        for addr, port in [
            (controller.address(host), https_port),
            (controller.address(mx), smtp_port),
            (address, dns_port),
        ]:
            assert refused(addr, port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.connect((address, dns_port))
            sock.send(b"\x00" * 12)
            with pytest.raises(ConnectionRefusedError):
                sock.recv(512)  # ICMP port unreachable: nothing listens on UDP either
    finally:
        idle.close()
        hanging.close()
        dns_tcp.close()
    controller.stop()  # a second stop is harmless


def test_silent_clients_are_dropped() -> None:
    with running_lab(["enforce-ok", "policy-hang"], limits=SMALL) as lab:
        for host, port in [
            (f"mx1.{lab.domain('enforce-ok')}", lab.smtp_port),
            (f"mta-sts.{lab.domain('enforce-ok')}", lab.https_port),
        ]:
            with lab.connect(host, port) as sock:
                sock.settimeout(3)
                while sock.recv(1024):  # the SMTP banner, then the end of the stream
                    pass
        address, port = lab.nameserver
        with socket.create_connection((address, port), timeout=3) as sock:
            assert sock.recv(10) == b""
        hang = f"mta-sts.{lab.domain('policy-hang')}"
        raw = lab.connect(hang, lab.https_port, timeout=3)
        with lab.client_context().wrap_socket(raw, server_hostname=hang) as tls:
            tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n\r\n")
            assert tls.recv(10) == b""  # closed after hang_timeout, never answered


def test_message_size_limit() -> None:
    with running_lab(["enforce-ok"], limits=SMALL) as lab:
        host = f"mx1.{lab.domain('enforce-ok')}"
        with LabSMTP(lab, host) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as info:
                smtp.sendmail("a@b.test", ["c@d.test"], (b"x" * 70 + b"\r\n") * 20)
            assert info.value.smtp_code == 552
            assert smtp.noop()[0] == 250
        assert lab.messages(host) == ()


def test_explicit_network_and_validation() -> None:
    lab = Lab(["enforce-ok"], network="127.77.0.0/24")
    assert lab.plan.nameserver_address == "127.77.0.1"
    assert not lab.running
    with pytest.raises(RuntimeError):
        _ = lab.ca_file
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        Lab(network=ipaddress.IPv4Network("10.0.0.0/24"))
    with pytest.raises(KeyError):
        lab.domain("policy-404")
    with pytest.raises(ValueError, match="positive"):
        Limits(idle_timeout=0)
    with pytest.raises(ValueError, match="at least 1"):
        Limits(max_connections_per_client=0)


async def test_start_twice_is_refused() -> None:
    async with Lab(["enforce-ok"]) as lab:
        with pytest.raises(RuntimeError, match="already running"):
            await lab.start()
