"""The configuration of ``mtasts publish``: one TOML file, parsed once into frozen settings.

Pure: :func:`parse_config` takes the file's text and its path (for messages and for resolving
relative ``cert``/``key`` paths) and touches nothing else; reading the file and the
certificates is :mod:`mtasts.publish.snapshot`'s job. Every problem is data
(:class:`ConfigProblem`: file, line when known, key path, what is wrong, how to fix it), and
:class:`ConfigError` carries all of them at once, so a user fixes a file in one pass.

The file::

    [server]                        # every key optional (defaults in ServerSettings)
    listen = ["0.0.0.0:443", "[::]:443"]
    admin = "127.0.0.1:8461"

    [acme]                          # certificates for domains without cert/key (RFC 8555)
    contact = ["mailto:hostmaster@example.com"]

    [dns]                           # optional: set _mta-sts by RFC 2136 update with TSIG (apply)
    server = "192.0.2.53:53"
    zone = "example.com"
    key_name = "mtasts."
    secret_file = "/etc/mtasts/tsig.secret"

    [report]                        # optional: the RFC 8460 endpoint on every served name
    path = "/v1/report"
    store = "/var/lib/mtasts/mtasts.sqlite3"

    [[domain]]
    name = "example.com"
    mode = "testing"
    mx = ["mx1.example.com", "*.backup.example.com"]   # or "from-dns" (resolved by a later `plan`)
    max_age = 86400
    rua = ["mailto:tlsrpt@example.com"]
    cert = "/etc/letsencrypt/live/mta-sts.example.com/fullchain.pem"
    key = "/etc/letsencrypt/live/mta-sts.example.com/privkey.pem"

Names are normalised once (case, trailing dot, U-labels to A-labels), so ``Example.COM.`` and
``example.com`` are one domain and naming it twice is an error that points at both entries.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from platformdirs import user_config_path, user_data_path

from mtasts.core.fetch import POLICY_PATH
from mtasts.core.hostname import check_host_name, check_mx_pattern, to_alabel
from mtasts.core.policy import MAX_AGE_LIMIT, STS_POLICY_VERSION, Mode, Policy, parse_policy
from mtasts.core.problems import ParseError
from mtasts.core.tlsrpt_record import TlsRptRecord
from mtasts.net.listen import ListenAddress, parse_address

__all__ = [
    "CONFIG_FILE_NAME",
    "FROM_DNS",
    "AcmeSettings",
    "Challenge",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DnsSettings",
    "DomainConfig",
    "HostLimits",
    "ListenAddress",
    "ProblemKind",
    "ReportAccept",
    "ReportSettings",
    "ServerSettings",
    "default_config_path",
    "parse_address",
    "parse_config",
]

CONFIG_FILE_NAME = "publish.toml"
FROM_DNS = "from-dns"  # mx = "from-dns": derive the list from live MX when planning, never when serving
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/mtasts/publish.toml`` on Linux (the platform's user config dir)."""
    return user_config_path("mtasts") / CONFIG_FILE_NAME


class ProblemKind(StrEnum):
    """Whether the file says something wrong (``usage``, exit 2) or a file it names cannot be
    read (``unreadable``, exit 3): the fix is in the file, or on the machine."""

    USAGE = "usage"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration: where (``file``, ``line`` when known, the dotted
    ``key`` such as ``domain[2].max_age``), what (``message``) and what to do (``fix``)."""

    file: str
    key: str
    message: str
    fix: str
    line: int | None = None
    kind: ProblemKind = ProblemKind.USAGE

    def to_text(self) -> str:
        """One line: ``FILE:LINE: KEY: MESSAGE; FIX``."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}; {self.fix}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "message": self.message,
            "fix": self.fix,
            "kind": self.kind.value,
        }


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason (at least one)."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        if not problems:
            raise TypeError("ConfigError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(p.to_text() for p in self.problems))

    @property
    def unreadable(self) -> bool:
        """True when a file the configuration names (or the configuration itself) cannot be read."""
        return any(p.kind is ProblemKind.UNREADABLE for p in self.problems)


@dataclass(frozen=True, slots=True)
class HostLimits:
    """What one client may make the policy host do; the defaults are documented in docs/publish.md.

    Senders fetch a policy rarely (once per ``max_age``, or when the id changes), so the bounds
    are far above any honest use and far below what lets one client tie the host up.
    """

    max_connections: int = 10_000
    max_connections_per_client: int = 64
    max_header_bytes: int = 8 * 1024
    requests_per_second: float = 20.0
    burst: int = 100
    max_requests_per_connection: int = 1000
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 30.0


_LIMIT_KEYS: dict[str, tuple[type, float]] = {  # key -> (type, smallest value)
    "max_connections": (int, 1),
    "max_connections_per_client": (int, 1),
    "max_header_bytes": (int, 256),
    "requests_per_second": (float, 0.001),
    "burst": (int, 1),
    "max_requests_per_connection": (int, 1),
    "handshake_timeout": (float, 0.01),
    "header_timeout": (float, 0.01),
    "idle_timeout": (float, 0.01),
}


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """``[server]``: where to listen, the admin listener, the ``Cache-Control`` hint, limits."""

    # a public policy host: every address of both families, on the port senders use (RFC 8461 §3.3)
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 443), ListenAddress("::", 443))  # noqa: S104
    admin: ListenAddress | None = ListenAddress("127.0.0.1", 8461)  # noqa: RUF009 (frozen, so a shared default is safe)
    cache_max_age: int = 300
    access_log: bool = True
    certificate_cache: int = 1000
    limits: HostLimits = HostLimits()


