"""Benchmark of the mtasts inspector (``mtasts check``) against checkdmarc, on the loopback lab.

Run from the repository root, as root (the lab must listen on ports 53, 443 and 25: checkdmarc
fetches policies from ``https://mta-sts.<domain>/`` and probes MX hosts on port 25, ports it
does not let a caller change)::

    sudo /tmp/v/bin/python bench/inspector.py              # 0 ms and 30 ms runs (about six minutes)
    sudo /tmp/v/bin/python bench/inspector.py --delay-ms 0 # the zero-latency run only (about two minutes)
    sudo /tmp/v/bin/python bench/inspector.py --quick      # fewer domains and repetitions
    sudo /tmp/v/bin/python bench/inspector.py --json       # machine-readable output
    sudo /tmp/v/bin/python bench/inspector.py --profile    # also cProfile (CPU) one mtasts bulk run
    sudo /tmp/v/bin/python bench/inspector.py --rounds 3   # best of 3 bulk runs per tool (noisy machines)

Goals. Inspector issue, at zero latency: one domain in at most half of checkdmarc's time; bulk at
least 10x checkdmarc's throughput. Issue 12: client CPU at most 2.5 ms per checked domain on the
bulk set; at 30 ms per exchange, bulk (the ``mtasts check -f`` CLI, with every core) at least
300x checkdmarc's sequential loop on the same kind of domains.

Latency. ``--delay-ms`` (repeatable; default 0 and 30) runs everything once per latency, each on
its own lab started with that delay (``Lab(delay=...)``, as ``mtasts lab up --delay-ms``): every
DNS answer (UDP and TCP), HTTP response and SMTP reply leaves the lab that long after the request
arrived, so each exchange costs one round trip; TCP and TLS handshakes are not delayed, so this is
a lower bound on a real network with that RTT, for both tools alike. Zero latency is the
loopback, where the lab's CPU (on the same cores as the client) is the limit: those ratios are
for information. With a delay, mtasts runs at ``--delay-concurrency`` (256) over the whole bulk
set; checkdmarc's sequential loop, and mtasts' own concurrency=1 run, go over the first
``--delay-sample`` bulk domains (48 by default: one of each bulk scenario, so the same mix as
the whole set), since a sequential loop there takes about a second a domain; the report says so.
Single domains with a delay: the three quick scenarios, ``--delay-repeat`` (3) runs each;
``check_domains`` only at zero latency.

How it runs
    * The lab runs in its own process (this file with ``--serve-lab``) on a dedicated loopback
      network (``--network``, 127.243.0.0/16 by default) on the standard ports, serving the
      whole scenario catalogue plus the bulk set. Every certificate is made before the lab says
      it is ready, so no side pays for lazy certificate generation. Neither client shares a
      process (or a GIL) with the servers.
    * mtasts runs in this process: ``Inspector(NetworkSettings(nameserver=lab, ca_file=lab CA,
      timeout=T, ports 443/25))``; one domain is ``await inspector.check(domain)`` (full
      inspection: _mta-sts TXT, policy fetch over validated HTTPS, _smtp._tls TXT, MX, A/AAAA
      and TLSA of each MX, a STARTTLS probe of each MX address, analysis and verdict); bulk is
      ``inspector.check_many(domains, concurrency=C)`` (and once more with one worker); the CLI
      (``mtasts check -f FILE -c C -o FILE.jsonl``, whole process) is timed too, for information.
    * checkdmarc (PyPI) is installed into ``bench/.venvs/checkdmarc`` and run in a subprocess
      with that venv's interpreter (this file with ``--peer``; only the standard library and
      checkdmarc are imported there). One domain is the MTA-STS part of
      ``checkdmarc.check_domains``: ``check_mta_sts`` (TXT record, policy download with
      requests, parse) + ``check_mx(..., mta_sts_mx_patterns=<policy mx>, check_mx_tls=True)``
      (MX, addresses, CNAME/DNSSEC/TLSA/PTR lookups, STARTTLS on port 25 and implicit TLS on
      465 when STARTTLS is missing) + ``check_smtp_tls_reporting``. Its DNS lookups go to the
      lab through ``nameservers=[dns.nameserver.Do53Nameserver(ip, port=53)]``. requests and
      smtplib resolve host names with the system resolver, so the peer runs in a private mount
      namespace (``unshare --mount``) where ``/etc/resolv.conf`` names the lab's nameserver
      (nothing outside that process sees it); where ``unshare`` is not usable, a
      ``socket.getaddrinfo`` shim asking the lab with dnspython is installed instead (the
      output says which). ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` point at the lab CA, so
      both tools validate certificates against the same trust anchor. checkdmarc has no
      parallel mode: its bulk path, ``check_domains``, is a sequential loop, so its bulk
      throughput is the same three calls in a sequential loop. ``check_domains`` itself (which
      adds SPF, DMARC, BIMI, NS, SOA and DNSSEC checks) is also timed on a sample, for
      information only.
    * Timing method, both sides: ``time.perf_counter()`` around the unit of work (one domain;
      or the whole bulk run), in the tool's own process. Single domains: one untimed warm-up
      round, then ``--repeat`` rounds in which each domain is checked by mtasts and then by
      checkdmarc (the order swapped every round), so load from other processes falls on both
      alike; the figure is the median. checkdmarc's caches (its ``ExpiringDict`` DNS, SMTP and
      DNSSEC caches) are emptied before every timed single-domain check and once before its
      bulk run (mtasts keeps no cache between checks). Bulk runs also report the CPU time per
      domain of the client and of the lab process: on a small machine both tools are bound by
      CPU, not by the network, and these columns say whose CPU. Client CPU is
      ``time.process_time()`` of the process that runs the tool (this one for mtasts'
      ``check_many``, the peer for checkdmarc) and ``RUSAGE_CHILDREN`` around the ``mtasts check``
      subprocess (its workers included); the lab is another process, read from ``/proc``.

The bulk set: ``--bulk`` (1,000 by default) extra lab domains ``bulkNNNN-<scenario>.mtasts.test``,
copies (``dataclasses.replace``) of the catalogue scenarios taken in turn, except the two whose
point is a timeout (``sts-lookup-timeout``, ``policy-hang``): a timeout measures the timeout
setting, not the tool. Each copy is a real domain with its own policy host and MX host (its own
loopback addresses, certificates and listeners: about 2,000 listeners on ports 443 and 25).
The mtasts bulk run is also checked against each scenario's expected findings and delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SCRIPT = Path(__file__).resolve()
PEER_VENV = BENCH / ".venvs" / "checkdmarc"
PEER_PACKAGE = "checkdmarc"
DEFAULT_NETWORK = "127.243.0.0/16"  # outside the 127.100-199 range of the lab's random networks
ZONE = "mtasts.test"
SINGLE_GOAL = 0.5  # mtasts time / checkdmarc time, one domain (at 0 ms)
BULK_GOAL = 10.0  # mtasts throughput / checkdmarc throughput (at 0 ms)
CPU_GOAL_MS = 2.5  # mtasts client CPU per checked domain, bulk set (issue 12)
GOAL_DELAY_MS = 30  # the internet-like latency of issue 12
DELAYED_BULK_GOAL = 300.0  # mtasts bulk throughput / checkdmarc's loop, at GOAL_DELAY_MS (issue 12)

# A few correct and broken domains, none of which waits for a timeout.
SINGLE_SCENARIOS = (
    "enforce-ok",
    "split-txt-ok",
    "cname-policy-host-ok",
    "testing-ok",
    "no-sts-record",
    "policy-404",
    "policy-cert-wrong-name",
    "mx-no-starttls",
    "mx-cert-expired",
    "mx-cert-chain-incomplete",
)
QUICK_SINGLE_SCENARIOS = ("enforce-ok", "policy-404", "mx-cert-expired")
BULK_EXCLUDED = frozenset({"sts-lookup-timeout", "policy-hang"})  # they measure the timeout


def raise_open_files() -> int:
    """Raise RLIMIT_NOFILE as far as allowed (the lab holds ~2,000 listeners); the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (65536, hard):
        if wanted == resource.RLIM_INFINITY or wanted <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
        except (ValueError, OSError):
            continue
        return wanted
    return soft


