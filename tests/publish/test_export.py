"""``mtasts publish export``: the bodies are the bytes ``publish serve`` serves, and the nginx
configuration is right when Debian's nginx itself serves it.

The nginx tests run the real ``/usr/sbin/nginx`` as a private instance (its own prefix, pid,
error log and temporary paths under ``tmp_path``, ``daemon off``, a high port on 127.0.0.1 and
::1) inside an ``http {}`` made like Debian's own (``mime.types``, ``default_type
application/octet-stream``) and a little hostile (``charset utf-8``, ``gzip`` on for
``text/plain``), so the export must hold its own against the settings it will meet. Clients: the
inspector's fetcher (``fetch_policy``, DNS from the lab's nameserver, validated HTTPS), the real
``mtasts check`` process, and the standard library (``ssl`` + ``http.client``, nothing of mtasts).

Caddy is not installed on these machines (no Debian package in this release): the Caddyfile is
checked for its structure only, by a small reader of the Caddyfile syntax below.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.policy import Mode
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record, SmtpHost
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from mtasts.net.dns import DnsClient
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings
from mtasts.publish.config import ListenAddress, parse_config
from mtasts.publish.export import ExportError, ExportFormat, nginx_hash_sizes, render_export
from mtasts.publish.snapshot import build_snapshot
from tests.commands import MTASTS
from tests.publish.hosting import POLICY_PATH, Client, Domains, fetch, make_domains, raw_exchange, tls_connect

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="Debian's nginx-light is not installed")

ZONE = "export.test"
FOUR = ZONE  # its policy host has an A record only: fetched over IPv4
SIX = f"six.{ZONE}"  # AAAA only: over IPv6
MX = f"mx1.{ZONE}"


def domain_entry(name: str, mode: str, mx: list[str], max_age: int, cert: Path | None, key: Path | None) -> str:
    paths = f"cert = {json.dumps(str(cert))}\nkey = {json.dumps(str(key))}\n" if cert and key else ""
    return f'[[domain]]\nname = "{name}"\nmode = "{mode}"\nmx = {json.dumps(mx)}\nmax_age = {max_age}\n{paths}\n'


@dataclass
class World:
    """Certificates for both policy hosts, the configuration, and the exported tree."""

    material: Domains
    config: Path
    out: Path
    hosts: dict[str, Path] = field(default_factory=dict)

    def cert(self, domain: str) -> Path:
        return self.material.directory / f"mta-sts.{domain}.pem"

    def key(self, domain: str) -> Path:
        return self.material.directory / f"mta-sts.{domain}.key"


def make_world(directory: Path) -> World:
    material = make_domains(directory / "certs", 0)
    world = World(material, directory / "publish.toml", directory / "export")
    for domain in (FOUR, SIX):
        issued = material.ca.issue_cert(f"mta-sts.{domain}")
        issued.private_key_pem.write_to_path(str(world.key(domain)))
        world.cert(domain).write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    world.config.write_text(
        domain_entry(FOUR, "enforce", [MX], 604800, world.cert(FOUR), world.key(FOUR))
        + domain_entry(SIX, "testing", [f"mx.{SIX}", f"*.backup.{SIX}"], 86400, world.cert(SIX), world.key(SIX))
    )
    return world


# --- the bodies and the pure rendering ----------------------------------------------------------


def test_every_format_writes_the_bytes_publish_serve_serves(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    config = parse_config(
        world.config.read_text() + domain_entry("retired.test", "none", [], 300, None, None), world.config
    )
    served = build_snapshot(config).sites  # what `mtasts publish serve` would send
    root = PurePosixPath(tmp_path / "out")
    for export_format in ExportFormat:
        rendered = render_export(config, export_format, root=root)
        bodies = {str(f.path): f.content for f in rendered.files if f.path.name == "mta-sts.txt"}
        assert bodies == {
            f"mta-sts.{FOUR}/.well-known/mta-sts.txt": served[f"mta-sts.{FOUR}"].body,
            f"mta-sts.{SIX}/.well-known/mta-sts.txt": served[f"mta-sts.{SIX}"].body,
            # no certificate, so `serve` does not serve it; the body is built the same way
            "mta-sts.retired.test/.well-known/mta-sts.txt": b"version: STSv1\r\nmode: none\r\nmax_age: 300\r\n",
        }
        names = {str(f.path) for f in rendered.files} - set(bodies)
        assert names == {"static": set(), "nginx": {"nginx-mta-sts.conf"}, "caddy": {"Caddyfile"}}[export_format]


def test_nginx_blocks_send_one_type_on_the_policy_path_only_on_both_families(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    config = parse_config(world.config.read_text(), world.config)
    text = render_export(config, ExportFormat.NGINX, root=PurePosixPath(tmp_path)).files[-1].content.decode()
    blocks = text.split("\nserver {\n")[1:]
    assert len(blocks) == 3  # one per policy host, and the default server
    for text_block, domain in zip(blocks, (FOUR, SIX), strict=False):
        block = "\n".join(line.split("#")[0] for line in text_block.splitlines()) + "\n"  # directives only
        assert block.count("    listen 443 ssl;\n") == 1
        assert block.count("    listen [::]:443 ssl;\n") == 1
        assert f"    server_name mta-sts.{domain};\n" in block
        assert f'    ssl_certificate "{world.cert(domain)}";\n' in block
        assert f'    ssl_certificate_key "{world.key(domain)}";\n' in block
        assert block.count("location") == 2
        assert f"    location = {POLICY_PATH} {{\n" in block
        assert block.count("default_type text/plain;") == 1
        assert "add_header Content-Type" not in block
        assert "rewrite" not in block
        assert "return 30" not in block
    assert "    listen 443 ssl default_server;\n    listen [::]:443 ssl default_server;\n" in blocks[2]
    assert "ssl_reject_handshake on;" in blocks[2]


def test_a_domain_without_certificate_gets_a_marked_placeholder_or_caddys_own(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    text = world.config.read_text() + domain_entry("acme.test", "testing", ["mx.acme.test"], 86400, None, None)
    config = parse_config('[acme]\ncontact = ["mailto:hostmaster@acme.test"]\n' + text, world.config)
    nginx = render_export(config, ExportFormat.NGINX, root=PurePosixPath(tmp_path))
    assert [s.domain for s in nginx.placeholders] == ["acme.test"]
    block = nginx.files[-1].content.decode().split("server_name mta-sts.acme.test;\n")[1].split("\n}\n")[0]
    assert (
        '    ssl_certificate "/etc/letsencrypt/live/mta-sts.acme.test/fullchain.pem";  # PLACEHOLDER\n'
        '    ssl_certificate_key "/etc/letsencrypt/live/mta-sts.acme.test/privkey.pem";  # PLACEHOLDER\n'
    ) in block
    caddy = read_caddyfile(render_export(config, ExportFormat.CADDY, root=PurePosixPath(tmp_path)).files[-1].content)
    [site] = [s for s in caddy if s.words == ["https://mta-sts.acme.test"]]
    assert site.find("tls") == []  # Caddy's automatic HTTPS gets the certificate
    [own] = [s for s in caddy if s.words == [f"https://mta-sts.{FOUR}"]]
    assert [d.words for d in own.find("tls")] == [["tls", str(world.cert(FOUR)), str(world.key(FOUR))]]


def test_what_cannot_be_exported_is_refused_with_every_reason(tmp_path: Path) -> None:
    text = domain_entry("dns.test", "testing", ["mx.dns.test"], 86400, None, None).replace(
        'mx = ["mx.dns.test"]', 'mx = "from-dns"'
    ) + domain_entry("quote.test", "testing", ["mx.quote.test"], 86400, tmp_path / 'a"b.pem', tmp_path / "k.pem")
    config = parse_config(text, tmp_path / "publish.toml")
    with pytest.raises(ExportError) as caught:
        render_export(config, ExportFormat.NGINX, root=PurePosixPath(tmp_path))
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith('dns.test: mx = "from-dns" is not resolved')
    assert caught.value.problems[1].startswith(f"quote.test: cert '{tmp_path}/a\"b.pem' has characters")


# --- Caddyfile structure (Caddy is not installed) ------------------------------------------------


@dataclass
class Directive:
    words: list[str]
    block: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.words[0] == name]


def read_caddyfile(content: bytes) -> list[Directive]:
    """The Caddyfile as nested directives: one per line, ``"..."`` a single word, a trailing
    ``{`` opens a block and a lone ``}`` closes it, ``#`` starts a comment (Caddyfile syntax:
    caddyserver.com/docs/caddyfile/concepts). Unbalanced braces or stray tokens fail the test."""
    top: list[Directive] = []
    stack = [top]
    for number, line in enumerate(content.decode().splitlines(), 1):
        words: list[str] = []
        rest = line.strip()
        while rest and not rest.startswith("#"):
            if rest.startswith('"'):
                end = rest.index('"', 1)
                words.append(rest[1:end])
                rest = rest[end + 1 :].lstrip()
            else:
                word, _, rest = rest.partition(" ")
                assert '"' not in word, f"line {number}: stray quote"
                words.append(word)
                rest = rest.lstrip()
        if not words:
            continue
        if words == ["}"]:
            stack.pop()
            assert stack, f"line {number}: unbalanced }}"
            continue
        opens = words[-1] == "{"
        directive = Directive(words[:-1] if opens else words)
        assert "{" not in directive.words, f"line {number}: brace inside a line"
        assert "}" not in directive.words, f"line {number}: brace inside a line"
        stack[-1].append(directive)
        if opens:
            stack.append(directive.block)
    assert len(stack) == 1, "unclosed block"
    return top


def test_caddyfile_serves_the_policy_path_only_with_one_type_on_both_families(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    config = parse_config(world.config.read_text(), world.config)
    root = PurePosixPath(tmp_path / "export")
    sites = read_caddyfile(render_export(config, ExportFormat.CADDY, root=root).files[-1].content)
    assert [s.words for s in sites] == [[f"https://mta-sts.{FOUR}"], [f"https://mta-sts.{SIX}"]]
    for site, domain in zip(sites, (FOUR, SIX), strict=True):
        assert site.find("bind") == []  # every address of both families
        assert [d.words for d in site.find("root")] == [["root", "*", str(root / f"mta-sts.{domain}")]]
        assert [d.words for d in site.find("@policy")] == [["@policy", "path", POLICY_PATH]]
        policy, other = site.find("handle")
        assert policy.words == ["handle", "@policy"]
        assert [d.words for d in policy.block] == [
            ["header", "Content-Type", "text/plain"],  # before file_server, which keeps a set type
            ["header", "Cache-Control", "max-age=300"],
            ["file_server"],
        ]
        assert other.words == ["handle"]
        assert [d.words for d in other.block] == [["respond", "404"]]
        assert not [d for d in site.block if d.words[0] in ("redir", "rewrite", "reverse_proxy")]
    listened = render_export(
        config, ExportFormat.CADDY, root=root, listen=(ListenAddress("127.0.0.1", 8443), ListenAddress("::1", 8443))
    )
    first = read_caddyfile(listened.files[-1].content)[0]
    assert first.words == [f"https://mta-sts.{FOUR}:8443"]
    assert [d.words for d in first.find("bind")] == [["bind", "127.0.0.1", "::1"]]


# --- the command ------------------------------------------------------------------------------------


def test_command_refuses_a_full_directory_and_force_replaces_the_previous_export(
    runner: CliRunner, tmp_path: Path
) -> None:
    world = make_world(tmp_path)
    out = tmp_path / "static"
    first = runner.invoke(app, ["publish", "export", "--config", str(world.config), "--format", "static", str(out)])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0] == f"exported 2 domains (static) to {out}"
    for domain in (FOUR, SIX):
        path = out / f"mta-sts.{domain}" / ".well-known" / "mta-sts.txt"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the web server's user reads it
    again = runner.invoke(app, ["publish", "export", "--config", str(world.config), "--format", "static", str(out)])
    assert again.exit_code == 2
    assert again.stderr == f"mtasts: error: {out} is not empty: give --force to replace a previous export there\n"
    (out / "notes.txt").write_text("mine")
    world.config.write_text(domain_entry(FOUR, "enforce", [MX], 604800, world.cert(FOUR), world.key(FOUR)))
    forced = runner.invoke(
        app, ["publish", "export", "--config", str(world.config), "--format", "static", str(out), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert "removed 1 file of the previous export (no longer configured)" in forced.stdout
    assert not (out / f"mta-sts.{SIX}").exists()  # a stale policy is not left to be served
    assert (out / f"mta-sts.{FOUR}" / ".well-known" / "mta-sts.txt").is_file()
    assert (out / "notes.txt").read_text() == "mine"  # not the export's: kept


# --- Debian's nginx serving the export ------------------------------------------------------------------


def free_port() -> int:
    """A port free on both 127.0.0.1 and ::1 (nginx must bind the same number on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET) as four, socket.socket(socket.AF_INET6) as six:
            four.bind(("127.0.0.1", 0))
            port = four.getsockname()[1]
            try:
                six.bind(("::1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both families")


def nginx_main_config(prefix: Path, include: Path) -> str:
    """An nginx.conf like Debian's, with everything of the instance under ``prefix``."""
    # as root (CI containers), workers would switch to nobody, who cannot enter pytest's 0700 tmp_path
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\nworker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        "    charset utf-8;\n    gzip on;\n    gzip_types text/plain;\n    gzip_min_length 1;\n"
        f"    access_log {prefix / 'access.log'};\n{temp}\n"
        f"    include {include};\n"
        "}\n"
    )


