"""``mtasts report serve`` as an operator runs it: one access line per request, whatever became
of it, and a start-up failure said in one line that names the file or option at fault.

Every test runs the real command in its own process (its stderr is the log) and, for the access
log, speaks real HTTPS to it (httpx and raw TLS sockets, a trustme CA). Each case comes from its
own loopback address (any 127/8 address is a distinct client), so each access line can be
matched to the request that caused it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.commands import MTASTS
from tests.report.test_mail import BODY, REPORT

CLI = [*MTASTS, "report", "serve"]
JSON = {"Content-Type": "application/tlsrpt+json"}
ACCESS = re.compile(
    r'^\S+ \S+ (?P<level>INFO|WARNING) (?P<client>\S+) "(?P<method>\S+) (?P<target>\S+)" (?P<status>\d{3}|-) '
    r"in=(?P<received>\d+|-) out=(?P<sent>\d+|-) (?P<ms>\d+\.\d)ms (?P<outcome>[a-z][a-z0-9_.]*)"
    r'(?P<details>(?: "[^"]*")*)$'
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pems(tmp_path: Path, ca: trustme.CA) -> tuple[Path, Path]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class Serving:
    """A running ``mtasts report serve``; its stderr lines are collected as they come."""

    def __init__(self, process: subprocess.Popen[str], port: int, start_line: str = "") -> None:
        self.process = process
        self.port = port
        self.start_line = start_line
        self.url = f"https://localhost:{port}/tlsrpt"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> list[str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.lines


@pytest.fixture
def serve(tmp_path: Path, pems: tuple[Path, Path]) -> Iterator[Callable[..., Serving]]:
    started: list[Serving] = []

    def start(*options: str) -> Serving:
        cert, key = pems
        command = [*CLI, "--cert", str(cert), "--key", str(key), "--port", "0"]
        command += ["--db", str(tmp_path / "db.sqlite3"), *options]
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        assert process.stderr is not None
        first = process.stderr.readline()
        found = re.search(r"https://127\.0\.0\.1:(\d+)/", first)
        if found is None:
            process.kill()
            raise AssertionError(f"the server did not start: {first}{process.stderr.read()}")
        server = Serving(process, int(found.group(1)), first.rstrip("\n"))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        if server.process.stderr is not None:
            server.process.stderr.close()


def client(source: str, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(verify=context, timeout=10, transport=httpx.HTTPTransport(verify=context, local_address=source))


def tls_socket(port: int, source: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return context.wrap_socket(raw, server_hostname="localhost")


def answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    sock.close()
    return data


def other_domain(report_id: str) -> bytes:
    report = json.loads(json.dumps(REPORT))
    report["report-id"] = report_id
    report["policies"][0]["policy"]["policy-domain"] = "not-ours.example"
    return json.dumps(report).encode()


def test_every_request_gets_exactly_one_access_line_with_what_became_of_it(
    serve: Callable[..., Serving], trusting: ssl.SSLContext
) -> None:
    server = serve(
        *("--path", "/tlsrpt", "--allow-domain", "example.com", "--max-body", "4096", "--burst", "3"),
        *("--header-timeout", "1", "--body-timeout", "1", "--handshake-timeout", "1"),
        *("--max-connections-per-client", "2"),
    )
    port, url = server.port, server.url
    expected: dict[str, list[tuple[str, str, str, str]]] = {}  # client: (request, status, outcome, details)

    def post(source: str, body: bytes, headers: dict[str, str], target: str = "/tlsrpt") -> httpx.Response:
        with client(source, trusting) as http:
            return http.post(f"https://localhost:{port}{target}", content=body, headers=headers)

    assert post("127.0.0.2", BODY, JSON).status_code == 201
    assert post("127.0.0.2", BODY, JSON).status_code == 201
    expected["127.0.0.2"] = [
        ("POST /tlsrpt", "201", "stored", ' "Example Sender" "r-1"'),
        ("POST /tlsrpt", "201", "duplicate", ' "Example Sender" "r-1"'),
    ]
    assert post("127.0.0.3", b'{"organization-name"', JSON).status_code == 400
    expected["127.0.0.3"] = [("POST /tlsrpt", "400", "report.json.syntax", "")]
    assert post("127.0.0.4", BODY, {"Content-Type": "text/plain"}).status_code == 415
    expected["127.0.0.4"] = [("POST /tlsrpt", "415", "http.content_type", "")]
    with client("127.0.0.5", trusting) as http:
        assert http.get(url).status_code == 405
    expected["127.0.0.5"] = [("GET /tlsrpt", "405", "http.method", "")]
    assert post("127.0.0.6", BODY, JSON, target="/elsewhere").status_code == 404
    expected["127.0.0.6"] = [("POST /elsewhere", "404", "http.not_found", "")]
    assert post("127.0.0.7", b" " * 5000, JSON).status_code == 413
    expected["127.0.0.7"] = [("POST /tlsrpt", "413", "http.too_large", "")]
    assert post("127.0.0.8", other_domain("r-other"), JSON).status_code == 403
    expected["127.0.0.8"] = [("POST /tlsrpt", "403", "report.domain.not_accepted", "")]
    statuses = [post("127.0.0.9", other_domain(f"r-{n}"), JSON).status_code for n in range(4)]
    assert statuses == [403, 403, 403, 429]
    expected["127.0.0.9"] = [("POST /tlsrpt", "403", "report.domain.not_accepted", "")] * 3
    expected["127.0.0.9"].append(("POST /tlsrpt", "429", "http.rate_limited", ""))

    # the connection guard: a third connection from one address, a stalled head, a stalled body
    held = [tls_socket(port, "127.0.0.10", trusting) for _ in range(2)]
    time.sleep(0.2)  # the server has taken both in
    refused = answer(tls_socket(port, "127.0.0.10", trusting))
    assert refused.startswith(b"HTTP/1.1 503")
    for sock in held:
        sock.close()
    expected["127.0.0.10"] = [("- -", "503", "http.too_many_connections", "")]
    stalled_head = tls_socket(port, "127.0.0.11", trusting)
    stalled_head.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\n")
    stalled_body = tls_socket(port, "127.0.0.12", trusting)
    stalled_body.sendall(
        b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    assert answer(stalled_head).startswith(b"HTTP/1.1 408")
    assert answer(stalled_body).startswith(b"HTTP/1.1 408")
    expected["127.0.0.11"] = [("- -", "408", "http.header_timeout", "")]
    expected["127.0.0.12"] = [("POST /tlsrpt", "408", "http.body_timeout", "")]

    # what h11 cannot parse: not HTTP, a head over the 16 KiB cap
    garbage = tls_socket(port, "127.0.0.13", trusting)
    garbage.sendall(b"HELLO\r\n\r\n")
    assert answer(garbage).startswith(b"HTTP/1.1 400")
    expected["127.0.0.13"] = [("- -", "400", "http.bad_request", "")]
    huge = tls_socket(port, "127.0.0.14", trusting)
    with contextlib.suppress(OSError):
        huge.sendall(b"POST /tlsrpt HTTP/1.1\r\nX-Padding: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer(huge).startswith(b"HTTP/1.1 431")
    expected["127.0.0.14"] = [("- -", "431", "http.head_too_large", "")]

    # TLS handshakes that fail: plain HTTP, a client that does not trust us, one that never speaks
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.15")) as plain,
    ):
        plain.post(f"http://127.0.0.1:{port}/tlsrpt", content=BODY, headers=JSON)
    expected["127.0.0.15"] = [("- -", "-", "tls.handshake", ' "HTTP_REQUEST"')]
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_socket(port, "127.0.0.16", ssl.create_default_context())
    expected["127.0.0.16"] = [("- -", "-", "tls.handshake", ' "TLSV1_ALERT_UNKNOWN_CA"')]
    silent = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.17", 0))
    time.sleep(1.5)
    silent.close()
    expected["127.0.0.17"] = [("- -", "-", "tls.handshake_timeout", ' "no TLS handshake within 1 s"')]

    time.sleep(0.5)
    lines = server.stop()
    access = [match for line in lines if (match := ACCESS.match(line))]
    others = [line for line in lines if not ACCESS.match(line)]
    assert others == [], others  # nothing but access lines (the "listening" line was read before)
    got: dict[str, list[tuple[str, str, str, str]]] = {}
    for match in access:
        got.setdefault(match["client"], []).append(
            (f"{match['method']} {match['target']}", match["status"], match["outcome"], match["details"])
        )
    assert got == expected

    by_client = {m["client"]: m for m in access}
    stored = next(m for m in access if m["outcome"] == "stored")
    assert int(stored["received"]) == len(BODY)  # the body read
    assert int(stored["sent"]) > 0  # {"stored": true, "id": ...}
    assert by_client["127.0.0.7"]["received"] == "0"  # refused on Content-Length, not read
    assert int(by_client["127.0.0.12"]["received"]) == 1  # the one body byte that came
    assert by_client["127.0.0.15"]["received"] == "-"  # no HTTP was spoken
    assert all((m["level"] == "WARNING") == m["status"].startswith("5") for m in access)
    assert "Traceback" not in "\n".join(lines)


def test_the_help_describes_the_access_line() -> None:
    done = subprocess.run(
        [*CLI, "--help"], check=False, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    text = " ".join(done.stdout.split())
    assert "one access line per request" in text
    assert '"stored" or "duplicate" with the organisation and report-id, or the error code' in text


# --- start-up failures -------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_NET_BIND_SERVICE = 1, 2, 10


def _as_ordinary_user() -> None:
    """Run the child without the capabilities that let root read any file and bind any port:
    what an ordinary user meets (run in the child, before exec)."""
    if os.geteuid() == 0:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_NET_BIND_SERVICE):
            if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_serve(*options: str, ordinary: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, Any] = {"preexec_fn": _as_ordinary_user} if ordinary else {}
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    return subprocess.run(
        [*CLI, *options], check=False, capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mtasts: error: "), done.stderr
    return lines[0].removeprefix("mtasts: error: ")


@pytest.fixture
def base(tmp_path: Path, pems: tuple[Path, Path]) -> Callable[..., list[str]]:
    """The options of a server that would start, with some replaced."""

    def options(**changes: str) -> list[str]:
        cert, key = pems
        values = {"--cert": str(cert), "--key": str(key), "--port": "0", "--db": str(tmp_path / "db.sqlite3")}
        values.update({f"--{name.replace('_', '-')}": value for name, value in changes.items()})
        return [item for pair in values.items() for item in pair]

    return options


def test_a_missing_certificate_or_key_file_is_named(base: Callable[..., list[str]], tmp_path: Path) -> None:
    missing = tmp_path / "x" / "cert.pem"
    done = run_serve(*base(cert=str(missing)))
    assert done.returncode == 3
    assert one_error_line(done) == f"--cert {missing}: no such file"
    done = run_serve(*base(key=str(tmp_path / "nokey.pem")))
    assert done.returncode == 3
    assert one_error_line(done) == f"--key {tmp_path / 'nokey.pem'}: no such file"
    done = run_serve(*base(cert=str(tmp_path)))
    assert (done.returncode, one_error_line(done)) == (3, f"--cert {tmp_path}: is a folder, not a file")


def test_an_unreadable_key_is_named(base: Callable[..., list[str]], pems: tuple[Path, Path]) -> None:
    _, key = pems
    key.chmod(0)
    done = run_serve(*base(), ordinary=True)
    assert done.returncode == 3
    assert one_error_line(done) == f"--key {key}: permission denied"


def test_a_pem_that_is_not_a_certificate_or_not_a_key(base: Callable[..., list[str]], pems: tuple[Path, Path]) -> None:
    cert, key = pems
    done = run_serve(*base(cert=str(key)))
    assert done.returncode == 3
    assert one_error_line(done) == f"--cert {key}: no PEM certificate in it (it holds a private key, not a certificate)"
    done = run_serve(*base(key=str(cert)))
    assert done.returncode == 3
    assert one_error_line(done) == f"--key {cert}: no PEM private key in it (it holds a certificate, not a key)"


def test_a_key_that_is_not_the_certificates(
    base: Callable[..., list[str]], pems: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, _ = pems
    other = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(other))
    done = run_serve(*base(key=str(other)))
    assert done.returncode == 3
    assert one_error_line(done) == f"--key {other}: it is not the key of the certificate in {cert}"


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(
    base: Callable[..., list[str]], pems: tuple[Path, Path], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    _, key = pems
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    done = run_serve(*base(key=str(encrypted)))
    assert done.returncode == 3
    assert one_error_line(done).startswith(f"--key {encrypted}: the key is encrypted; give it unencrypted")


def test_a_port_in_use_is_named(base: Callable[..., list[str]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(*base(port=str(port)))
    assert done.returncode == 3
    assert (
        one_error_line(done)
        == f"--port {port}: 127.0.0.1:{port} is in use by another program (--port 0 picks a free port)"
    )


def test_a_privileged_port_says_what_it_needs(base: Callable[..., list[str]]) -> None:
    unprivileged = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if unprivileged.is_file() and int(unprivileged.read_text()) <= 443:
        pytest.skip("this system lets anyone bind port 443 (net.ipv4.ip_unprivileged_port_start)")
    done = run_serve(*base(port="443"), ordinary=True)
    assert done.returncode == 3
    assert one_error_line(done) == (
        "--port 443: permission denied: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"
    )


def test_an_unusable_spool_dir_is_named(
    base: Callable[..., list[str]], tmp_path: Path, pems: tuple[Path, Path]
) -> None:
    missing = tmp_path / "no-such-folder"
    done = run_serve(*base(spool_dir=str(missing)))
    assert (done.returncode, one_error_line(done)) == (3, f"--spool-dir {missing}: no such folder")
    cert, _ = pems
    done = run_serve(*base(spool_dir=str(cert)))
    assert (done.returncode, one_error_line(done)) == (3, f"--spool-dir {cert}: not a folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = run_serve(*base(spool_dir=str(locked)), ordinary=True)
    assert (done.returncode, one_error_line(done)) == (
        3,
        f"--spool-dir {locked}: permission denied: cannot create files in it",
    )


def test_a_database_that_cannot_be_opened_is_named(base: Callable[..., list[str]], tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database\n" * 100)
    done = run_serve(*base(db=str(junk)))
    assert done.returncode == 3
    assert one_error_line(done) == f"--db: database sqlite:///{junk}: file is not a database"
    done = run_serve(*base(db="postgresql://mtasts@127.0.0.1:1/reports"))
    assert done.returncode == 3
    line = one_error_line(done)
    assert line.startswith("--db: database postgresql+psycopg://mtasts@127.0.0.1:1/reports: connection failed")


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("rate", "0", "--rate 0: must be above 0 (reports per minute per client)"),
        ("path", "tlsrpt", "--path tlsrpt: must begin with / (e.g. /tlsrpt)"),
    ],
)
def test_a_bad_value_is_a_usage_error(base: Callable[..., list[str]], option: str, value: str, said: str) -> None:
    done = run_serve(*base(**{option: value}))
    assert done.returncode == 2
    assert one_error_line(done) == said


def test_a_port_out_of_range_is_a_usage_error(base: Callable[..., list[str]]) -> None:
    done = run_serve(*base(port="70000"))
    assert done.returncode == 2
    assert "--port" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_address_not_of_this_machine_is_named(base: Callable[..., list[str]]) -> None:
    done = run_serve(*base(host="192.0.2.1"))  # TEST-NET-1: no machine has it
    assert done.returncode == 3
    assert one_error_line(done) == "--host 192.0.2.1: not an address of this machine"


def _addresses_of(name: str) -> list[str]:
    """The addresses ``name`` resolves to for a listener, in the resolver's order, each once."""
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def test_host_localhost_is_served_on_every_address_of_the_name(
    serve: Callable[..., Serving], trusting: ssl.SSLContext
) -> None:
    """``--host localhost`` listens on every address this machine's resolver gives the name
    (127.0.0.1 and, where /etc/hosts says so, ::1), not only the first: a sender that reaches
    it over each gets its report stored, and the start line names each. (A name with two
    addresses on every machine: tests/report/test_server.py, with the lookup answered.)"""
    names = _addresses_of("localhost")
    assert "127.0.0.1" in names
    server = serve("--host", "localhost")
    urls = ", ".join(f"https://[{a}]:{server.port}/" if ":" in a else f"https://{a}:{server.port}/" for a in names)
    assert server.start_line.endswith(f"listening on {urls}; Ctrl-C stops"), server.start_line
    request = (
        b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
    )
    for address in names:
        raw = socket.create_connection((address, server.port), timeout=10)
        sock = trusting.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(request)
        assert answer(sock).startswith(b"HTTP/1.1 201 "), address
