"""``mtasts publish serve`` against nginx: the same body, the same certificate, the same loopback.

Run from the repository root with mtasts installed, Debian's ``nginx-light`` and ``wrk``::

    python bench/publish.py                       # both parts, 10 s per run
    python bench/publish.py --duration 5 --skip-many
    python bench/publish.py --only-many --domains 10000

Part 1, throughput. Both servers run at once, each one process on 127.0.0.1 (nginx with
``worker_processes 1``; the policy host is one event loop): nginx serves the configuration
``mtasts publish export --format nginx`` writes, inside a minimal ``http {}``. One load generator,
``wrk`` (one thread), with a small Lua script that pins the address (the URL keeps the policy
host's name, for SNI and ``Host``) and reports JSON. Runs alternate between the servers so that
drifting load from other work on the machine touches both alike. Two modes, each at 1 and 50
connections:

- ``new-full``: ``Connection: close`` on every request, so each GET is a new TCP connection and
  a full TLS handshake. wrk offers its last session back when it reconnects; a sender fetching a
  policy once a day has none to offer, so in this mode neither server resumes: nginx runs with
  ``ssl_session_tickets off`` and ``ssl_session_cache off``, the policy host with no session
  tickets (a wrapper of this script, see ``SERVE_WITHOUT_RESUMPTION``). A Python client offering
  its session back checks, and prints, that neither resumes;
- ``new-resumed``: the same with resumption allowed on both (the host as shipped, nginx with its
  default tickets and a shared session cache): what wrk does by itself;
- ``keep-alive``: one connection per wrk connection, GET after GET (limits raised on both sides:
  nginx ``keepalive_requests``, the host's rate limit, per-client caps and requests per
  connection, which are there for hostile clients, not for a benchmark from one address).

wrk's latency is from writing a request to reading its answer; in ``new`` mode it leaves out the
TCP connect and the handshake, so the table also gives the mean whole cycle (connections / rate).

Part 2, many domains: a configuration of ``--domains`` names (10,000), each with its own
certificate and key files; the time from starting ``mtasts publish serve`` to the first
successful GET of the last domain, and the resident memory (``VmRSS``) then, after the host has
read every certificate's expiry in the background (the metrics list them all), and after TLS
handshakes to 1,100 distinct names (more than the default certificate cache of 1,000).

The machine's two CPUs are shared with other work: compare figures within one run only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import trustme

from mtasts.publish.config import ListenAddress, parse_config
from mtasts.publish.export import ExportFormat, render_export

HOST_DOMAIN = "bench.test"
POLICY_PATH = "/.well-known/mta-sts.txt"
MODES = ("new-full", "new-resumed", "keep-alive")
CONNECTIONS = (1, 50)
LIMITS = (  # the host's hostile-client bounds, out of the way of one benchmarking address
    "access_log = false\nrequests_per_second = 100000000.0\nburst = 100000000\n"
    "max_connections_per_client = 10000\nmax_requests_per_connection = 1000000000\n"
)
WRK_SCRIPT = """
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
if CLOSE then wrk.headers["Connection"] = "close" end
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '\\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def issue(ca: trustme.CA, host: str, directory: Path) -> tuple[Path, Path]:
    cert, key = directory / f"{host}.pem", directory / f"{host}.key"
    issued = ca.issue_cert(host, key_type=trustme.KeyType.ECDSA)
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return cert, key


def domain_entry(name: str, cert: Path, key: Path) -> str:
    return (
        f'[[domain]]\nname = "{name}"\nmode = "enforce"\nmx = ["mx1.{name}", "mx2.{name}"]\n'
        f'max_age = 604800\ncert = "{cert}"\nkey = "{key}"\n\n'
    )


def start_serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from mtasts.cli.main import run; run()",
                "publish",
                "serve",
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_port(port: int, process: subprocess.Popen[bytes], patience: float = 30.0) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {patience} s")


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


