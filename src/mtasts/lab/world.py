"""The :class:`Lab`: a whole mail world on loopback, wired from scenarios.

One nameserver, the policy hosts, the MX hosts and the TLSRPT sink, each host on its own
loopback address (127.0.0.0/8 all reaches ``lo`` on Linux), all HTTPS listeners on one port
number and all SMTP listeners on another, so a client that follows the lab's DNS reaches the
right host. Construction does nothing; :meth:`Lab.start` (or ``async with``) binds, and
:meth:`Lab.stop` releases every socket, task and file. :meth:`Lab.info` is how other tools
learn where things are.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mtasts.lab._net import DEFAULT_LIMITS, Limits, check_delay
from mtasts.lab.certs import LabCertificates
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.https import HttpsServer, LoggedRequest, Request
from mtasts.lab.plan import POLICY_PATH, HttpAnswer, HttpsHost, Plan, SmtpHost, plan_lab
from mtasts.lab.scenarios import CertKind, MxFault, Scenario, select_scenarios
from mtasts.lab.sink import Report, ReportSink
from mtasts.lab.smtp import Mailboxes, Message, SmtpServer
from mtasts.net._streams import silence_starttls_eof_warning
from mtasts.net.server import select_by_sni

__all__ = ["DEFAULT_ZONE", "Lab", "Limits", "Ports", "check_options"]

_S = TypeVar("_S", DnsServer, HttpsServer, SmtpServer)

DEFAULT_ZONE = "mtasts.test"  # .test is reserved for testing (RFC 2606)


@dataclass(frozen=True, slots=True)
class Ports:
    """The port numbers to listen on; 0 lets the lab pick free ones (the default)."""

    dns: int = 0
    https: int = 0
    smtp: int = 0

    @classmethod
    def standard(cls) -> Ports:
        """53, 443 and 25, so unmodified tools can talk to the lab (needs privileges)."""
        return cls(dns=53, https=443, smtp=25)


DEFAULT_PORTS = Ports()


def check_options(info: Mapping[str, Any], *, timeout: float | None = None) -> list[str]:
    """The ``mtasts check`` options that point it at the lab described by ``info``
    (:meth:`Lab.info`, or the file of ``mtasts lab up --info``): its nameserver, its CA file,
    its HTTPS and SMTP ports, and ``--timeout`` when given."""
    options = [
        "--nameserver",
        str(info["nameserver"]),
        "--ca-file",
        str(info["ca_file"]),
        "--https-port",
        str(info["https_port"]),
        "--smtp-port",
        str(info["smtp_port"]),
    ]
    return options if timeout is None else [*options, "--timeout", f"{timeout:g}"]


def random_network() -> ipaddress.IPv4Network:
    """A /16 inside 127.0.0.0/8 that concurrent labs are unlikely to share."""
    return ipaddress.IPv4Network(f"127.{random.randrange(100, 200)}.0.0/16")  # noqa: S311 (not crypto)


class Lab:
    """A running mail world for ``scenarios`` (names or :class:`Scenario` objects; ``None``: all).

    ``network`` is the loopback network hosts get addresses from (a random 127.x.0.0/16 by
    default), ``ports`` the port numbers, ``limits`` the per-connection bounds, ``delay`` the
    seconds every DNS answer, HTTP response and SMTP reply waits before it leaves (an
    internet-like round trip for benchmarks and demos; 0, the default, adds nothing; at most
    10), and ``now`` the time certificates are dated from (the clock at :meth:`start` by default).
    """

    def __init__(
        self,
        scenarios: Iterable[str | Scenario] | None = None,
        *,
        zone: str = DEFAULT_ZONE,
        network: ipaddress.IPv4Network | str | None = None,
        ports: Ports = DEFAULT_PORTS,
        limits: Limits = DEFAULT_LIMITS,
        delay: float = 0.0,
        now: dt.datetime | None = None,
    ) -> None:
        self.scenarios = select_scenarios(scenarios)
        self.zone = zone.rstrip(".").lower()
        self.network = ipaddress.IPv4Network(network) if network is not None else random_network()
        if not self.network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"the lab network must be inside 127.0.0.0/8, not {self.network}")
        self.ports = ports
        self.limits = limits
        self.delay = check_delay(delay)
        self.now = now
        self.plan: Plan = plan_lab(self.scenarios, zone=self.zone, network=self.network)
        self.mailboxes = Mailboxes()
        self.sink = ReportSink(self.plan.sink_host)
        self._certs: LabCertificates | None = None
        self._directory: Path | None = None
        self._dns: DnsServer | None = None
        self._https: HttpsServer | None = None
        self._smtp: SmtpServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the certificates, write the CA file, bind every listener; ready on return."""
        if self._dns is not None:
            raise RuntimeError("the lab is already running")
        silence_starttls_eof_warning()
        now = self.now or dt.datetime.now(dt.UTC)
        self._certs = LabCertificates(
            now=now, wrong_name=f"wrong-name.{self.zone}", ca_issuers_url=f"http://ca.{self.zone}/intermediate.crt"
        )
        self._directory = Path(tempfile.mkdtemp(prefix="mtasts-lab-"))
        (self._directory / "ca.pem").write_bytes(self._certs.ca_pem)
        (self._directory / "intermediate.pem").write_bytes(self._certs.intermediate_pem)
        zone = Zone(self.zone, self.plan.records, self.plan.faults)
        self._dns = DnsServer(zone, self.plan.nameserver_address, self.ports.dns, limits=self.limits, delay=self.delay)
        self._https = HttpsServer(
            self.plan.https_hosts,
            self._https_context,
            responders={self.plan.sink_host: self.sink.handle},
            port=self.ports.https,
            limits=self.limits,
            delay=self.delay,
        )
        self._smtp = SmtpServer(
            self.plan.smtp_hosts,
            self._smtp_context,
            self.mailboxes,
            port=self.ports.smtp,
            limits=self.limits,
            delay=self.delay,
        )
        try:
            await self._dns.start()
            await self._https.start()
            await self._smtp.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every listener and connection and delete the CA files; safe to call twice."""
        for server in (self._smtp, self._https, self._dns):
            if server is not None:
                await server.stop()
        self._dns = self._https = self._smtp = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def __aenter__(self) -> Lab:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the listeners are up."""
        return self._dns is not None

    # --- where things are ------------------------------------------------------------------

    @property
    def certs(self) -> LabCertificates:
        """The lab's PKI (available once started)."""
        if self._certs is None:
            raise RuntimeError("the lab has not been started")
        return self._certs

    @property
    def nameserver(self) -> tuple[str, int]:
        """The nameserver's (address, port)."""
        return self.plan.nameserver_address, self._running(self._dns).port

    @property
    def https_port(self) -> int:
        """The port every HTTPS host listens on."""
        return self._running(self._https).port

    @property
    def smtp_port(self) -> int:
        """The port every MX host listens on."""
        return self._running(self._smtp).port

    @property
    def ca_file(self) -> Path:
        """The PEM file of the lab's root CA: the one trust anchor clients need."""
        if self._directory is None:
            raise RuntimeError("the lab has not been started")
        return self._directory / "ca.pem"

    @property
    def intermediate_file(self) -> Path:
        """The PEM file of the intermediate CA that ``chain-incomplete`` servers do not send."""
        return self.ca_file.with_name("intermediate.pem")

    def domain(self, scenario: str) -> str:
        """The mail domain of the scenario called ``scenario``."""
        for domain, name in self.plan.domains:
            if name == scenario:
                return domain
        raise KeyError(f"scenario {scenario!r} is not in this lab")

    def scenario(self, name: str) -> Scenario:
        """The scenario object called ``name``."""
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(f"scenario {name!r} is not in this lab")

    def address(self, host: str) -> str:
        """The loopback address of ``host`` (whether or not anything listens there)."""
        return self.plan.addresses[host.rstrip(".").lower()]

    def messages(self, host: str | None = None) -> tuple[Message, ...]:
        """Mail accepted by MX ``host`` (every MX when ``None``)."""
        return self.mailboxes.all() if host is None else self.mailboxes.messages(host)

    def reports(self) -> tuple[Report, ...]:
        """TLS reports POSTed to the sink."""
        return tuple(self.sink.reports)

    def https_requests(self, host: str | None = None) -> tuple[LoggedRequest, ...]:
        """Every HTTPS request the lab's hosts have read since :meth:`start`, in order, for
        ``host`` only when given (``mta-sts.<domain>``): how a test counts the policy fetches
        of a client in another process (``GET`` of ``/.well-known/mta-sts.txt``)."""
        logged = self._running(self._https).requests
        return tuple(logged) if host is None else tuple(r for r in logged if r.host == host.rstrip(".").lower())

    # --- changing the world while it runs (tests of ``mtasts monitor``) ----------------------

    def set_records(self, name: str, rdtype: str, datas: Iterable[str]) -> None:
        """Publish ``datas`` (zone-file text; none: remove the RRset) as ``name``'s ``rdtype``."""
        self._running(self._dns).zone.replace(name, rdtype, datas)

    def serve_policy(self, domain: str, body: bytes | None, *, status: int = 200) -> None:
        """Make ``mta-sts.<domain>`` answer ``body`` with ``status`` at the policy path (``None``:
        go back to the scenario's answers)."""
        https = self._running(self._https)
        host = f"mta-sts.{domain}"
        if body is None:
            https.responders.pop(host, None)
            return
        answer = HttpAnswer(status, body)

        def respond(request: Request) -> HttpAnswer:
            return answer if request.path == POLICY_PATH else HttpAnswer(404, b"not found\n")

        https.responders[host] = respond

    def info(self) -> dict[str, Any]:
        """Where everything is, as JSON-ready data (written by ``mtasts lab up --info``).

        Keys: ``nameserver`` ("IP:PORT"), ``nameserver_address``, ``dns_port``, ``ca_file``,
        ``intermediate_ca_file``, ``https_port``, ``smtp_port``, ``zone``, ``tlsrpt_url``,
        ``domains`` (``{"name", "scenario"}``), ``hosts`` (host name -> address) and
        ``delay_ms`` (the latency added to every answer, in milliseconds).
        """
        address, port = self.nameserver
        return {
            "nameserver": f"{address}:{port}",
            "nameserver_address": address,
            "dns_port": port,
            "ca_file": str(self.ca_file),
            "intermediate_ca_file": str(self.intermediate_file),
            "https_port": self.https_port,
            "smtp_port": self.smtp_port,
            "zone": self.zone,
            "tlsrpt_url": f"https://{self.plan.sink_host}/v1/report",
            "domains": [{"name": domain, "scenario": name} for domain, name in self.plan.domains],
            "hosts": dict(self.plan.addresses),
            "delay_ms": round(self.delay * 1000, 3),
        }

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _running(server: _S | None) -> _S:
        if server is None:
            raise RuntimeError("the lab is not running")
        return server

    def _https_context(self, host: HttpsHost) -> ssl.SSLContext:
        """The host's certificate for clients that ask for it by SNI; like shared web hosting,
        a client that sends no SNI, or another name, gets the default site's certificate (valid,
        but for ``default.<zone>``), so a fetcher that forgets SNI fails as it would in real life."""
        context = self.certs.server_context(host.cert, host.name)
        default = self.certs.server_context(CertKind.GOOD, f"default.{self.zone}")
        return select_by_sni(context, {host.name: context}, default)

    def _smtp_context(self, host: SmtpHost) -> ssl.SSLContext:
        return self.certs.server_context(host.cert, host.name, tls10_only=host.fault is MxFault.TLS10_ONLY)