class Challenge(StrEnum):
    """How the ACME server checks that we control a name (RFC 8555 §8.3, RFC 8737)."""

    HTTP_01 = "http-01"
    TLS_ALPN_01 = "tls-alpn-01"


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """``[acme]``: the CA (``directory``, and ``ca_file`` to trust for its HTTPS when it is a
    private or test CA), the account ``contact``, the challenge, where certificates are kept
    (``storage``) and the HTTP-01 listeners (``listen``: port 80, which the CA connects to)."""

    directory: str = LETS_ENCRYPT
    contact: tuple[str, ...] = ()
    challenge: Challenge = Challenge.HTTP_01
    storage: Path = field(default_factory=lambda: user_data_path("mtasts") / "acme")
    # the CA connects to port 80 of every address of mta-sts.<domain> (RFC 8555 §8.3)
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 80), ListenAddress("::", 80))  # noqa: S104
    ca_file: Path | None = None


TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """``[dns]``: where ``publish apply`` sends RFC 2136 updates of the ``_mta-sts`` TXT record
    (the primary authoritative ``server``, port 53 unless given), the ``zone`` they update, and
    the TSIG key (RFC 8945) that signs them: its name, algorithm and a file holding the base64
    secret (as ``tsig-keygen``/``keymgr`` print it), so the secret itself is never in the
    configuration. ``ttl`` is the record's TTL; ``timeout`` seconds per update or query."""

    server: ListenAddress
    zone: str
    key_name: str
    secret_file: Path
    algorithm: str = "hmac-sha256"
    ttl: int = 3600
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class DomainConfig:
    """One ``[[domain]]``: ``name`` in A-labels; ``mx`` ``None`` when it is ``"from-dns"`` (not
    resolved yet); ``policy`` the policy it serves (``None`` until ``mx`` is known)."""

    name: str
    mode: Mode
    max_age: int
    mx: tuple[str, ...] | None
    rua: tuple[str, ...] = ()
    cert: Path | None = None
    key: Path | None = None
    line: int | None = None
    policy: Policy | None = None
    # the body exactly as :func:`parse_config` read it back through the strict parser, so that
    # the snapshot need not parse it again; ``None`` for an entry built any other way (the
    # roll-out's, ``dataclasses.replace``), whose body the snapshot does parse
    checked_body: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def host(self) -> str:
        """The policy host name (RFC 8461 §3.3)."""
        return f"mta-sts.{self.name}"

    @property
    def body(self) -> bytes | None:
        """The canonical policy file (UTF-8, CRLF), the bytes the host serves."""
        if self.checked_body is not None:
            return self.checked_body
        return None if self.policy is None else self.policy.to_text().encode("utf-8")


class ReportAccept(StrEnum):
    """Whose TLS reports the endpoint of ``[report]`` stores."""

    CONFIGURED = "configured"  # the configured domains only (the rest get 403)
    ANY = "any"