def udp_receive_drops() -> int:
    """UDP datagrams dropped so far because a socket's receive buffer was full (all sockets)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return 0


# --- the peer side (runs under the checkdmarc venv: standard library and checkdmarc only) -------


def _install_resolver_shim(nameserver: tuple[str, int], zone: str) -> None:
    """Make ``socket.getaddrinfo`` ask the lab for names under ``zone`` (fallback when no mount
    namespace can be made): A and AAAA, as the system resolver would."""
    import socket

    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    resolver.lifetime = 2.0
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or not (name.rstrip(".").endswith("." + zone)):
            return original(host, port, family, type, proto, flags)
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            with contextlib.suppress(dns.exception.DNSException):
                addresses += [r.to_text() for r in resolver.resolve(name, rdtype, search=False)]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out: list[Any] = []
        for address in addresses:
            out.extend(original(address, port, family, type, proto, flags | socket.AI_NUMERICHOST))
        return out

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def _peer_main() -> None:
    """Serve timing requests for checkdmarc: one JSON object per line in, one per line out.

    The first line is the setup (nameserver, zone, timeout, shim, probe host); then
    ``{"op": "single", "domain": D}`` (caches emptied, one timed check), ``{"op": "bulk",
    "domains": [...]}`` (caches emptied once, a timed sequential loop), ``{"op": "check_domains",
    "domains": [...]}`` or ``{"op": "quit"}``. checkdmarc's own output goes to stderr.
    """
    import socket
    from importlib.metadata import version

    reply_to = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # nothing but replies on the reply channel

    def reply(data: dict[str, Any]) -> None:
        reply_to.write(json.dumps(data) + "\n")
        reply_to.flush()

    setup = json.loads(sys.stdin.readline())
    nameserver = (setup["nameserver"][0], int(setup["nameserver"][1]))
    timeout = float(setup["timeout"])
    if setup["shim"]:
        _install_resolver_shim(nameserver, setup["zone"])

    import checkdmarc
    import dns.nameserver
    from checkdmarc.mta_sts import check_mta_sts
    from checkdmarc.smtp import check_mx
    from checkdmarc.smtp_tls_reporting import check_smtp_tls_reporting
    from expiringdict import ExpiringDict

    nameservers = [dns.nameserver.Do53Nameserver(nameserver[0], port=nameserver[1])]

    def clear_caches() -> None:
        for name, module in list(sys.modules.items()):
            if name == "checkdmarc" or name.startswith("checkdmarc."):
                for value in vars(module).values():
                    if isinstance(value, ExpiringDict):
                        value.clear()

    def check(domain: str) -> dict[str, Any]:
        """The MTA-STS part of check_domains, the same calls with the same arguments."""
        sts = check_mta_sts(domain, nameservers=nameservers, timeout=timeout)
        patterns = sts["policy"]["mx"] if sts["valid"] else None
        mx = check_mx(domain, mta_sts_mx_patterns=patterns, check_mx_tls=True, nameservers=nameservers, timeout=timeout)
        tlsrpt = check_smtp_tls_reporting(domain, nameservers=nameservers, timeout=timeout)
        return {"mta_sts": sts, "mx": mx, "tlsrpt": tlsrpt}

    def summary(result: dict[str, Any]) -> str:
        sts = result["mta_sts"]
        parts = ["mta-sts valid" if sts["valid"] else f"mta-sts error: {sts['error'][:70]}"]
        for host in result["mx"].get("hosts", []):
            parts.append(f"starttls {'ok' if host.get('starttls') else 'failed'}")
        if "error" in result["mx"]:
            parts.append(f"mx error: {result['mx']['error'][:60]}")
        parts.append("tlsrpt valid" if result["tlsrpt"]["valid"] else "tlsrpt invalid")
        return "; ".join(parts)

    # can the system resolver (used by requests and smtplib) see the lab?
    try:
        addresses = socket.getaddrinfo(setup["probe_host"], 443, type=socket.SOCK_STREAM)
        resolved = sorted({str(address[4][0]) for address in addresses})
    except OSError as exc:
        resolved = [f"error: {exc}"]
    reply(
        {
            "python": sys.version.split()[0],
            "version": version(PEER_PACKAGE),
            "resolved": {setup["probe_host"]: resolved},
        }
    )

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "single":
            clear_caches()
            start = time.perf_counter()
            result = check(command["domain"])
            elapsed = time.perf_counter() - start
            reply({"time": elapsed, "summary": summary(result)})
        elif op == "bulk":
            domains: list[str] = command["domains"]
            clear_caches()
            cpu = time.process_time()
            start = time.perf_counter()
            results = [check(domain) for domain in domains]
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu

            def outcome(result: dict[str, Any]) -> str:
                hosts = result["mx"].get("hosts", [])
                mx = (
                    "no MX host"
                    if not hosts
                    else "starttls ok"
                    if all(h.get("starttls") for h in hosts)
                    else "starttls failed"
                )
                return ("mta-sts valid, " if result["mta_sts"]["valid"] else "mta-sts invalid, ") + mx

            outcomes = Counter(outcome(r) for r in results)
            reply(
                {
                    "domains": len(domains),
                    "elapsed": elapsed,
                    "rate": len(domains) / elapsed,
                    "client_cpu_ms_per_domain": cpu * 1000 / len(domains),
                    "outcomes": dict(outcomes),
                }
            )
        elif op == "check_domains":
            clear_caches()
            cpu = time.process_time()
            start = time.perf_counter()
            checked = checkdmarc.check_domains(
                command["domains"], check_mx_tls=True, nameservers=nameservers, timeout=timeout
            )
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            count = len(checked) if isinstance(checked, list) else 1
            reply(
                {
                    "domains": count,
                    "elapsed": elapsed,
                    "rate": count / elapsed,
                    "client_cpu_ms_per_domain": cpu * 1000 / count,
                }
            )
        else:
            break


# --- the lab process ------------------------------------------------------------------------------


def bulk_names(count: int) -> list[tuple[str, str]]:
    """``(scenario copy name, catalogue scenario name)`` for the bulk set, deterministic."""
    from mtasts.lab.scenarios import CATALOGUE

    pool = [name for name in CATALOGUE if name not in BULK_EXCLUDED]
    return [(f"bulk{i:04d}-{pool[i % len(pool)]}", pool[i % len(pool)]) for i in range(count)]


def _serve_lab(info_file: Path, network: str, bulk: int, delay_ms: int) -> None:
    """Run the catalogue plus ``bulk`` copies on the standard ports until SIGTERM or SIGINT, every
    DNS answer, HTTP response and SMTP reply held back ``delay_ms`` (``mtasts lab up --delay-ms``)."""
    import asyncio
    import dataclasses

    from mtasts.lab.scenarios import CATALOGUE, MxFault, Scenario
    from mtasts.lab.world import Lab, Ports

    raise_open_files()
    scenarios: list[Scenario] = list(CATALOGUE.values())
    scenarios += [dataclasses.replace(CATALOGUE[base], name=name) for name, base in bulk_names(bulk)]
    lab = Lab(scenarios, zone=ZONE, network=network, ports=Ports.standard(), delay=delay_ms / 1000)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        started = time.perf_counter()
        async with lab:
            bound = time.perf_counter() - started
            # make every certificate and server context now, not on the first connection
            for https in lab.plan.https_hosts:
                lab.certs.server_context(https.cert, https.name)
            for smtp in lab.plan.smtp_hosts:
                lab.certs.server_context(smtp.cert, smtp.name, tls10_only=smtp.fault is MxFault.TLS10_ONLY)
            info = lab.info()
            info["startup_seconds"] = {"bind": bound, "certificates": time.perf_counter() - started - bound}
            info["listeners"] = {"https": len(lab.plan.https_hosts), "smtp": len(lab.plan.smtp_hosts)}
            partial = info_file.with_suffix(".partial")
            partial.write_text(json.dumps(info))
            partial.replace(info_file)
            await stop.wait()

    asyncio.run(run())


class LabProcess:
    """The lab in a child process; :meth:`start` returns its ``info()`` once it is ready."""

    def __init__(self, network: str, bulk: int, workdir: Path, delay_ms: int = 0) -> None:
        self.network = network
        self.bulk = bulk
        self.delay_ms = delay_ms
        self.info_file = workdir / "lab.json"
        self.log_file = workdir / "lab.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300.0) -> dict[str, Any]:
        command = [sys.executable, str(SCRIPT), "--serve-lab", str(self.info_file), "--network", self.network]
        command += ["--bulk", str(self.bulk), "--delay-ms", str(self.delay_ms)]
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.info_file.exists():
                info: dict[str, Any] = json.loads(self.info_file.read_text())
                return info
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                hint = ""
                if "Address already in use" in tail:
                    hint = f"\n(something already listens on {self.network}: choose another with --network)"
                raise RuntimeError(f"the lab did not start:\n{tail}{hint}")
            time.sleep(0.1)
        raise RuntimeError(f"the lab was not ready after {timeout:g} s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the lab process has used so far (Linux /proc)."""
        if self.process is None:
            return 0.0
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# --- the checkdmarc side ------------------------------------------------------------------------


