"""``mtasts publish export``: the policies and a server configuration for those who host elsewhere.

Pure: :func:`render_export` takes the parsed configuration, the format, the listeners and the
directory the files will be read from, and returns every file as (relative path, bytes); the
command writes them. Nothing here opens a file or a socket.

The bodies are the ones ``mtasts publish serve`` sends: :attr:`~mtasts.publish.config.
DomainConfig.body`, the canonical CRLF text that :func:`~mtasts.publish.snapshot.build_snapshot`
serves, checked with the same strict parser (a body a sender would reject is not exported).
Every format writes them as the same tree, ``mta-sts.<domain>/.well-known/mta-sts.txt``, the
document root of each policy host; ``nginx`` and ``caddy`` add the configuration that serves it
by the rules of docs/publish.md ("Serving rules"), avoiding what goes wrong in hand-written
vhosts:

- **one** ``Content-Type: text/plain``. nginx: an empty ``types {}`` and ``default_type
  text/plain`` in the policy location (``add_header Content-Type`` beside the type nginx already
  sends is the classic two-header bug), ``charset off`` so an ``http {}``-wide ``charset`` adds
  no parameter. Caddy: ``header Content-Type text/plain`` before ``file_server``, which keeps a
  type that is already set;
- the policy path only (exact match), ``404`` elsewhere, and no redirect on it (``try_files
  $uri =404``: a directory there would otherwise get nginx's trailing-slash ``301``);
- both address families (``listen 443 ssl`` and ``listen [::]:443 ssl``);
- for nginx, a default server that refuses the handshake of every other name
  (``ssl_reject_handshake``, nginx ≥ 1.19.4) instead of handing out the first domain's
  certificate, and ``421`` when the ``Host`` names another block than the TLS name did.

A domain without ``cert``/``key`` (with or without ``[acme]``: mtasts's own ACME client does not
run when another server hosts the policy) gets, for nginx, certbot's usual paths marked
``PLACEHOLDER``, and for Caddy no ``tls`` line, so that Caddy's automatic HTTPS obtains the
certificate.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from mtasts.core.fetch import POLICY_PATH
from mtasts.core.policy import parse_policy
from mtasts.core.problems import ParseError
from mtasts.publish.config import Config, DomainConfig, ListenAddress

__all__ = [
    "EXPORT_MANIFEST",
    "ExportError",
    "ExportFormat",
    "ExportedFile",
    "ExportedSite",
    "Rendered",
    "as_posix",
    "default_listen",
    "manifest_paths",
    "nginx_hash_sizes",
    "policy_file",
    "render_caddy",
    "render_export",
    "render_nginx",
]

EXPORT_MANIFEST = ".mtasts-export"  # lists the files of an export, so --force knows what it may replace
NGINX_FILE = "nginx-mta-sts.conf"
CADDY_FILE = "Caddyfile"
_PLACEHOLDER_DIR = PurePosixPath("/etc/letsencrypt/live")  # where certbot keeps a name's current files
# what a path may contain in a server configuration: no quotes, escapes, variables ($), Caddy
# placeholders ({...}), comments or statement ends, no control characters
_SAFE_PATH_RE = re.compile(r"[^\x00-\x1f\x7f\"'\\$`{};#]+")
# nginx's server-name hash: an element takes a pointer plus the name and 2 bytes rounded up to a
# pointer; a bucket holds at least one element and a pointer (ngx_hash.c); 64 is the default
_NGINX_POINTER = 8
_NGINX_DEFAULT_BUCKET = 64
_NGINX_DEFAULT_MAX_SIZE = 512


class ExportFormat(StrEnum):
    """What ``--format`` writes besides the policy files."""

    STATIC = "static"  # the tree only
    NGINX = "nginx"  # + nginx-mta-sts.conf (server blocks, for an http {} include)
    CADDY = "caddy"  # + Caddyfile


class ExportError(ValueError):
    """The configuration cannot be exported as asked; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file to write: ``path`` relative to the export directory, its exact bytes."""

    path: PurePosixPath
    content: bytes


@dataclass(frozen=True, slots=True)
class ExportedSite:
    """One policy host as exported: its body and where its certificate is (``placeholder``:
    none is configured, so the paths are suggestions the user must fill)."""

    domain: str
    host: str
    body: bytes
    cert: PurePosixPath | None
    key: PurePosixPath | None

    @property
    def placeholder(self) -> bool:
        return self.cert is None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class Rendered:
    """An export: every file, the sites, and the name of the server configuration (if any)."""

    format: ExportFormat
    files: tuple[ExportedFile, ...]
    sites: tuple[ExportedSite, ...]
    server_config: PurePosixPath | None

    @property
    def placeholders(self) -> tuple[ExportedSite, ...]:
        return tuple(s for s in self.sites if s.placeholder)

    def manifest(self) -> bytes:
        """The manifest file: the format, then each file written, one per line."""
        lines = [f"# mtasts publish export --format {self.format.value}", *(str(f.path) for f in self.files)]
        return ("\n".join(lines) + "\n").encode()


def default_listen(port: int = 443) -> tuple[ListenAddress, ...]:
    """Every address of both families, on the port senders connect to (RFC 8461 §3.3: 443)."""
    return (ListenAddress("0.0.0.0", port), ListenAddress("::", port))  # noqa: S104 (a public host)


def policy_file(host: str) -> PurePosixPath:
    """Where a policy host's body sits in the export: its document root is ``mta-sts.<domain>``."""
    return PurePosixPath(host) / POLICY_PATH.lstrip("/")