DEFAULT_REPORT_PATH = "/v1/report"


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """``[report]``: the RFC 8460 §5.4 HTTPS endpoint served by the policy host on every served
    ``mta-sts.<domain>`` name (the host has each name's certificate already), at ``path``,
    into the database ``store`` (``None``: ``$MTASTS_DB``, else the default database); the
    limits are :class:`mtasts.report.server.EndpointSettings`'s."""

    path: str = DEFAULT_REPORT_PATH
    store: str | None = None
    accept: ReportAccept = ReportAccept.CONFIGURED
    max_body: int = 4 * 1024 * 1024
    rate_per_minute: float = 60.0
    burst: int = 20
    body_timeout: float = 10.0
    min_body_rate: float = 1024.0
    parse_workers: int = 1


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration file."""

    path: Path
    domains: tuple[DomainConfig, ...]
    server: ServerSettings = ServerSettings()
    acme: AcmeSettings | None = None
    dns: DnsSettings | None = None
    report: ReportSettings | None = None

    def domain(self, name: str) -> DomainConfig | None:
        """The entry of ``name`` (any spelling), or ``None``."""
        wanted = to_alabel(name.strip())
        return next((d for d in self.domains if d.name == wanted), None)


# --- parsing ----------------------------------------------------------------------------------

_TOML_POSITION_RE = re.compile(r"\(at line (\d+), column \d+\)")
_TOP_KEYS = ("server", "acme", "dns", "report", "domain")
_DOMAIN_KEYS = ("name", "mode", "mx", "max_age", "rua", "cert", "key")
_SERVER_KEYS = ("listen", "admin", "cache_max_age", "access_log", "certificate_cache", *_LIMIT_KEYS)
_ACME_KEYS = ("directory", "contact", "challenge", "storage", "listen", "ca_file")
_DNS_KEYS = ("server", "zone", "key_name", "algorithm", "secret_file", "ttl", "timeout")
_REPORT_KEYS = (
    "path",
    "store",
    "accept",
    "max_body",
    "rate_per_minute",
    "burst",
    "body_timeout",
    "min_body_rate",
    "parse_workers",
)


class _Lines:
    """Where keys sit in the file: tomllib gives values without positions, so the line of a
    key is found by scanning the text for table headers and ``key =`` lines (good enough for
    the files people write; ``None`` when a key cannot be placed).

    The header lines are found at once (every ``[[domain]]`` records its line); the lines of
    keys only when a problem first asks for one, since a valid file never does and scanning
    every line of 10,000 entries is a measurable part of the host's start."""

    _HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
    # a header line's first character that ``\s`` does not match is "[" (no CR, VT, FF here)
    _HEADER_CANDIDATE_RE = re.compile(r"^[ \t\x1f]*\[", re.MULTILINE)

    def __init__(self, text: str) -> None:
        self._text = text
        # (table, index of an array-of-tables entry or 0) -> the header's line
        self.headers: dict[tuple[str, int], int] = {}
        self._keys: dict[tuple[str, int], dict[str, int]] | None = None
        counts: dict[str, int] = {}
        for number, line in self._header_lines(text):
            header = self._HEADER_RE.match(line)
            if header:
                name = header.group(2)
                index = counts.get(name, -1) + 1 if header.group(1) == "[[" else 0
                counts[name] = index
                self.headers.setdefault((name, index), number)

    @staticmethod
    def _header_lines(text: str) -> list[tuple[int, str]]:
        """``(line number, line)`` of every line that may be a table header, in order; line
        numbers are those of ``str.splitlines`` (which also breaks at CR, VT, FF and others)."""
        if not text.isascii() or any(c in text for c in "\r\v\f\x1c\x1d\x1e"):
            # line breaks other than LF: number the lines the slow, exact way
            return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith("[")]
        found: list[tuple[int, str]] = []
        number, counted = 1, 0
        for match in _Lines._HEADER_CANDIDATE_RE.finditer(text):
            start = match.start()
            number += text.count("\n", counted, start)
            counted = start
            end = text.find("\n", start)
            found.append((number, text[start : len(text) if end < 0 else end]))
        return found

    @property
    def keys(self) -> dict[tuple[str, int], dict[str, int]]:
        """(table, index) -> {key: line}, scanned on first use."""
        if self._keys is None:
            keys: dict[tuple[str, int], dict[str, int]] = {}
            counts: dict[str, int] = {}
            current = ("", 0)
            keys[current] = {}
            for number, line in enumerate(self._text.splitlines(), 1):
                header = self._HEADER_RE.match(line)
                if header:
                    name = header.group(2)
                    index = counts.get(name, -1) + 1 if header.group(1) == "[[" else 0
                    counts[name] = index
                    current = (name, index)
                    keys.setdefault(current, {})
                    continue
                key = self._KEY_RE.match(line)
                if key:
                    keys[current].setdefault(key.group(1), number)
            self._keys = keys
        return self._keys

    def of(self, table: str, index: int = 0, key: str | None = None) -> int | None:
        if key is not None and (found := self.keys.get((table, index), {}).get(key)) is not None:
            return found
        return self.headers.get((table, index))


@dataclass(slots=True)
class _Reader:
    """Collects problems while the sections are read."""

    file: str
    lines: _Lines
    problems: list[ConfigProblem] = field(default_factory=list)

    def problem(
        self,
        key: str,
        message: str,
        fix: str,
        line: int | None,
        kind: ProblemKind = ProblemKind.USAGE,
    ) -> None:
        self.problems.append(ConfigProblem(self.file, key, message, fix, line, kind))