def peer_python(reinstall: bool) -> Path:
    """The interpreter of ``bench/.venvs/checkdmarc``, created and installed when needed."""
    python = PEER_VENV / "bin" / "python"
    check = [str(python), "-c", "import checkdmarc, expiringdict, dns.nameserver"]
    if not reinstall and python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing {PEER_PACKAGE} into {PEER_VENV} ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", PEER_PACKAGE]
    subprocess.run(pip, check=True, stdout=sys.stderr)
    subprocess.run(check, check=True)
    return python


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


class Peer:
    """checkdmarc in its venv, in a subprocess (this file with ``--peer``) that times what it is asked."""

    def __init__(self, python: Path, info: dict[str, Any], timeout: float, probe_host: str, workdir: Path) -> None:
        self.shim = not _namespace_works()
        self.resolver = (
            "getaddrinfo shim (dnspython -> lab nameserver)"
            if self.shim
            else "system resolver, in a private mount namespace whose resolv.conf names the lab nameserver"
        )
        self.setup = {
            "nameserver": [info["nameserver_address"], int(info["dns_port"])],
            "zone": info["zone"],
            "timeout": timeout,
            "shim": self.shim,
            "probe_host": probe_host,
        }
        command = [str(python), str(SCRIPT), "--peer"]
        if not self.shim:
            resolv = workdir / "resolv.conf"
            resolv.write_text(f"nameserver {info['nameserver_address']}\noptions attempts:1 timeout:2\n")
            mount = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(resolv), *command]
        env = dict(os.environ)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env.pop(name, None)
        env.update(
            REQUESTS_CA_BUNDLE=info["ca_file"],  # requests (policy download)
            SSL_CERT_FILE=info["ca_file"],  # ssl.create_default_context (STARTTLS)
            NO_PROXY="*",
            no_proxy="*",
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.command = command
        self.env = env
        self.log_file = workdir / "peer.log"
        self.process: subprocess.Popen[str] | None = None
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env
            )
        self.hello = self.call(self.setup)
        return self.hello

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self.process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("the checkdmarc side is not running")
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            process.wait(10)
            log = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the checkdmarc side stopped (exit {process.returncode}):\n{log}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                process.stdin.close()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None


# --- the measurements ---------------------------------------------------------------------------


