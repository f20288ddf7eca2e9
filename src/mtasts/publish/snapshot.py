"""What the policy host serves, as one immutable snapshot that a reload replaces whole.

A :class:`Snapshot` holds, for every served name (``mta-sts.<domain>``), the exact body and
the certificate files; the host reads the current snapshot once per handshake and once per
request, and a reload swaps the reference (one assignment, atomic for the event loop), so a
request sees the old state or the new one, never a mix. Later increments (the roll-out state
machine) produce snapshots too; the host does not care where one came from. A domain without
``cert``/``key`` in a configuration with ``[acme]`` is served with the current certificate of
the ACME storage directory (:mod:`mtasts.publish.certstore`) once one was issued; until then it
is unserved, "waiting for its ACME certificate", and a configuration whose every domain waits
is a normal first start, not an error.

:func:`load_snapshot` does the file work: reads the configuration, checks every body with the
core's strict parser (:func:`~mtasts.core.policy.parse_policy`: the host serves nothing a
sender would reject), and checks that every named certificate and key file exists. It does not
load the certificates: 10,000 domains must start in well under two seconds, and loading one
takes about 2 ms and 20 KiB. :class:`CertificateCache` loads each on its first handshake and
keeps the most recently used ones; a new snapshot starts with an empty cache, so a reload
re-reads renewed certificate files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import stat
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from mtasts.core.policy import Mode, parse_policy
from mtasts.core.problems import ParseError
from mtasts.publish.certstore import CertificateStore
from mtasts.publish.config import Config, ConfigError, ConfigProblem, ProblemKind, parse_config

__all__ = [
    "ACME_PENDING",
    "CertificateCache",
    "CertificateFailure",
    "ServedContext",
    "Site",
    "Snapshot",
    "build_snapshot",
    "load_snapshot",
    "read_config",
]

log = logging.getLogger("mtasts.publish")

ACME_PENDING = "waiting for its ACME certificate"  # the reason a domain is not served yet


class ServedContext(ssl.SSLContext):
    """The server context of one policy host; ``served_name`` tells the request handler which
    name the handshake chose (a TLS server learns the SNI name only in the SNI callback)."""

    served_name: str


@dataclass(frozen=True, slots=True)
class CertificateFailure:
    """Why a name's certificate cannot be used (unreadable file, key not matching)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Site:
    """One served policy host: the body exactly as sent, and the files of its certificate."""

    domain: str
    host: str
    body: bytes
    mode: Mode
    max_age: int
    cert: Path
    key: Path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class CertificateCache:
    """Server contexts by name, loaded on first use, the ``capacity`` most recently used kept.

    Not thread-safe: used from the event loop only (the SNI callback runs there)."""

    def __init__(self, sites: Mapping[str, Site], capacity: int) -> None:
        self._sites = sites
        self._capacity = capacity
        self._contexts: OrderedDict[str, ServedContext] = OrderedDict()
        self.failures: dict[str, CertificateFailure] = {}
        self.expiry: dict[str, datetime] = {}
        self.loads = 0

    def __len__(self) -> int:
        return len(self._contexts)

    def context(self, name: str) -> ServedContext | CertificateFailure | None:
        """The context of ``name`` (a served host name), a failure, or ``None`` if not served."""
        context = self._contexts.get(name)
        if context is not None:
            self._contexts.move_to_end(name)
            return context
        failed = self.failures.get(name)
        if failed is not None:
            return failed
        site = self._sites.get(name)
        if site is None:
            return None
        loaded = self._load(site)
        if isinstance(loaded, CertificateFailure):
            self.failures[name] = loaded
            log.warning("certificate of %s cannot be used: %s", name, loaded.reason)
            return loaded
        self._contexts[name] = loaded
        if len(self._contexts) > self._capacity:
            self._contexts.popitem(last=False)
        return loaded

    def note_expiry(self, name: str) -> datetime | CertificateFailure | None:
        """Read the leaf certificate of ``name`` just for its expiry (the metrics, the warm-up
        after a start or reload); cheaper than building a context."""
        if name in self.expiry:
            return self.expiry[name]
        site = self._sites.get(name)
        if site is None:
            return None
        try:
            leaf = x509.load_pem_x509_certificate(site.cert.read_bytes())
        except (OSError, ValueError) as exc:
            failure = CertificateFailure(name, f"{site.cert}: {_describe(exc)}")
            self.failures.setdefault(name, failure)
            return failure
        self.expiry[name] = leaf.not_valid_after_utc
        return leaf.not_valid_after_utc

    def _load(self, site: Site) -> ServedContext | CertificateFailure:
        self.loads += 1
        context = ServedContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8461 §3.3 senders use TLS 1.2 or later
        context.set_alpn_protocols(["http/1.1"])
        try:
            context.load_cert_chain(site.cert, site.key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            return CertificateFailure(site.host, f"{site.cert} / {site.key}: {_describe(exc)}")
        context.served_name = site.host
        self.note_expiry(site.host)
        return context


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole served state: ``sites`` by host name; ``unserved`` the configured domains that
    get no policy (no certificate configured) and why; ``config`` the file it came from."""

    config: Config
    sites: Mapping[str, Site]
    unserved: tuple[tuple[str, str], ...] = ()
    generation: int = 1
    certificates: CertificateCache = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", MappingProxyType(dict(self.sites)))
        object.__setattr__(self, "certificates", CertificateCache(self.sites, self.config.server.certificate_cache))

    def site(self, name: str) -> Site | None:
        """The site served as host ``name`` (case and a trailing dot ignored)."""
        return self.sites.get(name.rstrip(".").lower())


def read_config(path: Path) -> Config:
    """Read and parse the configuration file; a file that cannot be read is a problem of kind
    ``unreadable`` (exit 3), everything else :func:`~mtasts.publish.config.parse_config`'s."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "",
                    f"cannot read the configuration: {exc.strerror or exc}",
                    "check the path and its permissions (or give --config FILE)",
                    kind=ProblemKind.UNREADABLE,
                )
            ]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "",
                    f"not UTF-8 (byte {exc.start})",
                    "save the file as UTF-8 (TOML requires it)",
                )
            ]
        ) from None
    return parse_config(text, path)