def parse_config(text: str, path: Path | str) -> Config:
    """Parse a configuration file's ``text`` (read from ``path``); raises :class:`ConfigError`
    listing every problem. Relative ``cert``/``key``/``storage`` paths are relative to the
    file's directory, as in most servers' configuration."""
    path = Path(path)
    file = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION_RE.search(str(exc))
        message = _TOML_POSITION_RE.sub("", str(exc)).strip()
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    "",
                    f"not valid TOML: {message}",
                    "fix the syntax (see https://toml.io)",
                    int(position.group(1)) if position else None,
                )
            ]
        ) from None
    reader = _Reader(file, _Lines(text))
    base = path.parent
    for key in data:
        if key not in _TOP_KEYS:
            reader.problem(key, "unknown section or key", f"use {', '.join(_TOP_KEYS)}", reader.lines.of("", 0, key))
    server = _server(reader, data.get("server", {}))
    acme = _acme(reader, data["acme"], base) if "acme" in data else None
    dns = _dns(reader, data["dns"], base) if "dns" in data else None
    report = _report(reader, data["report"], base) if "report" in data else None
    domains = _domains(reader, data.get("domain", []), base)
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(path=path, domains=domains, server=server, acme=acme, dns=dns, report=report)


def _unknown_keys(reader: _Reader, table: Mapping[str, Any], known: Sequence[str], prefix: str, index: int) -> None:
    section = prefix.split("[", 1)[0]
    for key in table:
        if key not in known:
            reader.problem(
                f"{prefix}.{key}",
                "unknown key",
                f"the keys of [{section}] are {', '.join(known)}",
                reader.lines.of(section, index, key),
            )