def lab_settings(info: dict[str, Any], timeout: float) -> Any:
    """mtasts' NetworkSettings for the lab: its nameserver, its CA, its (standard) ports."""
    from mtasts.net.settings import NetworkSettings

    return NetworkSettings(
        nameserver=(info["nameserver_address"], int(info["dns_port"])),
        ca_file=Path(info["ca_file"]),
        timeout=timeout,
        https_port=int(info["https_port"]),
        smtp_port=int(info["smtp_port"]),
    )


def run_single(
    info: dict[str, Any], timeout: float, peer: Peer | None, single: list[str], repeat: int
) -> dict[str, Any]:
    """Per domain: ``repeat`` timed checks by each tool, interleaved (mtasts then checkdmarc on the
    same domain, the order swapped every repetition) so that load from other processes falls on
    both alike; one untimed warm-up round first."""

    from mtasts.check.inspect import DomainReport, Inspector

    def summary(report: DomainReport) -> str:
        codes = sorted({f.code for f in report.findings})
        return f"{report.verdict.delivery.value}; " + (", ".join(codes) if codes else "no findings")

    async def main() -> dict[str, Any]:
        inspector = Inspector(lab_settings(info, timeout))
        out: dict[str, Any] = {d: {"mtasts": [], "checkdmarc": []} for d in single}

        async def mine(domain: str) -> None:
            start = time.perf_counter()
            report = await inspector.check(domain)
            out[domain]["mtasts"].append(time.perf_counter() - start)
            out[domain]["mtasts_result"] = summary(report)

        def theirs(domain: str) -> None:
            if peer is not None:
                answer = peer.call({"op": "single", "domain": domain})
                out[domain]["checkdmarc"].append(answer["time"])
                out[domain]["checkdmarc_result"] = answer["summary"]

        for domain in single:  # warm-up
            await mine(domain)
            theirs(domain)
        for data in out.values():
            data["mtasts"].clear()
            data["checkdmarc"].clear()
        for rep in range(repeat):
            for domain in single:
                if rep % 2:
                    theirs(domain)
                    await mine(domain)
                else:
                    await mine(domain)
                    theirs(domain)
        return out

    from mtasts.cli._run import run_async  # as `mtasts check` runs: uvloop where installed

    return run_async(main())


def run_bulk_mtasts(
    info: dict[str, Any],
    timeout: float,
    bulk: list[str],
    expected: dict[str, tuple[frozenset[str], str]],
    concurrency: int,
    lab_cpu: Callable[[], float],
    rounds: int = 1,
    sequential: list[str] | None = None,
) -> dict[str, Any]:
    """``check_many`` over ``bulk`` with ``concurrency`` workers, then with one over ``sequential``
    (default: ``bulk`` again); the best of ``rounds``.

    Each run also records the CPU time of this process and of the lab process, and the UDP
    datagrams the kernel dropped for a full receive buffer (``RcvbufErrors``, system-wide); the
    first run's reports are compared with what each scenario expects. The collector is set as
    in the workers of ``mtasts check -f`` (:func:`mtasts.check.workers.tune_collector`) for these
    runs, and restored after."""
    import gc

    from mtasts.check.inspect import DomainReport, Inspector
    from mtasts.check.workers import tune_collector

    async def bulk_run(workers: int, domains: list[str] = bulk) -> tuple[dict[str, Any], list[DomainReport]]:
        inspector = Inspector(lab_settings(info, timeout))
        reports: list[DomainReport] = []
        drops, cpu, lab = udp_receive_drops(), time.process_time(), lab_cpu()
        start = time.perf_counter()
        async for report in inspector.check_many(domains, concurrency=workers):
            reports.append(report)
        elapsed = time.perf_counter() - start
        stats = {
            "domains": len(reports),
            "elapsed": elapsed,
            "rate": len(reports) / elapsed,
            "concurrency": workers,
            "client_cpu_ms_per_domain": (time.process_time() - cpu) * 1000 / len(reports),
            "lab_cpu_ms_per_domain": (lab_cpu() - lab) * 1000 / len(reports),
            "udp_receive_drops": udp_receive_drops() - drops,
        }
        return stats, reports

    async def main() -> dict[str, Any]:
        stats, reports = max([await bulk_run(concurrency) for _ in range(rounds)], key=lambda run: run[0]["rate"])
        mismatches: list[str] = []
        for report in reports:
            codes, delivery = expected[report.domain]
            got = frozenset(f.code for f in report.findings)
            if got != codes or report.verdict.delivery.value != delivery:
                mismatches.append(
                    f"{report.domain}: expected {sorted(codes)} / {delivery}, got {sorted(got)} / "
                    f"{report.verdict.delivery.value}"
                )
        stats["as_expected"] = len(reports) - len(mismatches)
        stats["mismatch_kinds"] = dict(Counter(line.split(": ", 1)[1] for line in mismatches))
        stats["mismatches"] = mismatches[:100]
        stats["slowest"] = sorted((round(r.elapsed, 3), r.domain) for r in reports)[-3:]
        one = sequential if sequential is not None else bulk
        alone, _ = max([await bulk_run(1, one) for _ in range(rounds)], key=lambda run: run[0]["rate"])
        return {"concurrent": stats, "sequential": alone}

    from mtasts.cli._run import run_async  # as `mtasts check` runs: uvloop where installed

    thresholds = gc.get_threshold()
    tune_collector()
    try:
        return run_async(main())
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def run_bulk_cli(
    info: dict[str, Any], timeout: float, bulk: list[str], concurrency: int, workdir: Path, rounds: int = 1
) -> dict[str, Any] | None:
    """``mtasts check -f FILE -c N -o FILE.jsonl`` over ``bulk``: the whole process, start-up included;
    the best of ``rounds``. Its CPU time (user + system of the child and of any worker process it
    waited for: ``RUSAGE_CHILDREN``) is the client CPU; the lab and the checkdmarc side are other,
    still running, processes, so they are not counted in it."""
    import resource

    script = Path(sys.executable).with_name("mtasts")
    found = str(script) if script.exists() else shutil.which("mtasts")
    if found is None:
        return None
    domains = workdir / "bulk-domains.txt"
    domains.write_text("".join(f"{d}\n" for d in bulk))
    output = workdir / "bulk-results.jsonl"
    command = [found, "check", "-f", str(domains), "--nameserver", info["nameserver"], "--ca-file", info["ca_file"]]
    command += ["--timeout", f"{timeout:g}", "-c", str(concurrency), "-o", str(output)]
    helped = subprocess.run([found, "check", "--help"], capture_output=True, text=True, check=False).stdout
    workers = "its default (every CPU)" if "--workers" in helped else "none (one process, one event loop)"
    best: tuple[float, float] = (float("inf"), 0.0)
    for _ in range(rounds):
        output.unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 1, 2) or not output.exists():
            return {"error": f"exit {done.returncode}: {done.stderr[-500:]}", "command": command}
        best = min(best, (elapsed, cpu))
    elapsed, cpu = best
    count = sum(1 for line in output.read_text().splitlines() if line.strip())
    return {
        "domains": count,
        "elapsed": elapsed,
        "rate": count / elapsed,
        "client_cpu_ms_per_domain": cpu * 1000 / count,
        "workers": workers,
        "command": command,
    }