def render_export(
    config: Config,
    export_format: ExportFormat,
    *,
    root: PurePosixPath,
    listen: tuple[ListenAddress, ...] | None = None,
) -> Rendered:
    """Every file of the export of ``config``; ``root`` is the absolute directory the server will
    read the tree from, ``listen`` the HTTPS listeners (default: :func:`default_listen`). Raises
    :class:`ExportError` listing every domain that cannot be exported."""
    if not root.is_absolute():
        raise ExportError([f"{root}: the export directory must be an absolute path (the server reads it)"])
    listeners = listen or default_listen()
    problems: list[str] = []
    if not config.domains:
        problems.append(f"{config.path}: no [[domain]] is configured: there is nothing to export")
    if _unsafe(str(root)):
        problems.append(f"{root}: the export directory's path has characters a server configuration cannot hold")
    sites = [site for domain in config.domains if (site := _site(domain, problems)) is not None]
    if problems:
        raise ExportError(problems)
    files = [ExportedFile(policy_file(site.host), site.body) for site in sites]
    server_config: PurePosixPath | None = None
    if export_format is ExportFormat.NGINX:
        server_config = PurePosixPath(NGINX_FILE)
        files.append(ExportedFile(server_config, render_nginx(sites, root, listeners, config.server.cache_max_age)))
    elif export_format is ExportFormat.CADDY:
        server_config = PurePosixPath(CADDY_FILE)
        files.append(ExportedFile(server_config, render_caddy(sites, root, listeners, config.server.cache_max_age)))
    return Rendered(export_format, tuple(files), tuple(sites), server_config)


def _site(domain: DomainConfig, problems: list[str]) -> ExportedSite | None:
    """The exported site of ``domain``, or ``None`` with the reason added to ``problems``."""
    body = domain.body
    if body is None:
        problems.append(
            f'{domain.name}: mx = "from-dns" is not resolved; list the MX host names in mx '
            "(an export, like the policy host, never looks up MX records)"
        )
        return None
    try:  # what build_snapshot checks before serving: the strict parser reads back the policy
        if parse_policy(body) != domain.policy:
            problems.append(f"{domain.name}: the body does not read back as the configured policy (a bug)")
            return None
    except ParseError as exc:
        problems.append(f"{domain.name}: the policy body is rejected: {exc}")
        return None
    cert = key = None
    if domain.cert is not None and domain.key is not None:
        cert, key = PurePosixPath(domain.cert), PurePosixPath(domain.key)
        for what, path in (("cert", cert), ("key", key)):
            if _unsafe(str(path)):
                problems.append(
                    f"{domain.name}: {what} {str(path)!r} has characters a server configuration cannot hold "
                    "(quotes, backslash, $, braces, ;, #, control characters): rename the file"
                )
    return ExportedSite(domain.name, domain.host, body, cert, key)