def _server(reader: _Reader, table: object) -> ServerSettings:
    lines = reader.lines
    if not isinstance(table, dict):
        reader.problem("server", "must be a table", "write [server] and its keys below it", lines.of("", 0, "server"))
        return ServerSettings()
    _unknown_keys(reader, table, _SERVER_KEYS, "server", 0)
    defaults = ServerSettings()
    listen = defaults.listen
    if "listen" in table:
        value = table["listen"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            reader.problem(
                "server.listen",
                "must be a list of HOST:PORT strings",
                'e.g. listen = ["0.0.0.0:443", "[::]:443"]',
                lines.of("server", 0, "listen"),
            )
        else:
            addresses = []
            for item in value:
                try:
                    addresses.append(parse_address(item))
                except ValueError as exc:
                    reader.problem(
                        "server.listen", str(exc), 'e.g. "0.0.0.0:443" or "[::]:443"', lines.of("server", 0, "listen")
                    )
            if len(set(addresses)) != len(addresses):
                reader.problem(
                    "server.listen", "an address is listed twice", "list each once", lines.of("server", 0, "listen")
                )
            listen = tuple(dict.fromkeys(addresses))
    admin = defaults.admin
    if "admin" in table:
        value = table["admin"]
        if value in ("", "off", False):
            admin = None
        elif not isinstance(value, str):
            reader.problem(
                "server.admin",
                "must be a HOST:PORT string",
                'e.g. admin = "127.0.0.1:8461" (or "off")',
                lines.of("server", 0, "admin"),
            )
        else:
            try:
                admin = parse_address(value)
            except ValueError as exc:
                reader.problem("server.admin", str(exc), 'e.g. "127.0.0.1:8461"', lines.of("server", 0, "admin"))
    cache_max_age = _integer(reader, table, "cache_max_age", "server", 0, defaults.cache_max_age, 0, 86400)
    certificate_cache = _integer(
        reader, table, "certificate_cache", "server", 0, defaults.certificate_cache, 1, 1_000_000
    )
    access_log = defaults.access_log
    if "access_log" in table:
        if isinstance(table["access_log"], bool):
            access_log = table["access_log"]
        else:
            reader.problem(
                "server.access_log",
                "must be true or false",
                "write access_log = true",
                lines.of("server", 0, "access_log"),
            )
    limits: dict[str, Any] = {}
    for key, (kind, least) in _LIMIT_KEYS.items():
        if key not in table:
            continue
        value = table[key]
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if (kind is int and not (isinstance(value, int) and not isinstance(value, bool))) or not number_ok:
            word = "a whole number" if kind is int else "a number"
            reader.problem(
                f"server.{key}",
                f"must be {word}",
                f"e.g. {key} = {getattr(HostLimits(), key)}",
                lines.of("server", 0, key),
            )
        elif value < least:
            reader.problem(f"server.{key}", f"must be at least {least:g}", "raise it", lines.of("server", 0, key))
        else:
            limits[key] = kind(value)
    return ServerSettings(
        listen=listen,
        admin=admin,
        cache_max_age=cache_max_age,
        access_log=access_log,
        certificate_cache=certificate_cache,
        limits=HostLimits(**limits),
    )


def _integer(
    reader: _Reader, table: Mapping[str, Any], key: str, section: str, index: int, default: int, least: int, most: int
) -> int:
    if key not in table:
        return default
    value = table[key]
    prefix = section if section != "domain" else f"domain[{index + 1}]"
    if not isinstance(value, int) or isinstance(value, bool):
        reader.problem(
            f"{prefix}.{key}",
            "must be a whole number",
            f"e.g. {key} = {default}",
            reader.lines.of(section, index, key),
        )
        return default
    if not least <= value <= most:
        reader.problem(
            f"{prefix}.{key}",
            f"{value} is out of range",
            f"give {least} to {most}",
            reader.lines.of(section, index, key),
        )
        return default
    return value


def _acme(reader: _Reader, table: object, base: Path) -> AcmeSettings | None:
    lines = reader.lines
    if not isinstance(table, dict):
        reader.problem("acme", "must be a table", "write [acme] and its keys below it", lines.of("", 0, "acme"))
        return None
    _unknown_keys(reader, table, _ACME_KEYS, "acme", 0)
    defaults = AcmeSettings()
    directory = table.get("directory", defaults.directory)
    if not isinstance(directory, str) or urlsplit(directory).scheme != "https" or not urlsplit(directory).hostname:
        reader.problem(
            "acme.directory",
            f"{directory!r} is not an https:// URL",
            f'give the ACME directory URL, e.g. "{LETS_ENCRYPT}"',
            lines.of("acme", 0, "directory"),
        )
        directory = defaults.directory
    contact_value = table.get("contact", [])
    if isinstance(contact_value, str):
        contact_value = [contact_value]
    contact: list[str] = []
    if not isinstance(contact_value, list) or not all(isinstance(c, str) for c in contact_value):
        reader.problem(
            "acme.contact",
            "must be a list of mailto: URIs",
            'e.g. contact = ["mailto:hostmaster@example.com"]',
            lines.of("acme", 0, "contact"),
        )
    else:
        for item in contact_value:
            if not re.fullmatch(r"mailto:[^@\s]+@[^@\s]+\.[^@\s]+", item):
                reader.problem(
                    "acme.contact",
                    f"{item!r} is not a mailto: URI",
                    "write mailto:user@example.com (RFC 8555 §7.3)",
                    lines.of("acme", 0, "contact"),
                )
            else:
                contact.append(item)
    challenge_value = table.get("challenge", defaults.challenge.value)
    try:
        challenge = Challenge(challenge_value)
    except ValueError:
        reader.problem(
            "acme.challenge",
            f"{challenge_value!r} is not a supported challenge",
            f"use {' or '.join(repr(c.value) for c in Challenge)}",
            lines.of("acme", 0, "challenge"),
        )
        challenge = defaults.challenge
    storage = defaults.storage
    if "storage" in table:
        if isinstance(table["storage"], str) and table["storage"]:
            storage = base / Path(table["storage"]).expanduser()
        else:
            reader.problem(
                "acme.storage",
                "must be a directory path",
                'e.g. storage = "/var/lib/mtasts/acme"',
                lines.of("acme", 0, "storage"),
            )
    listen = defaults.listen
    if "listen" in table:
        value = table["listen"]
        if isinstance(value, str):
            value = [value]
        addresses: list[ListenAddress] = []
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            reader.problem(
                "acme.listen",
                "must be a list of HOST:PORT strings",
                'e.g. listen = ["0.0.0.0:80", "[::]:80"] (the CA connects to port 80)',
                lines.of("acme", 0, "listen"),
            )
        else:
            for item in value:
                try:
                    addresses.append(parse_address(item))
                except ValueError as exc:
                    reader.problem(
                        "acme.listen", str(exc), 'e.g. "0.0.0.0:80" or "[::]:80"', lines.of("acme", 0, "listen")
                    )
            listen = tuple(dict.fromkeys(addresses))
    ca_file: Path | None = None
    if "ca_file" in table:
        if isinstance(table["ca_file"], str) and table["ca_file"]:
            ca_file = base / Path(table["ca_file"]).expanduser()
        else:
            reader.problem(
                "acme.ca_file",
                "must be a file path",
                'e.g. ca_file = "/etc/mtasts/test-ca.pem" (only for a private or test CA)',
                lines.of("acme", 0, "ca_file"),
            )
    return AcmeSettings(
        directory=directory,
        contact=tuple(contact),
        challenge=challenge,
        storage=storage,
        listen=listen,
        ca_file=ca_file,
    )


def _dns(reader: _Reader, table: object, base: Path) -> DnsSettings | None:
    """``[dns]``: every key checked, all problems reported; ``None`` when any is wrong."""
    lines = reader.lines
    if not isinstance(table, dict):
        reader.problem("dns", "must be a table", "write [dns] and its keys below it", lines.of("", 0, "dns"))
        return None
    _unknown_keys(reader, table, _DNS_KEYS, "dns", 0)
    before = len(reader.problems)

    def bad(key: str, message: str, fix: str) -> None:
        reader.problem(f"dns.{key}", message, fix, lines.of("dns", 0, key))

    server: ListenAddress | None = None
    value = table.get("server")
    if not isinstance(value, str) or not value.strip():
        bad("server", "is missing" if value is None else "must be a string", 'e.g. server = "192.0.2.53:53"')
    else:
        text = value.strip()
        try:
            server = parse_address(text if text.startswith("[") or text.count(":") == 1 else _with_port(text))
        except ValueError as exc:
            bad("server", str(exc), "give the primary server's IP address, e.g. 192.0.2.53 or [2001:db8::53]:53")
    names: dict[str, str] = {}
    for key, example in (("zone", "example.com"), ("key_name", "mtasts.")):
        value = table.get(key)
        alabel = to_alabel(value.strip()) if isinstance(value, str) and value.strip() else None
        if alabel is None or check_host_name(alabel) is not None:
            bad(key, "is missing" if value is None else f"{value!r} is not a domain name", f'e.g. {key} = "{example}"')
        else:
            names[key] = alabel
    algorithm = table.get("algorithm", "hmac-sha256")
    if algorithm not in TSIG_ALGORITHMS:
        bad("algorithm", f"{algorithm!r} is not a TSIG algorithm", f"use one of {', '.join(TSIG_ALGORITHMS)}")
    secret = table.get("secret_file")
    if not isinstance(secret, str) or not secret:
        bad(
            "secret_file", "is missing" if secret is None else "must be a file path", 'e.g. secret_file = "tsig.secret"'
        )
    ttl = _integer(reader, table, "ttl", "dns", 0, 3600, 0, 2**31 - 1)
    timeout = table.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        bad("timeout", f"{timeout!r} is not a number of seconds", "give 0.1 to 600, e.g. timeout = 10")
    if len(reader.problems) != before or server is None or not isinstance(secret, str):
        return None
    return DnsSettings(
        server=server,
        zone=names["zone"],
        key_name=names["key_name"],
        secret_file=base / Path(secret).expanduser(),
        algorithm=str(algorithm),
        ttl=ttl,
        timeout=float(timeout),
    )


_PATH_RE = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,199}")