def get(port: int, host: str, context: ssl.SSLContext, session: ssl.SSLSession | None = None) -> tuple[bytes, bool]:
    """One GET on a new connection: the body, and whether the TLS session was resumed."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=host, session=session)
    with sock:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.sock = sock
        connection.request("GET", POLICY_PATH)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{host}:{port} answered {response.status}")
        return body, sock.session_reused


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass(frozen=True, slots=True)
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def wrk(url: str, script: Path, connections: int, duration: float) -> Run:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), url]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"^RESULT (\{.*\})$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed: {finished.stdout}{finished.stderr}")
    data = json.loads(match.group(1))
    seconds = data["duration_us"] / 1e6
    return Run(
        data["requests"] / seconds, data["p50_us"] / 1000, data["p99_us"] / 1000, data["errors"], data["requests"]
    )


def nginx_main(prefix: Path, include: Path, resumption: bool) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # as root, workers would switch to nobody
    temp = "\n".join(f"    {k}_temp_path {prefix / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    if resumption:
        sessions = "    ssl_session_cache shared:SSL:10m;\n"  # tickets are on by default
    else:
        sessions = "    ssl_session_tickets off;\n    ssl_session_cache off;\n"
    return (
        f"{user}pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\nworker_processes 1;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n    access_log off;\n    keepalive_requests 1000000000;\n{sessions}{temp}\n"
        f"    include {include};\n}}\n"
    )


# The policy host as shipped resumes TLS sessions (tickets from Python's ssl defaults). For the
# full-handshake runs it is started with no TLS 1.3 tickets and no TLS 1.2 tickets on its listening
# context (which holds the session keys and cache whatever context SNI then picks): a bench-only
# wrapper around PolicyHost._tls_context, the serving code itself is untouched.
SERVE_WITHOUT_RESUMPTION = """
import ssl, sys
from mtasts.publish import host
shipped = host.PolicyHost._tls_context
def without_resumption(self):
    context = shipped(self)
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    return context
host.PolicyHost._tls_context = without_resumption
from mtasts.cli.main import run
run()
"""
SERVE = "from mtasts.cli.main import run; run()"


@dataclass
class Servers:
    """The processes of one comparison: the policy host and nginx, each on its own port."""

    ports: dict[str, int]
    processes: list[subprocess.Popen[bytes]]


def start_pair(directory: Path, ca: trustme.CA, *, resumption: bool) -> Servers:
    host = f"mta-sts.{HOST_DOMAIN}"
    cert, key = directory.parent / f"{host}.pem", directory.parent / f"{host}.key"
    serve_port, nginx_port = free_port(), free_port()
    config = directory / "publish.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{serve_port}"]\nadmin = "off"\n{LIMITS}\n'
        + domain_entry(HOST_DOMAIN, cert, key)
    )
    # nginx serves what `mtasts publish export --format nginx` writes for the same configuration
    export = directory / "export"
    rendered = render_export(
        parse_config(config.read_text(), config),
        ExportFormat.NGINX,
        root=PurePosixPath(export),
        listen=(ListenAddress("127.0.0.1", nginx_port),),
    )
    for exported in rendered.files:
        (export / exported.path).parent.mkdir(parents=True, exist_ok=True)
        (export / exported.path).write_bytes(exported.content)
    prefix = directory / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(nginx_main(prefix, export / "nginx-mta-sts.conf", resumption))
    with (directory / "serve.log").open("wb") as stderr:
        code = SERVE if resumption else SERVE_WITHOUT_RESUMPTION
        serve = subprocess.Popen(
            [sys.executable, "-c", code, "publish", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    with (prefix / "stderr.log").open("wb") as stderr:
        nginx = subprocess.Popen(
            [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"], stderr=stderr
        )
    pair = Servers({"mtasts": serve_port, "nginx": nginx_port}, [serve, nginx])
    wait_port(serve_port, serve)
    wait_port(nginx_port, nginx)
    return pair


def throughput(directory: Path, duration: float) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    host = f"mta-sts.{HOST_DOMAIN}"
    issue(ca, host, directory)
    scripts = {}
    for mode in MODES:
        scripts[mode] = directory / f"{mode}.lua"
        scripts[mode].write_text(f"CLOSE = {'false' if mode == 'keep-alive' else 'true'}\n{WRK_SCRIPT}")
    pairs: dict[bool, Servers] = {}
    try:
        for resumption in (False, True):
            (directory / str(resumption)).mkdir()
            pairs[resumption] = start_pair(directory / str(resumption), ca, resumption=resumption)
        context = client_context(ca)
        bodies = set()
        for resumption, pair in pairs.items():
            for name, port in pair.ports.items():
                body, _ = get(port, host, context)
                bodies.add(body)
                first = context_session(port, host, context)
                _, reused = get(port, host, context, first)
                setting = "allowed" if resumption else "off"
                print(
                    f"{name} (resumption {setting}): a TLS session offered back is resumed: {'yes' if reused else 'no'}"
                )
        if len(bodies) != 1:
            raise SystemExit("the servers serve different bodies")
        print(f"body: {len(bodies.pop())} bytes, identical; wrk 1 thread, {duration:g} s per run\n")
        results: dict[tuple[str, int, str], Run] = {}
        for mode in MODES:
            pair = pairs[mode == "new-resumed"]
            for connections in CONNECTIONS:
                for name, port in pair.ports.items():
                    url = f"https://{host}:{port}{POLICY_PATH}"
                    wrk(url, scripts[mode], connections, 1)  # warm-up
                    results[(mode, connections, name)] = wrk(url, scripts[mode], connections, duration)
        print(
            f"{'mode':<12}{'conns':>6} {'server':<7}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'cycle ms':>9}{'errors':>8}"
        )
        for (mode, connections, name), run in results.items():
            cycle = connections / run.rate * 1000 if run.rate else float("nan")
            print(
                f"{mode:<12}{connections:>6} {name:<7}{run.rate:>10.0f}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}"
                f"{cycle:>9.2f}{run.errors:>8}"
            )
        print("\nratios mtasts / nginx (goals: new-connection rate >= 0.8, p99 <= 2.0):")
        for mode in MODES:
            for connections in CONNECTIONS:
                ours, theirs = results[(mode, connections, "mtasts")], results[(mode, connections, "nginx")]
                rate = ours.rate / theirs.rate
                p99 = ours.p99_ms / theirs.p99_ms if theirs.p99_ms else float("inf")
                rate_goal = f" ({'met' if rate >= 0.8 else 'not met'})" if mode != "keep-alive" else ""
                print(
                    f"  {mode:<12} {connections:>2} conns: rate {rate:.2f}x{rate_goal}, "
                    f"p99 {p99:.2f}x ({'met' if p99 <= 2 else 'not met'})"
                )
        serve, nginx = pairs[False].processes
        print(f"\nRSS after the runs: mtasts {rss_mib(serve.pid):.0f} MiB, nginx worker {nginx_worker_rss(nginx.pid)}")
    finally:
        for pair in pairs.values():
            for process in pair.processes:
                process.terminate()
                process.wait(10)


def context_session(port: int, host: str, context: ssl.SSLContext) -> ssl.SSLSession | None:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
        return sock.session


def nginx_worker_rss(master: int) -> str:
    children = Path(f"/proc/{master}/task/{master}/children")
    try:
        pids = [int(p) for p in children.read_text().split()]
    except OSError:
        return "?"
    return ", ".join(f"{rss_mib(pid):.0f} MiB" for pid in pids) + f" (master {rss_mib(master):.0f} MiB)"


def many_domains(directory: Path, count: int) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    certs = directory / "certs"
    certs.mkdir()
    started = time.perf_counter()
    names = [f"d{i:05d}.{HOST_DOMAIN}" for i in range(count)]
    port, admin = free_port(), free_port()
    parts = [f'[server]\nlisten = ["127.0.0.1:{port}"]\nadmin = "127.0.0.1:{admin}"\n{LIMITS}\n']
    for name in names:
        cert, key = issue(ca, f"mta-sts.{name}", certs)
        parts.append(domain_entry(name, cert, key))
    config = directory / "many.toml"
    config.write_text("".join(parts))
    print(f"{count} domains, a certificate and key file each: made in {time.perf_counter() - started:.1f} s")
    context = client_context(ca)
    start = time.perf_counter()
    serve = start_serve(config, directory / "many.log")
    try:
        wait_port(port, serve, patience=120)
        listening = time.perf_counter() - start
        body, _ = get(port, f"mta-sts.{names[-1]}", context)
        ready = time.perf_counter() - start
        at_ready = rss_mib(serve.pid)
        cpu = cpu_seconds(serve.pid)
        print(
            f"  mtasts publish serve: listening after {listening:.2f} s, first GET (last domain) answered "
            f"after {ready:.2f} s (goal < 2 s: {'met' if ready < 2 else 'not met'}); RSS {at_ready:.0f} MiB"
        )
        print(f"  CPU time of the host until then: {cpu:.2f} s (the wall time above also waits for other work)")
        expiry_started = time.perf_counter()
        while True:  # the background read of every certificate's expiry: done when the metrics list all
            known = admin_metric_count(admin, "mtasts_publish_certificate_days_left{")
            if known >= count or time.perf_counter() - expiry_started > 120:
                break
            time.sleep(0.2)
        warmed = rss_mib(serve.pid)
        print(
            f"  every certificate's expiry read {time.perf_counter() - start:.1f} s after start "
            f"({known} in the metrics); RSS {warmed:.0f} MiB"
        )
        distinct = min(1100, count)
        handshakes = time.perf_counter()
        for name in names[:distinct]:
            get(port, f"mta-sts.{name}", context)
        elapsed = time.perf_counter() - handshakes
        after = rss_mib(serve.pid)
        peak = max(at_ready, warmed, after)
        print(
            f"  {distinct} handshakes to distinct names in {elapsed:.1f} s ({distinct / elapsed:.0f}/s, "
            f"Python client, certificates loaded on first use); RSS {after:.0f} MiB "
            f"(goal < 300 MB: {'met' if peak * 1.048576 < 300 else 'not met'})"
        )
        print(f"  body of the last domain: {len(body)} bytes")
    finally:
        serve.terminate()
        serve.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def admin_metric_count(port: int, prefix: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return sum(1 for line in text.splitlines() if line.startswith(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--domains", type=int, default=10_000, help="domains in the many-domains part")
    parser.add_argument("--skip-many", action="store_true", help="only the throughput part")
    parser.add_argument("--only-many", action="store_true", help="only the many-domains part")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool}{'-light' * (tool == 'nginx')})")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs\n")
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as work:
        directory = Path(work)
        if not args.only_many:
            (directory / "one").mkdir()
            throughput(directory / "one", args.duration)
            print()
        if not args.skip_many:
            (directory / "many").mkdir()
            many_domains(directory / "many", args.domains)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