def run_bulk_peer(
    peer: Peer, bulk: list[str], sample: list[str], lab_cpu: Callable[[], float], rounds: int = 1
) -> dict[str, Any]:
    """checkdmarc's sequential loop over ``bulk`` (best of ``rounds``), and ``check_domains`` over ``sample``."""
    runs = []
    for _ in range(rounds):
        lab = lab_cpu()
        run = peer.call({"op": "bulk", "domains": bulk})
        run["lab_cpu_ms_per_domain"] = (lab_cpu() - lab) * 1000 / len(bulk)
        runs.append(run)
    loop = max(runs, key=lambda run: run["rate"])
    full = None
    if sample:
        lab = lab_cpu()
        full = peer.call({"op": "check_domains", "domains": sample})
        full["lab_cpu_ms_per_domain"] = (lab_cpu() - lab) * 1000 / len(sample)
    return {"loop": loop, "check_domains": full}


def profile_mtasts(info: dict[str, Any], bulk: list[str], concurrency: int, timeout: float, top: int) -> list[str]:
    """cProfile (CPU time) one extra mtasts bulk run (client side only: the lab is another process)."""
    import cProfile
    import io
    import pstats

    from mtasts.check.inspect import Inspector

    settings = lab_settings(info, timeout)

    async def main() -> None:
        async for _ in Inspector(settings).check_many(bulk, concurrency=concurrency):
            pass

    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting for the lab is not a cost here
    profiler.enable()
    from mtasts.cli._run import run_async

    run_async(main())
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    areas: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, own, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        helper = filename.endswith("/enum.py") or (
            filename == "~" and "_ssl." not in function and "_socket." not in function
        )
        if helper:
            # a builtin or enum.py (dnspython's rdata types): its time goes to whoever called it
            for (caller_file, _l, caller_function), edge in callers.items():
                areas[_area(caller_file, caller_function)] += edge[2]
        else:
            areas[_area(filename, function)] += own
    total = sum(areas.values()) or 1.0
    lines = [f"-- CPU by area (builtins and enum counted with their callers; {total:.2f} s under the profiler) --"]
    lines += [f"{share / total:6.1%}  {area}" for area, share in areas.most_common()]
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(top)
        text = out.getvalue()
        body = text[text.find("   ncalls") :] if "   ncalls" in text else text
        lines.append(f"-- by {key} --")
        lines.extend(line.rstrip() for line in body.splitlines() if line.strip())
    return lines