def _report(reader: _Reader, table: object, base: Path) -> ReportSettings | None:
    """``[report]``: every key checked, all problems reported; ``None`` when any is wrong."""
    lines = reader.lines
    if not isinstance(table, dict):
        reader.problem("report", "must be a table", "write [report] and its keys below it", lines.of("", 0, "report"))
        return None
    _unknown_keys(reader, table, _REPORT_KEYS, "report", 0)
    before = len(reader.problems)
    defaults = ReportSettings()

    def bad(key: str, message: str, fix: str) -> None:
        reader.problem(f"report.{key}", message, fix, lines.of("report", 0, key))

    path = table.get("path", defaults.path)
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        bad(
            "path",
            f"{path!r} is not a URL path",
            f'begin with / and use no spaces, "?" or "#", e.g. "{DEFAULT_REPORT_PATH}"',
        )
    elif path.startswith((POLICY_PATH, "/.well-known/acme-challenge/")):
        bad(
            "path", f"{path} is the policy's or the ACME challenges' path", f'use another, e.g. "{DEFAULT_REPORT_PATH}"'
        )
    store: str | None = None
    if "store" in table:
        value = table["store"]
        if not isinstance(value, str) or not value.strip():
            bad(
                "store", "must be a database URL or a SQLite file path", 'e.g. store = "/var/lib/mtasts/mtasts.sqlite3"'
            )
        else:
            value = value.strip()
            store = value if "://" in value else str(base / Path(value).expanduser())
    accept_value = table.get("accept", defaults.accept.value)
    try:
        accept = ReportAccept(accept_value)
    except ValueError:
        bad("accept", f"{accept_value!r} is not a choice", 'use "configured" (the configured domains) or "any"')
        accept = defaults.accept
    max_body = _integer(reader, table, "max_body", "report", 0, defaults.max_body, 1024, 64 * 1024 * 1024)
    burst = _integer(reader, table, "burst", "report", 0, defaults.burst, 1, 100_000)
    parse_workers = _integer(reader, table, "parse_workers", "report", 0, defaults.parse_workers, 1, 64)
    numbers: dict[str, float] = {}
    for key, least, most in (
        ("rate_per_minute", 0.001, 1e6),
        ("body_timeout", 0.1, 600.0),
        ("min_body_rate", 0.0, 1e9),
    ):
        value = table.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not least <= value <= most:
            bad(
                key, f"{value!r} is not a number from {least:g} to {most:g}", f"e.g. {key} = {getattr(defaults, key):g}"
            )
        else:
            numbers[key] = float(value)
    if len(reader.problems) != before or not isinstance(path, str):
        return None
    return ReportSettings(
        path=path,
        store=store,
        accept=accept,
        max_body=max_body,
        burst=burst,
        parse_workers=parse_workers,
        **numbers,
    )