def load_snapshot(path: Path, *, generation: int = 1) -> Snapshot:
    """Read the configuration at ``path`` and build the snapshot it describes; raises
    :class:`~mtasts.publish.config.ConfigError` listing every problem."""
    return build_snapshot(read_config(path), generation=generation)


def build_snapshot(config: Config, *, generation: int = 1) -> Snapshot:
    """The snapshot of ``config``; raises :class:`ConfigError` when a domain cannot be served
    as configured (``mx = "from-dns"`` not resolved yet, a body the strict parser rejects, a
    certificate or key file that is missing) or when no domain can be served at all, unless
    ``[acme]`` is configured (its certificates come later; no domain yet is a host that waits)."""
    problems: list[ConfigProblem] = []
    sites: dict[str, Site] = {}
    unserved: list[tuple[str, str]] = []
    file = str(config.path)
    for index, domain in enumerate(config.domains, 1):
        prefix = f"domain[{index}]"
        if domain.mx is None:
            problems.append(
                ConfigProblem(
                    file,
                    f"{prefix}.mx",
                    f'{domain.name}: mx = "from-dns" is not resolved: the host never looks up MX records while serving',
                    "list the MX host names in mx (deriving them from DNS is a step of `mtasts publish plan`, "
                    "not yet available)",
                    domain.line,
                )
            )
            continue
        body = domain.checked_body
        if body is None:  # an entry not read by parse_config (the roll-out's): parse it here
            body = domain.body
            assert body is not None  # mx is known, so the entry has its policy
            try:
                served = parse_policy(body)
            except ParseError as exc:
                problems.append(
                    ConfigProblem(
                        file, prefix, f"{domain.name}: the policy body is rejected: {exc}", exc.fix, domain.line
                    )
                )
                continue
            if served != domain.policy:
                problems.append(
                    ConfigProblem(
                        file,
                        prefix,
                        f"{domain.name}: the body does not read back as the configured policy",
                        "report a bug",
                    )
                )
                continue
        cert, key = domain.cert, domain.key
        if (cert is None or key is None) and config.acme is not None:
            # built-in ACME: the current certificate in the storage directory, if one was issued
            stored = CertificateStore(config.acme.storage).current(domain.host)
            if stored is None:
                unserved.append((domain.name, ACME_PENDING))
                continue
            cert, key = stored.cert, stored.key
        if cert is None or key is None:
            unserved.append((domain.name, "no cert and key configured"))
            continue
        missing = [
            ConfigProblem(
                file,
                f"{prefix}.{what}",
                f"{domain.name}: {why}",
                "check the path (relative paths start at the configuration file's directory)",
                domain.line,
                ProblemKind.UNREADABLE,
            )
            for what, path in (("cert", cert), ("key", key))
            if (why := _unreadable(path)) is not None
        ]
        if missing:
            problems.extend(missing)
            continue
        host = domain.host
        sites[host] = Site(domain.name, host, body, domain.mode, domain.max_age, cert, key)
    # with ACME, starting before any certificate is issued is the normal first run, and so is
    # starting before any domain is configured (a reload adds them; ACME orders their certificates)
    if not problems and not sites and config.acme is None:
        problems.append(
            ConfigProblem(
                file,
                "domain",
                "no domain can be served" + (" (none has cert and key)" if unserved else " (none is configured)"),
                "add [[domain]] entries with name, mode, mx, max_age, cert and key",
            )
        )
    if problems:
        raise ConfigError(problems)
    return Snapshot(config=config, sites=sites, unserved=tuple(unserved), generation=generation)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file, or ``None``.

    ``os.access`` is asked only when the mode bits do not settle it: root reads every file, and
    an owner reads a file with the owner's read bit whatever its ACL says (POSIX ACLs do not
    change the owner's entry). Two files per domain, so at 10,000 domains the saved system
    calls and pathlib's wrappers are a visible part of the start."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    user = os.geteuid()
    if user == 0 or (info.st_uid == user and info.st_mode & stat.S_IRUSR):
        return None
    if not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