@dataclass
class RunningNginx:
    port: int
    process: subprocess.Popen[bytes]
    prefix: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, RunningNginx]]:
    """The export of :func:`make_world`, served by a private nginx on 127.0.0.1 and ::1."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("Debian's nginx-light is not installed")
    directory = tmp_path_factory.mktemp("nginx")
    world = make_world(directory)
    prefix = directory / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    for _ in range(5):  # another process may take the port between free_port and nginx's bind
        port = free_port()
        exported = CliRunner().invoke(
            app,
            [
                "publish",
                "export",
                "--config",
                str(world.config),
                "--format",
                "nginx",
                str(world.out),
                "--force",
                "--listen",
                f"127.0.0.1:{port}",
                "--listen",
                f"[::1]:{port}",
            ],
        )
        assert exported.exit_code == 0, exported.output
        main = prefix / "nginx.conf"
        main.write_text(nginx_main_config(prefix, world.out / "nginx-mta-sts.conf"))
        command = [NGINX, "-p", str(prefix), "-c", str(main), "-g", "daemon off;"]
        checked = subprocess.run([*command, "-t"], capture_output=True, check=False)
        assert checked.returncode == 0, checked.stderr.decode()
        with (prefix / "stderr.log").open("wb") as errors:  # nginx's own messages before its error_log
            process = subprocess.Popen(command, stderr=errors)
        if wait_listening(process, port):
            break
        process.wait(5)
        error = (prefix / "stderr.log").read_text() + (prefix / "error.log").read_text()
        assert "Address already in use" in error, error
    else:
        pytest.fail("nginx could not bind a free port in 5 attempts")
    try:
        yield world, RunningNginx(port, process, prefix)
    finally:
        process.terminate()
        process.wait(10)


def wait_listening(process: subprocess.Popen[bytes], port: int, patience: float = 10.0) -> bool:
    """True once nginx accepts on both addresses; False if it exits first."""
    deadline = time.monotonic() + patience
    pending = {"127.0.0.1", "::1"}
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        for address in list(pending):
            try:
                socket.create_connection((address, port), timeout=1).close()
                pending.discard(address)
            except OSError:
                time.sleep(0.02)  # nginx is starting: poll, not a timing assumption
    return not pending


@needs_nginx
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_nginx_serves_the_export_by_the_serving_rules(served: tuple[World, RunningNginx], address: str) -> None:
    world, nginx = served
    context = world.material.client_context()
    host = f"mta-sts.{FOUR}"
    body = build_snapshot(parse_config(world.config.read_text(), world.config)).sites[host].body
    with Client(nginx.port, host, context, address=address) as client:
        status, headers, received = client.request(headers={"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers.get_all("Content-Type") == ["text/plain"]  # one, no charset (despite charset utf-8)
        assert received == body  # byte for byte, not gzipped (despite gzip_types text/plain)
        assert headers["Content-Length"] == str(len(body))
        assert headers["Cache-Control"] == "max-age=300"
        assert headers.get("Location") is None
        # the same keep-alive connection: HEAD has the length, no body
        status, headers, received = client.request(method="HEAD")
        assert (status, received, headers["Content-Length"]) == (200, b"", str(len(body)))
        assert headers.get_all("Content-Type") == ["text/plain"]
    for path in ("/", "/.well-known/", "/.well-known", f"{POLICY_PATH}/", f"{POLICY_PATH}.bak", "/index.html"):
        status, headers, _ = fetch(nginx.port, host, context, path, address=address)
        assert (path, status, headers.get("Location")) == (path, 404, None)
    # the raw head, as sent: exactly one Content-Type line
    sock = tls_connect(nginx.port, host, context, address=address)
    with sock:
        raw = raw_exchange(sock, f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-type:")] == [
        b"content-type: text/plain"
    ]
    assert rest == body


@needs_nginx
def test_nginx_gives_no_policy_for_other_names(served: tuple[World, RunningNginx]) -> None:
    world, nginx = served
    context = world.material.client_context()
    # a TLS name that no block serves, and no SNI at all: the handshake is refused
    for name in ("mta-sts.unknown.test", None):
        insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        with pytest.raises(ssl.SSLError):
            tls_connect(nginx.port, name, insecure).close()
    # a Host naming the other policy host, or no host at all, on a connection made for FOUR: 421
    for other in (f"mta-sts.{SIX}", "elsewhere.test"):
        status, _, body = fetch(nginx.port, f"mta-sts.{FOUR}", context, headers={"Host": other})
        assert status == 421
        assert b"STSv1" not in body


@needs_nginx
async def test_the_inspector_fetches_both_families_from_nginx_and_check_finds_nothing(
    served: tuple[World, RunningNginx],
) -> None:
    world, nginx = served
    hosts = iter(random_network().hosts())
    ns_address, mx_address = str(next(hosts)), str(next(hosts))
    records = [
        Record(f"{ZONE}.", "SOA", f"ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60"),
        Record(f"{ZONE}.", "NS", f"ns.{ZONE}."),
        Record(f"ns.{ZONE}.", "A", ns_address),
        Record(f"{FOUR}.", "MX", f"10 {MX}."),
        Record(f"{MX}.", "A", mx_address),
        Record(f"mta-sts.{FOUR}.", "A", "127.0.0.1"),
        Record(f"mta-sts.{SIX}.", "AAAA", "::1"),
        Record(f"_mta-sts.{FOUR}.", "TXT", '"v=STSv1; id=20261202T000000"'),
        Record(f"_smtp._tls.{FOUR}.", "TXT", f'"v=TLSRPTv1; rua=mailto:tlsrpt@{FOUR}"'),
    ]

    def mx_context(host: SmtpHost) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        world.material.ca.issue_cert(host.name).configure_cert(context)
        return context

    dns_server = DnsServer(Zone(ZONE, records), ns_address)
    smtp = SmtpServer([SmtpHost(MX, mx_address)], mx_context, Mailboxes())
    await dns_server.start()
    await smtp.start()
    try:
        settings = NetworkSettings(
            nameserver=(ns_address, dns_server.port), ca_file=world.material.ca_file, https_port=nginx.port, timeout=5
        )
        dns = DnsClient(settings)
        served_bodies = build_snapshot(parse_config(world.config.read_text(), world.config)).sites
        for domain, address in ((FOUR, "127.0.0.1"), (SIX, "::1")):
            fetched = await fetch_policy(domain, dns, settings, now=datetime.now(UTC))
            assert fetched.failure is None, fetched.detail
            assert fetched.address == address
            assert (fetched.status, fetched.content_type, fetched.problems) == (200, "text/plain", ())
            assert fetched.body == served_bodies[f"mta-sts.{domain}"].body
            assert fetched.policy is not None
            assert fetched.policy.mode is (Mode.ENFORCE if domain == FOUR else Mode.TESTING)
        check = await asyncio.create_subprocess_exec(
            *MTASTS,
            "check",
            FOUR,
            "--json",
            "--nameserver",
            f"{ns_address}:{dns_server.port}",
            "--ca-file",
            str(world.material.ca_file),
            "--https-port",
            str(nginx.port),
            "--smtp-port",
            str(smtp.port),
            "--timeout",
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(check.communicate(), 60)
    finally:
        await smtp.stop()
        await dns_server.stop()
    assert check.returncode == 0, (stdout.decode(), stderr.decode())
    [result] = json.loads(stdout)
    assert result["findings"] == []
    assert result["policy"]["mode"] == "enforce"
    assert result["policy"]["mx"] == [MX]
    assert result["verdict"]["mail_flows"] is True


@needs_nginx
def test_nginx_accepts_many_long_names_with_the_hash_sizes_the_export_sets(tmp_path: Path) -> None:
    """600 names of 60 characters do not fit nginx's default server-name hash: the export
    sets the two sizes, and ``nginx -t`` accepts the file; without them it refuses it."""
    material = make_domains(tmp_path / "certs", 0)
    issued = material.ca.issue_cert("mta-sts.any.test")
    issued.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    (tmp_path / "c.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    names = [f"{'a' * 40}{i:04d}.long.test" for i in range(600)]
    config = parse_config(
        "".join(domain_entry(n, "testing", [f"mx.{n}"], 86400, tmp_path / "c.pem", tmp_path / "k.pem") for n in names),
        tmp_path / "publish.toml",
    )
    assert nginx_hash_sizes([f"mta-sts.{n}" for n in names]) != (64, 512)
    rendered = render_export(
        config, ExportFormat.NGINX, root=PurePosixPath(tmp_path / "out"), listen=(ListenAddress("127.0.0.1", 1),)
    )
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    text = rendered.files[-1].content.decode()
    without = "\n".join(line for line in text.splitlines() if not line.startswith("server_names_hash_"))
    results = []
    for content in (text, without):
        (prefix / "blocks.conf").write_text(content)
        (prefix / "nginx.conf").write_text(nginx_main_config(prefix, prefix / "blocks.conf"))
        command = [NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
        results.append(subprocess.run(command, capture_output=True, check=False))
    assert results[0].returncode == 0, results[0].stderr.decode()
    assert results[1].returncode != 0
    assert b"server_names_hash" in results[1].stderr