def _with_port(host: str) -> str:
    """A bare address gets the DNS port: ``192.0.2.53`` → ``192.0.2.53:53``, ``::1`` → ``[::1]:53``."""
    return f"[{host}]:53" if ":" in host else f"{host}:53"


def _domains(reader: _Reader, value: object, base: Path) -> tuple[DomainConfig, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        reader.problem(
            "domain",
            "must be an array of tables",
            "write one [[domain]] section per domain",
            reader.lines.of("", 0, "domain"),
        )
        return ()
    domains: list[DomainConfig] = []
    first_line: dict[str, int | None] = {}  # normalised name -> line of its first entry
    for index, table in enumerate(value):
        name, domain = _domain(reader, table, index, base)
        if name is not None and name in first_line:
            line = first_line[name]
            reader.problem(
                f"domain[{index + 1}].name",
                f"{table.get('name')!r} is {name}, already configured at line {line}",
                "configure each domain once (names ignore case, a trailing dot and U-/A-label spelling)",
                reader.lines.of("domain", index, "name"),
            )
            continue
        if name is not None:
            first_line[name] = reader.lines.of("domain", index)
        if domain is not None:
            domains.append(domain)
    return tuple(domains)


def _domain(
    reader: _Reader, table: Mapping[str, Any], index: int, base: Path
) -> tuple[str | None, DomainConfig | None]:
    """The normalised name (when valid, for the repeat check) and the entry (when all is valid)."""
    lines = reader.lines
    prefix = f"domain[{index + 1}]"
    _unknown_keys(reader, table, _DOMAIN_KEYS, prefix, index)
    before = len(reader.problems)

    def bad(key: str, message: str, fix: str) -> None:
        reader.problem(f"{prefix}.{key}", message, fix, lines.of("domain", index, key))

    name_value = table.get("name")
    name: str | None = None
    if not isinstance(name_value, str) or not name_value.strip():
        bad("name", "is missing" if name_value is None else "must be a domain name", 'e.g. name = "example.com"')
    else:
        name = to_alabel(name_value.strip())
        issue = check_host_name(name) if name is not None else ("idna", "IDNA cannot convert it")
        if name is None or issue is not None or "." not in name:
            detail = issue[1] if issue else "it is not a fully qualified name"
            bad(
                "name", f"{name_value!r} is not a valid domain name: {detail}", "give the mail domain, e.g. example.com"
            )
            name = None
    mode_value = table.get("mode")
    mode: Mode | None = None
    if mode_value is None:
        bad("mode", "is missing", 'start with mode = "testing"')
    elif mode_value not in Mode._value2member_map_:
        bad("mode", f"{mode_value!r} is not a mode", 'use "testing", "enforce" or "none"')
    else:
        mode = Mode(mode_value)
    max_age_value = table.get("max_age")
    max_age: int | None = None
    if max_age_value is None:
        bad("max_age", "is missing", "e.g. max_age = 86400 while testing, 604800 or more once enforced")
    elif not isinstance(max_age_value, int) or isinstance(max_age_value, bool):
        bad("max_age", "must be a whole number of seconds", "e.g. max_age = 86400")
    elif not 0 <= max_age_value <= MAX_AGE_LIMIT:
        bad("max_age", f"{max_age_value} is out of range", f"give 0 to {MAX_AGE_LIMIT} seconds (RFC 8461 §3.2)")
    else:
        max_age = max_age_value
    mx_value = table.get("mx")
    mx: tuple[str, ...] | None = None
    if mx_value is None:
        bad("mx", "is missing", f'list the MX host names, e.g. mx = ["mx1.example.com"], or write mx = "{FROM_DNS}"')
    elif mx_value == FROM_DNS:
        mx = None
    elif not isinstance(mx_value, list) or not all(isinstance(m, str) for m in mx_value):
        bad(
            "mx",
            'must be a list of host names or the string "from-dns"',
            'e.g. mx = ["mx1.example.com", "*.example.net"]',
        )
    elif not mx_value and mode is not Mode.NONE:
        bad("mx", "is empty", 'list the MX host names (only mode = "none" may have none)')
    else:
        patterns = []
        for item in mx_value:
            wildcard = item.startswith("*.")
            alabel = to_alabel(item[2:] if wildcard else item)
            pattern = None if alabel is None else "*." + alabel if wildcard else alabel
            issue = ("idna", "IDNA cannot convert it") if pattern is None else check_mx_pattern(pattern)
            if pattern is None or issue is not None:
                bad(
                    "mx",
                    f"{item!r} is not a valid MX host name or pattern: {issue[1] if issue else 'invalid'}",
                    "list MX host names such as mx1.example.com, or patterns such as *.example.com",
                )
                continue
            patterns.append(pattern)
        mx = tuple(dict.fromkeys(patterns))
    rua: tuple[str, ...] = ()
    rua_value = table.get("rua", [])
    if isinstance(rua_value, str):
        rua_value = [rua_value]
    if not isinstance(rua_value, list) or not all(isinstance(r, str) for r in rua_value):
        bad("rua", "must be a list of mailto: or https: URIs", 'e.g. rua = ["mailto:tlsrpt@example.com"]')
    elif rua_value:
        try:
            rua = TlsRptRecord(rua=tuple(rua_value)).rua
        except ParseError as exc:
            bad("rua", exc.message, exc.fix)
    cert = _path(reader, table, "cert", prefix, index, base)
    key = _path(reader, table, "key", prefix, index, base)
    if (cert is None) != (key is None) and len(reader.problems) == before:
        missing = "key" if key is None else "cert"
        bad(missing, "is missing", "give both cert (the PEM chain) and key (its PEM private key), or neither")
    policy: Policy | None = None
    body: bytes | None = None
    if mode is not None and max_age is not None and mx is not None and len(reader.problems) == before:
        try:
            policy, body = _checked_policy(mode, max_age, mx)
        except ParseError as exc:
            for problem in exc.errors:
                bad("mx" if "mx" in problem.code else "policy", problem.message, problem.fix)
    if len(reader.problems) != before or name is None or mode is None or max_age is None:
        return name, None
    entry = DomainConfig(
        name=name,
        mode=mode,
        max_age=max_age,
        mx=mx,
        rua=rua,
        cert=cert,
        key=key,
        line=lines.of("domain", index),
        policy=policy,
    )
    if body is not None:
        object.__setattr__(entry, "checked_body", body)
    return name, entry


def _checked_policy(mode: Mode, max_age: int, mx: tuple[str, ...]) -> tuple[Policy, bytes]:
    """The policy of an entry whose values are checked already, and its canonical body, read
    back by the core's strict parser (the host serves only what a sender reads back the same);
    raises :class:`ParseError` with the constructor's problems when the values are invalid.

    The body is written here and parsed once, which builds the policy too: constructing a
    ``Policy`` first (it validates every value again) and then serialising and parsing it did
    the checks three times per domain, a third of the start of 10,000 domains. That the text
    is the core's canonical form is checked against :meth:`Policy.to_text`."""
    lines = [f"version: {STS_POLICY_VERSION}", f"mode: {mode.value}"]
    lines.extend(f"mx: {pattern}" for pattern in mx)
    lines.append(f"max_age: {max_age}")
    text = "\r\n".join(lines) + "\r\n"
    try:
        policy = parse_policy(text)
    except ParseError:
        policy = None
    if policy is None or (policy.mode, policy.max_age, policy.mx, policy.extensions) != (mode, max_age, mx, {}):
        # not what the values say: the constructor names the problem (it raises ParseError)
        policy = Policy(mode=mode, max_age=max_age, mx=mx)
        raise AssertionError(f"the canonical body does not read back as the policy: {text!r}")
    if policy.to_text() != text:
        raise AssertionError(f"the body is not the canonical text of the policy: {text!r}")
    return policy, text.encode("ascii")


def _path(reader: _Reader, table: Mapping[str, Any], key: str, prefix: str, index: int, base: Path) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        reader.problem(
            f"{prefix}.{key}",
            "must be a file path",
            f'e.g. {key} = "/etc/mtasts/example.com.pem"',
            reader.lines.of("domain", index, key),
        )
        return None
    # one Path built from strings: ``base / Path(value).expanduser()`` builds three, and
    # pathlib's parsing is a tenth of the start of 10,000 domains (two files each)
    if value.startswith("~"):
        value = os.path.expanduser(value)
    return Path(os.path.join(base, value))