def _unsafe(text: str) -> bool:
    return _SAFE_PATH_RE.fullmatch(text) is None


# --- nginx ------------------------------------------------------------------------------------


def nginx_hash_sizes(hosts: list[str]) -> tuple[int, int]:
    """(``server_names_hash_bucket_size``, ``server_names_hash_max_size``) nginx needs for these
    names: the bucket must hold the longest name (ngx_hash.c), and the table must be large enough
    that nginx finds a size where no bucket overflows (twice the names leaves it room)."""
    longest = max((len(h) for h in hosts), default=0)
    element = _NGINX_POINTER + -(-(longest + 2) // _NGINX_POINTER) * _NGINX_POINTER
    bucket = _NGINX_DEFAULT_BUCKET
    while bucket < element + _NGINX_POINTER:
        bucket *= 2
    per_bucket = bucket // element  # +1 below: the default server's empty name is hashed too
    max_size = _NGINX_DEFAULT_MAX_SIZE
    while max_size * per_bucket < 2 * (len(hosts) + 1):
        max_size *= 2
    return bucket, max_size


def _nginx_listen(address: ListenAddress, default_server: bool) -> str:
    where = str(address.port) if address.host == "0.0.0.0" else address.to_text()  # noqa: S104
    return f"    listen {where} ssl{' default_server' if default_server else ''};"


def _nginx_regex(host: str) -> str:
    """The exact name as a PCRE (an A-label name: only its dots are special)."""
    return "^" + host.replace(".", r"\.") + "$"


def render_nginx(
    sites: list[ExportedSite], root: PurePosixPath, listen: tuple[ListenAddress, ...], cache_max_age: int
) -> bytes:
    """Server blocks for an ``http {}`` include (Debian: ``/etc/nginx/conf.d/``), one per policy
    host, and a default server that refuses every other name."""
    bucket, max_size = nginx_hash_sizes([s.host for s in sites])
    out = [
        "# MTA-STS policy hosts, written by `mtasts publish export --format nginx`: do not edit,",
        "# export again. Include this file inside http { } (Debian: copy it to /etc/nginx/conf.d/),",
        "# then: nginx -t && nginx -s reload. Bodies are in the tree next to this file.",
        "",
    ]
    if (bucket, max_size) != (_NGINX_DEFAULT_BUCKET, _NGINX_DEFAULT_MAX_SIZE):
        out += [
            "# nginx's defaults cannot hold these server names (remove these two lines if your",
            "# http { } already sets the directives: nginx refuses a duplicate)",
            f"server_names_hash_bucket_size {bucket};",
            f"server_names_hash_max_size {max_size};",
            "",
        ]
    for site in sites:
        out.append(f"# {site.host}: the policy of {site.domain} (sha256 {site.sha256})")
        out.append("server {")
        out += [_nginx_listen(address, False) for address in listen]
        out.append(f"    server_name {site.host};")
        if site.placeholder:
            out += [
                f"    # PLACEHOLDER: no cert and key are configured for {site.domain}: put a certificate",
                f"    # for {site.host} at these paths (certbot keeps it there) or set cert and key, export again",
                f'    ssl_certificate "{_PLACEHOLDER_DIR / site.host / "fullchain.pem"}";  # PLACEHOLDER',
                f'    ssl_certificate_key "{_PLACEHOLDER_DIR / site.host / "privkey.pem"}";  # PLACEHOLDER',
            ]
        else:
            out += [f'    ssl_certificate "{site.cert}";', f'    ssl_certificate_key "{site.key}";']
        out += [
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            f'    root "{root / site.host}";',
            "    # the Host header chose this block: a TLS connection made for another name gets 421",
            f'    if ($ssl_server_name !~* "{_nginx_regex(site.host)}") {{',
            "        return 421;",
            "    }",
            f"    location = {POLICY_PATH} {{",
            "        # exactly one Content-Type: text/plain (no add_header Content-Type: that sends two)",
            "        types { }",
            "        default_type text/plain;",
            "        charset off;",
            "        gzip off;",
            f'        add_header Cache-Control "max-age={cache_max_age}";',
            "        # the file or 404: never a redirect",
            "        try_files $uri =404;",
            "    }",
            "    location / {",
            "        return 404;",
            "    }",
            "}",
            "",
        ]
    out += [
        "# Every other name, and a handshake without SNI, is refused (no certificate is handed out);",
        "# a request whose Host names no block above gets 421. Remove this block if another server",
        "# on these ports is already the default_server (nginx refuses two).",
        "server {",
        *(_nginx_listen(address, True) for address in listen),
        "    # the protocols of a port are the default server's: nginx 1.22's default has no TLSv1.3",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_reject_handshake on;",
        "    return 421;",
        "}",
        "",
    ]
    return "\n".join(out).encode()


# --- Caddy ------------------------------------------------------------------------------------


def render_caddy(
    sites: list[ExportedSite], root: PurePosixPath, listen: tuple[ListenAddress, ...], cache_max_age: int
) -> bytes:
    """A Caddyfile with one site block per policy host (tabs, as ``caddy fmt`` writes them)."""
    ports = list(dict.fromkeys(a.port for a in listen))
    hosts = list(dict.fromkeys(a.host for a in listen))
    wildcard = any(h in ("0.0.0.0", "::") for h in hosts)  # noqa: S104
    out = [
        "# MTA-STS policy hosts, written by `mtasts publish export --format caddy`: do not edit,",
        "# export again. Bodies are in the tree next to this file. Check: caddy validate --config Caddyfile",
        "",
    ]
    for site in sites:
        addresses = " ".join(f"https://{site.host}" + ("" if port == 443 else f":{port}") for port in ports)
        out.append(f"# {site.host}: the policy of {site.domain} (sha256 {site.sha256})")
        out.append(f"{addresses} {{")
        if not wildcard:
            out.append("\tbind " + " ".join(hosts))
        if site.placeholder:
            out.append(f"\t# no cert and key are configured for {site.domain}: Caddy's automatic HTTPS gets the")
            out.append(f"\t# certificate of {site.host} (the CA must reach this host on port 80 or 443)")
        else:
            out.append(f'\ttls "{site.cert}" "{site.key}"')
        out += [
            f'\troot * "{root / site.host}"',
            f"\t@policy path {POLICY_PATH}",
            "\thandle @policy {",
            "\t\t# set before file_server, which then keeps it: exactly one Content-Type",
            "\t\theader Content-Type text/plain",
            f'\t\theader Cache-Control "max-age={cache_max_age}"',
            "\t\tfile_server",
            "\t}",
            "\thandle {",
            "\t\trespond 404",
            "\t}",
            "}",
            "",
        ]
    return "\n".join(out).encode()


def manifest_paths(text: str) -> list[PurePosixPath]:
    """The files a previous export wrote, read from its manifest (comments and blanks skipped;
    anything absolute or climbing out of the directory is ignored, so a doctored manifest
    cannot make ``--force`` delete outside the export)."""
    paths = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        path = PurePosixPath(line)
        if path.is_absolute() or ".." in path.parts:
            continue
        paths.append(path)
    return paths


def as_posix(path: Path) -> PurePosixPath:
    """A local path as the POSIX path a server configuration names (nginx and Caddy use ``/``)."""
    return PurePosixPath(path.as_posix())