def _area(filename: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    path = filename.replace("\\", "/")
    if "/dns/" in path:
        return "dnspython (DNS messages, names, resolver)"
    if "_ssl." in function or path.endswith(("/ssl.py", "/asyncio/sslproto.py")):
        return "TLS (OpenSSL handshakes, ssl module, asyncio sslproto)"
    if "_socket." in function or path.endswith("/socket.py"):
        return "socket system calls"
    if "/asyncio/" in path or path.endswith("/selectors.py"):
        return "asyncio event loop and streams"
    if "/mtasts/" in path:
        return "mtasts code (incl. the cryptography calls it makes)"
    if "/h11/" in path:
        return "h11"
    if "/cryptography/" in path:
        return "cryptography"
    return "other (stdlib contextlib, random, dataclasses, ...)"


# --- report ---------------------------------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    """``mtasts.i18n.words.plural``, imported late: the ``--peer`` side has no mtasts installed."""
    from mtasts.i18n.words import plural as agree

    return agree(count, noun)


def build_run(
    args: argparse.Namespace,
    plan: RunPlan,
    info: dict[str, Any],
    single: dict[str, Any],
    bulk_mine: dict[str, Any],
    bulk_peer: dict[str, Any] | None,
    peer: Peer | None,
) -> dict[str, Any]:
    """The figures of one lab (one latency)."""
    rows = []
    ratios: list[float] = []
    for domain, data in single.items():
        row: dict[str, Any] = {
            "domain": domain,
            "mtasts_ms": statistics.median(data["mtasts"]) * 1000,
            "mtasts_result": data["mtasts_result"],
        }
        if data["checkdmarc"]:
            row["checkdmarc_ms"] = statistics.median(data["checkdmarc"]) * 1000
            row["checkdmarc_result"] = data["checkdmarc_result"]
            row["ratio"] = row["mtasts_ms"] / row["checkdmarc_ms"]
            ratios.append(row["ratio"])
        rows.append(row)
    run: dict[str, Any] = {
        "delay_ms": plan.delay_ms,
        "settings": {
            "repeat": plan.repeat,
            "single_domains": len(plan.single),
            "bulk_domains": len(plan.bulk),
            "sequential_domains": len(plan.sequential),
            "peer_domains": len(plan.peer_bulk),
            "check_domains_sample": len(plan.check_domains),
            "concurrency": plan.concurrency,
            "nameserver": info["nameserver"],
            "https_port": info["https_port"],
            "smtp_port": info["smtp_port"],
        },
        "lab": {
            "listeners": info["listeners"],
            "startup_seconds": info["startup_seconds"],
            "delay_ms": info.get("delay_ms", 0),
        },
        "single": rows,
        "bulk": {
            "mtasts": bulk_mine["concurrent"],
            "mtasts_sequential": bulk_mine["sequential"],
            "mtasts_cli": bulk_mine.get("cli"),
        },
    }
    if peer is not None and bulk_peer is not None:
        run["peer"] = {
            "package": PEER_PACKAGE,
            "version": peer.hello["version"],
            "python": peer.hello["python"],
            "resolver": peer.resolver,
            "resolved": peer.hello["resolved"],
        }
        run["bulk"]["checkdmarc"] = bulk_peer["loop"]
        run["bulk"]["checkdmarc_check_domains"] = bulk_peer["check_domains"]
        run["ratios"] = {
            "single_geomean": statistics.geometric_mean(ratios) if ratios else None,
            "single_worst": max(ratios) if ratios else None,
            "single_domains_meeting": sum(r <= SINGLE_GOAL for r in ratios),
            "bulk": bulk_mine["concurrent"]["rate"] / bulk_peer["loop"]["rate"],
        }
        cli = bulk_mine.get("cli")
        if cli is not None and "rate" in cli:
            run["ratios"]["bulk_cli"] = cli["rate"] / bulk_peer["loop"]["rate"]
    return run


def build_goals(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each goal, judged on the run it is about (a goal whose run is missing is left out)."""
    goals: dict[str, Any] = {}
    zero = runs.get("0")
    if zero is not None:
        cpu = zero["bulk"]["mtasts"]["client_cpu_ms_per_domain"]
        goals["client_cpu"] = {
            "goal": f"mtasts client CPU <= {CPU_GOAL_MS:g} ms per checked domain on the bulk set (issue 12)",
            "value": cpu,
            "met": cpu <= CPU_GOAL_MS,
        }
        if "ratios" in zero and zero["ratios"]["single_worst"] is not None:
            worst = zero["ratios"]["single_worst"]
            goals["single"] = {
                "goal": f"mtasts time <= {SINGLE_GOAL} x checkdmarc time, for each domain, at 0 ms",
                "geomean_ratio": zero["ratios"]["single_geomean"],
                "worst_ratio": worst,
                "domains_meeting": zero["ratios"]["single_domains_meeting"],
                "domains": len(zero["single"]),
                "met": worst <= SINGLE_GOAL,
            }
            goals["bulk"] = {
                "goal": f"mtasts throughput >= {BULK_GOAL:g} x checkdmarc throughput, at 0 ms (lab and client "
                "share the machine's cores: for information)",
                "ratio": zero["ratios"]["bulk"],
                "met": zero["ratios"]["bulk"] >= BULK_GOAL,
            }
    delayed = runs.get(str(GOAL_DELAY_MS))
    if delayed is not None and "ratios" in delayed:
        cli = delayed["ratios"].get("bulk_cli")
        judged, which = (cli, "mtasts check -f (whole CLI)") if cli is not None else (delayed["ratios"]["bulk"], "")
        goals["bulk_delayed"] = {
            "goal": f"mtasts bulk throughput >= {DELAYED_BULK_GOAL:g} x checkdmarc's sequential loop at "
            f"{GOAL_DELAY_MS} ms per exchange, with all cores (issue 12)",
            "judged_on": which or "check_many in this process",
            "ratio": judged,
            "ratio_check_many": delayed["ratios"]["bulk"],
            "met": judged >= DELAYED_BULK_GOAL,
        }
    return goals


def _cpu_columns(data: dict[str, Any]) -> str:
    client = data.get("client_cpu_ms_per_domain")
    lab = data.get("lab_cpu_ms_per_domain")
    return f"{'-' if client is None else f'{client:.1f}':>10}  {'-' if lab is None else f'{lab:.1f}':>7}"


def _met(goal: dict[str, Any]) -> str:
    return "MET" if goal["met"] else "NOT MET"


def print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    load = machine["load_average_1_5_15"]
    settings = report["settings"]
    print(
        f"mtasts inspector vs checkdmarc — Python {machine['python']}, {machine['cpus']} CPUs, 1-min load average "
        f"{load['start'][0]:.2f} at start, {load['end'][0]:.2f} at end (the machine is shared)"
    )
    print(
        "mtasts:     Inspector.check = _mta-sts TXT, policy fetch (validated HTTPS), _smtp._tls TXT, MX, A/AAAA and\n"
        "            TLSA per MX, STARTTLS probe per MX address (validated), analysis, sender verdict"
    )
    print(
        "checkdmarc: check_mta_sts + check_mx(mta_sts_mx_patterns=..., check_mx_tls=True) + check_smtp_tls_reporting\n"
        "            (the MTA-STS part of check_domains; its caches emptied before each timed single check)"
    )
    rounds = plural(settings["rounds"], "bulk run")
    print(f"timeout {settings['timeout']:g} s per step, both tools; best of {rounds} per tool and latency")
    for run in report["runs"].values():
        print()
        print_run(run, settings)
    print()
    print_summary(report)


def print_run(run: dict[str, Any], common: dict[str, Any]) -> None:
    settings = run["settings"]
    delay = run["delay_ms"]
    peer = run.get("peer")
    lab = run["lab"]
    where = (
        "zero latency (loopback)" if not delay else f"{delay} ms added to every DNS answer, HTTP response, SMTP reply"
    )
    print(f"=== {where} ===")
    print(
        f"lab: own process, nameserver {settings['nameserver']}, HTTPS port {settings['https_port']}, SMTP port "
        f"{settings['smtp_port']}, {lab['listeners']['https']} HTTPS + {lab['listeners']['smtp']} SMTP listeners, "
        f"delay {lab['delay_ms']:g} ms"
    )
    if peer is not None:
        print(f"peer: checkdmarc {peer['version']} (Python {peer['python']}, own venv, subprocess)")
        print(f"      host names for requests/smtplib: {peer['resolver']}; check: {peer['resolved']}")
    print()
    print(f"single domain: median of {plural(settings['repeat'], 'run')}, ms (runs of the two tools interleaved)")
    width = max(len(r["domain"]) for r in run["single"])
    print(f"  {'domain':<{width}}  {'mtasts':>8}  {'checkdmarc':>10}  {'ratio':>6}")
    for row in run["single"]:
        theirs = f"{row['checkdmarc_ms']:10.1f}  {row['ratio']:6.2f}" if "ratio" in row else f"{'-':>10}  {'-':>6}"
        print(f"  {row['domain']:<{width}}  {row['mtasts_ms']:8.1f}  {theirs}")
    ratios = run.get("ratios")
    if ratios is not None and ratios["single_worst"] is not None:
        print(
            f"  ratio: geometric mean {ratios['single_geomean']:.2f}, worst {ratios['single_worst']:.2f}, "
            f"{ratios['single_domains_meeting']}/{len(run['single'])} domains <= {SINGLE_GOAL}"
        )
    if not delay:
        print("what each side concluded:")
        for row in run["single"]:
            print(f"  {row['domain']}")
            print(f"    mtasts:     {row['mtasts_result']}")
            if "checkdmarc_result" in row:
                print(f"    checkdmarc: {row['checkdmarc_result']}")
    print()
    bulk = run["bulk"]
    mine = bulk["mtasts"]
    print(
        f"bulk: lab domains bulkNNNN-<scenario> (copies of the {common['bulk_scenarios']} catalogue scenarios without "
        f"a timeout, in turn), wall time"
    )
    print(f"  {'run':<66}  {'domains/s':>9}  {'seconds':>8}  {'client CPU':>10}  {'lab CPU':>7} (ms/domain)")
    cli = bulk.get("mtasts_cli")
    rows: list[tuple[str, dict[str, Any] | None]] = [
        (f"mtasts check_many(concurrency={mine['concurrency']}), {mine['domains']} dom.", mine),
        (f"mtasts check_many(concurrency=1), {bulk['mtasts_sequential']['domains']} dom.", bulk["mtasts_sequential"]),
        (f"mtasts check -f FILE -c {mine['concurrency']} -o FILE.jsonl (whole CLI), {mine['domains']} dom.", cli),
    ]
    theirs = bulk.get("checkdmarc")
    if theirs is not None:
        rows.append((f"checkdmarc MTA-STS part, sequential loop, {theirs['domains']} dom.", theirs))
    full = bulk.get("checkdmarc_check_domains")
    if full is not None:
        rows.append((f"checkdmarc check_domains(check_mx_tls=True), {full['domains']} dom. [does more]", full))
    for label, data in rows:
        if data is not None and "rate" in data:
            print(f"  {label:<66}  {data['rate']:9.1f}  {data['elapsed']:8.2f}  {_cpu_columns(data)}")
        elif data is not None and "error" in data:
            print(f"  {label:<66}  failed: {data['error']}")
    if cli is not None and "workers" in cli:
        print(f"  the CLI's worker processes: {cli['workers']}")
    if theirs is not None and delay and theirs["domains"] < mine["domains"]:
        mix = (
            f"one of each scenario: the same mix as the {mine['domains']}"
            if theirs["domains"] == common["bulk_scenarios"]
            else "the first scenarios of the bulk set in turn"
        )
        minutes = round(mine["domains"] / theirs["rate"] / 60)
        print(
            f"  checkdmarc's loop and mtasts' concurrency=1 run go over the first {theirs['domains']} bulk domains "
            f"({mix}); at {delay} ms checkdmarc's loop over all {mine['domains']} would take about "
            f"{plural(max(minutes, 1), 'minute')}"
        )
    if ratios is not None:
        line = f"  throughput ratio mtasts / checkdmarc: check_many {ratios['bulk']:.1f}x"
        if "bulk_cli" in ratios:
            line += f", CLI {ratios['bulk_cli']:.1f}x"
        print(line)
    print(
        f"  CPU ceiling of the mtasts client on its one event loop: {1000 / mine['client_cpu_ms_per_domain']:.0f} "
        f"domains/s; of the lab: {1000 / mine['lab_cpu_ms_per_domain']:.0f} domains/s per core"
    )
    print(f"  mtasts findings and delivery as each scenario expects: {mine['as_expected']}/{mine['domains']}")
    for text, count in Counter(mine["mismatch_kinds"]).most_common(8):
        print(f"    {count} x {text}")
    print(f"  slowest mtasts checks in that run (s): {mine['slowest']}")
    print(f"  UDP datagrams dropped for a full receive buffer during it: {mine['udp_receive_drops']}")
    if theirs is not None:
        print(f"  checkdmarc outcomes: {theirs['outcomes']}")
    if "profile" in run:
        print()
        print("cProfile (CPU time) of one extra mtasts bulk run (client process):")
        for text in run["profile"]:
            print(f"  {text}")


def print_summary(report: dict[str, Any]) -> None:
    print("summary: bulk domains/s (domains checked) and client CPU per checked domain")
    print(
        f"  {'latency':>8}  {'mtasts check_many':>20}  {'mtasts CLI':>16}  {'checkdmarc loop':>16}  "
        f"{'ratio':>14}  {'CPU ms: mtasts':>14}  {'checkdmarc':>10}"
    )
    for run in report["runs"].values():
        bulk = run["bulk"]
        mine, cli, theirs = bulk["mtasts"], bulk.get("mtasts_cli"), bulk.get("checkdmarc")

        def cell(data: dict[str, Any] | None, width: int) -> str:
            if data is None or "rate" not in data:
                return f"{'-':>{width}}"
            text = f"{data['rate']:.1f}/s ({data['domains']})"
            return f"{text:>{width}}"

        ratios = run.get("ratios", {})
        ratio = f"{ratios['bulk']:.0f}x" if "bulk" in ratios else "-"
        if "bulk_cli" in ratios:
            ratio += f" / {ratios['bulk_cli']:.0f}x"
        their_cpu = f"{theirs['client_cpu_ms_per_domain']:.1f}" if theirs else "-"
        print(
            f"  {str(run['delay_ms']) + ' ms':>8}  {cell(mine, 20)}  {cell(cli, 16)}  {cell(theirs, 16)}  "
            f"{ratio:>14}  {mine['client_cpu_ms_per_domain']:14.1f}  {their_cpu:>10}"
        )
    print("  (ratio: check_many / CLI against checkdmarc's loop; at 0 ms the lab and the client share the cores)")
    goals = report["goals"]
    if goals:
        print("goals:")
    for goal in goals.values():
        if "value" in goal:
            print(f"  {goal['goal']}: {_met(goal)} ({goal['value']:.2f} ms)")
        elif "worst_ratio" in goal:
            print(
                f"  {goal['goal']}: {_met(goal)} (worst {goal['worst_ratio']:.2f}, geometric mean "
                f"{goal['geomean_ratio']:.2f}, {goal['domains_meeting']}/{goal['domains']} domains)"
            )
        else:
            print(f"  {goal['goal']}: {_met(goal)} ({goal['ratio']:.1f}x, {goal.get('judged_on', 'check_many')})")


# --- one lab, one latency -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """What to measure on one lab."""

    delay_ms: int
    single: list[str]
    repeat: int
    bulk: list[str]
    sequential: list[str]  # mtasts check_many(concurrency=1)
    peer_bulk: list[str]  # checkdmarc's sequential loop
    check_domains: list[str]  # checkdmarc.check_domains, for information
    concurrency: int
    profile: bool


def plan_run(args: argparse.Namespace, delay_ms: int, zone: str) -> RunPlan:
    """At zero latency everything the bench always measured; with a delay, the same bulk set for
    mtasts, and for the sequential loops (checkdmarc's, mtasts' concurrency=1) the first
    ``--delay-sample`` bulk domains (a sequential loop at 30 ms takes about a second a domain)."""
    scenarios = QUICK_SINGLE_SCENARIOS if args.quick else SINGLE_SCENARIOS
    bulk = [f"{name}.{zone}" for name, _ in bulk_names(args.bulk)]
    if not delay_ms:
        full = args.full_sample if args.full_sample is not None else (0 if args.quick else 50)
        return RunPlan(
            delay_ms=0,
            single=[f"{name}.{zone}" for name in scenarios],
            repeat=args.repeat,
            bulk=bulk,
            sequential=bulk,
            peer_bulk=bulk,
            check_domains=bulk[:full],
            concurrency=args.concurrency,
            profile=args.profile,
        )
    sample = bulk[: args.delay_sample]
    return RunPlan(
        delay_ms=delay_ms,
        single=[f"{name}.{zone}" for name in QUICK_SINGLE_SCENARIOS],
        repeat=args.delay_repeat,
        bulk=bulk,
        sequential=sample,
        peer_bulk=sample,
        check_domains=[],
        concurrency=args.delay_concurrency,
        profile=False,
    )


def measure(
    args: argparse.Namespace, delay_ms: int, python: Path | None, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Start a lab at ``delay_ms``, measure both tools on it, stop it; the run's figures."""
    from mtasts.lab.scenarios import CATALOGUE

    lab = LabProcess(args.network, args.bulk, workdir, delay_ms)
    peer: Peer | None = None
    log(f"[{delay_ms} ms] starting the lab ({len(CATALOGUE)} + {args.bulk} domains on {args.network}) ...")
    try:
        info = lab.start()
        log(f"[{delay_ms} ms] lab ready: {info['listeners']}, startup {info['startup_seconds']}")
        plan = plan_run(args, delay_ms, info["zone"])
        expected = {
            f"{name}.{info['zone']}": (CATALOGUE[base].expect.findings, CATALOGUE[base].expect.delivery.value)
            for name, base in bulk_names(args.bulk)
        }
        if python is not None:
            peer = Peer(python, info, args.timeout, f"mta-sts.{plan.single[0]}", workdir)
            peer.start()
        log(f"[{delay_ms} ms] single domains (interleaved) ...")
        single = run_single(info, args.timeout, peer, plan.single, plan.repeat)
        log(f"[{delay_ms} ms] bulk, mtasts ...")
        bulk_mine = run_bulk_mtasts(
            info, args.timeout, plan.bulk, expected, plan.concurrency, lab.cpu_seconds, args.rounds, plan.sequential
        )
        log(f"[{delay_ms} ms] bulk, mtasts CLI ...")
        bulk_mine["cli"] = run_bulk_cli(info, args.timeout, plan.bulk, plan.concurrency, workdir, args.rounds)
        bulk_peer = None
        if peer is not None:
            log(f"[{delay_ms} ms] bulk, checkdmarc ({len(plan.peer_bulk)} domains) ...")
            bulk_peer = run_bulk_peer(peer, plan.peer_bulk, plan.check_domains, lab.cpu_seconds, args.rounds)
        profile = None
        if plan.profile:
            log(f"[{delay_ms} ms] profiling one mtasts bulk run ...")
            profile = profile_mtasts(info, plan.bulk, plan.concurrency, args.timeout, top=25)
    finally:
        if peer is not None:
            peer.close()
        lab.stop()
    run = build_run(args, plan, info, single, bulk_mine, bulk_peer, peer)
    if profile is not None:
        run["profile"] = profile
    return run


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer domains and repetitions (under a minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--repeat", type=int, default=None, help="runs per single domain at 0 ms (default 21; quick 5)")
    parser.add_argument("--bulk", type=int, default=None, help="bulk domains (default 1000; quick 200)")
    parser.add_argument("--rounds", type=int, default=1, help="bulk runs per tool; the best one counts (1)")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="mtasts concurrency at 0 ms (32)")
    parser.add_argument(
        "--delay-ms",
        type=int,
        action="append",
        help=f"lab latency per exchange, ms (repeat for several; default: 0 and {GOAL_DELAY_MS})",
    )
    parser.add_argument("--delay-concurrency", type=int, default=256, help="mtasts concurrency with a delay (256)")
    parser.add_argument(
        "--delay-sample",
        type=int,
        default=None,
        help="domains for the sequential loops with a delay (default: one per bulk scenario, 48)",
    )
    parser.add_argument("--delay-repeat", type=int, default=3, help="runs per single domain with a delay (3)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-step timeout, both tools (checkdmarc's 2 s)")
    parser.add_argument("--network", default=DEFAULT_NETWORK, help=f"loopback network for the lab ({DEFAULT_NETWORK})")
    parser.add_argument("--full-sample", type=int, default=None, help="domains for check_domains (default 50; quick 0)")
    parser.add_argument("--no-peer", action="store_true", help="time mtasts only")
    parser.add_argument("--reinstall", action="store_true", help="recreate the checkdmarc venv")
    parser.add_argument("--profile", action="store_true", help="cProfile (CPU time) one extra mtasts bulk run at 0 ms")
    parser.add_argument("--serve-lab", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer:
        _peer_main()
        return 0
    if os.geteuid() != 0:
        print(
            "error: bench/inspector.py must run as root: the lab listens on ports 53, 443 and 25, the only ports "
            "checkdmarc can use (e.g. sudo /tmp/v/bin/python bench/inspector.py)",
            file=sys.stderr,
        )
        return 2
    delays = args.delay_ms if args.delay_ms is not None else [0, GOAL_DELAY_MS]
    if args.serve_lab is not None:
        _serve_lab(args.serve_lab, args.network, args.bulk or 0, delays[0])
        return 0

    args.repeat = args.repeat or (5 if args.quick else 21)
    args.bulk = args.bulk if args.bulk is not None else (200 if args.quick else 1000)
    pool = len({base for _, base in bulk_names(10_000)})
    args.delay_sample = min(args.bulk, args.delay_sample if args.delay_sample is not None else pool)
    if min(args.bulk, args.rounds, args.repeat, args.delay_repeat, args.delay_sample, args.delay_concurrency) < 1:
        parser.error("--bulk, --rounds, --repeat, --delay-repeat, --delay-sample and --delay-concurrency must be >= 1")
    if any(not 0 <= delay <= 10_000 for delay in delays):
        parser.error("--delay-ms must be between 0 and 10000")
    raise_open_files()
    python = None if args.no_peer else peer_python(args.reinstall)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    runs: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()
    try:
        for delay in dict.fromkeys(delays):
            with tempfile.TemporaryDirectory(prefix="mtasts-bench-") as work:
                runs[str(delay)] = measure(args, delay, python, Path(work), log)
    except RuntimeError as exc:  # the lab or the peer could not do its part
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()},
        },
        "settings": {
            "bulk_domains": args.bulk,
            "bulk_scenarios": len({base for _, base in bulk_names(args.bulk)}),
            "rounds": args.rounds,
            "timeout": args.timeout,
            "network": args.network,
            "delays_ms": list(runs),
        },
        "runs": runs,
        "goals": build_goals(runs),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
