"""The configuration of ``mtasts resolver serve``: one TOML file, parsed once into frozen settings.

Pure: :func:`parse_config` takes the file's text and its path (for messages, and for relative
paths, which are relative to the file's directory) and reads nothing else. Every problem is
data (:class:`ConfigProblem`: file, line when known, dotted key, what is wrong, how to fix it)
and :class:`ConfigError` carries all of them, so a file is fixed in one pass. Precedence:
built-in defaults, then the file, then the command line (:mod:`mtasts.cli.resolver.serve`
replaces what an option names).

Every key is optional; the defaults::

    listen = ["inet:127.0.0.1:8461"]   # or tables: { address = "unix:/run/x.sock", group = "postfix", mode = "660" }
    max_connections = 1000
    admin = "off"                       # "HOST:PORT" or a bare PORT (127.0.0.1): /metrics, /healthz, cache control
    overrides = ""                      # a per-domain overrides file (mtasts.resolver.overrides)
    strict_testing = false              # the default of every zone
    fail_open_temp = false              # the default of every zone

    [network]
    nameserver = ""                     # IP[:PORT]; empty: the system resolver
    ca_file = ""                        # empty: the system trust store
    timeout = 5.0
    refuse_private = false
    https_port = 443                    # testing only

    [store]
    url = ""                            # empty: sqlite in the user data directory; "memory",
                                        # "sqlite:PATH", "redis://...", "postgresql://..."
    prefix = "mtasts:resolver:"         # Redis key prefix
    table = "mtasts_resolver_cache"     # PostgreSQL table (SCHEMA.TABLE allowed)

    [zone.NAME]                         # the socketmap name after the address in main.cf
    profile = "postfix"                 # postfix, postfix-tlsrpt, postfix-legacy
    postfix_version = "3.7.11"          # checks the profile; 3.10.5+: wildcards left to Postfix
    strict_testing = false
    fail_open_temp = false
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mtasts.net.listen import ListenAddress, parse_address
from mtasts.net.settings import NetworkSettings, parse_nameserver
from mtasts.resolver.answers import Profile
from mtasts.resolver.grammar import parse_postfix_version, profile_error, recommended_profile
from mtasts.resolver.server import ListenSpec, parse_listen
from mtasts.resolver.store import hide_password
from mtasts.resolver.zones import Zone, builtin_zones

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_LISTEN",
    "DEFAULT_PG_TABLE",
    "DEFAULT_REDIS_PREFIX",
    "CommandLine",
    "ConfigError",
    "ConfigProblem",
    "ResolverConfig",
    "StoreKind",
    "StoreSettings",
    "apply_command_line",
    "default_config_path",
    "parse_admin_address",
    "parse_config",
    "parse_mode",
    "parse_store",
]

CONFIG_FILE_NAME = "resolver.toml"
DEFAULT_LISTEN = "inet:127.0.0.1:8461"
DEFAULT_REDIS_PREFIX = "mtasts:resolver:"
DEFAULT_PG_TABLE = "mtasts_resolver_cache"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 1000

_ZONE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PG_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
_TOML_POSITION_RE = re.compile(r"\(at line (\d+), column \d+\)")


def default_config_path(environ: Mapping[str, str]) -> Path:
    """``resolver.toml`` in the user config directory (``$XDG_CONFIG_HOME/mtasts`` on Linux)."""
    from platformdirs import user_config_path  # noqa: PLC0415 (only when no --config is given)

    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    return (Path(xdg) / "mtasts" if xdg else user_config_path("mtasts", appauthor=False)) / CONFIG_FILE_NAME


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong: where (``file``, ``line`` when known, the dotted ``key``), what, and the fix."""

    file: str
    key: str
    message: str
    fix: str
    line: int | None = None

    def to_text(self) -> str:
        """One line: ``FILE:LINE: KEY: MESSAGE; FIX``."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}:{f' {self.key}:' if self.key else ''} {self.message}; {self.fix}"


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason (at least one)."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        if not problems:
            raise TypeError("ConfigError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(p.to_text() for p in self.problems))


class StoreKind(StrEnum):
    MEMORY = "memory"
    SQLITE = "sqlite"
    REDIS = "redis"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where the cache persists: ``path`` for SQLite (``None``: the default file), ``url`` for
    Redis and PostgreSQL (kept out of ``repr``: it may hold a password)."""

    kind: StoreKind = StoreKind.SQLITE
    path: Path | None = None
    url: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_REDIS_PREFIX
    table: str = DEFAULT_PG_TABLE

    def shown(self) -> str:
        """The store for a log line, without a password."""
        if self.kind is StoreKind.MEMORY:
            return "memory only"
        if self.kind is StoreKind.SQLITE:
            return str(self.path) if self.path is not None else "SQLite (default file)"
        return f"{'Redis' if self.kind is StoreKind.REDIS else 'PostgreSQL'} {hide_password(self.url or '')}"


def parse_store(text: str, base: Path | None = None) -> StoreSettings:
    """``memory``, ``sqlite:PATH`` (or a plain path), ``redis://``/``rediss://``/``redis+unix://``
    URLs, ``postgresql://``/``postgres://`` URLs; ``ValueError`` says why not. A relative SQLite
    path is relative to ``base`` when given."""
    text = text.strip()
    scheme = text.partition(":")[0].lower()
    if text == "memory":
        return StoreSettings(StoreKind.MEMORY)
    if scheme in ("redis", "rediss"):
        if not text.partition("://")[2]:
            raise ValueError(f"{text!r} names no Redis server (redis://HOST:PORT/DB)")
        return StoreSettings(StoreKind.REDIS, url=text)
    if scheme == "redis+unix":
        return StoreSettings(StoreKind.REDIS, url="unix" + text[len("redis+unix") :])
    if scheme in ("postgresql", "postgres"):
        if "://" not in text:
            raise ValueError(f"{text!r} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DB)")
        return StoreSettings(StoreKind.POSTGRESQL, url=text)
    if scheme == "sqlite":
        text = text[len("sqlite:") :].removeprefix("//")
    elif "://" in text:
        raise ValueError(f"{text[:60]!r}: not memory, sqlite:PATH, redis://... or postgresql://...")
    if not text:
        raise ValueError("sqlite: needs a path (sqlite:/var/lib/mtasts/resolver-cache.sqlite3)")
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return StoreSettings(StoreKind.SQLITE, path=path)


def parse_mode(value: object) -> int:
    """A UNIX socket mode: a TOML integer (``0o660``) or an octal string (``"660"``)."""
    if isinstance(value, bool):
        raise ValueError('a mode is an octal number such as "660"')
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip()):
        mode = int(value.strip().removeprefix("0o").removeprefix("o"), 8)
    else:
        raise ValueError(f'{str(value)[:20]!r} is not an octal mode such as "660"')
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{mode:o} is not a file mode")
    return mode


def parse_admin_address(text: str) -> ListenAddress | None:
    """``HOST:PORT``, ``[IPv6]:PORT``, a bare ``PORT`` (127.0.0.1) or ``off``."""
    text = text.strip()
    if text.lower() in ("off", ""):
        return None
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    return parse_address(text)


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """Everything ``serve`` needs, as the file (or the defaults) says."""

    path: Path | None = None
    listen: tuple[ListenSpec, ...] = (parse_listen(DEFAULT_LISTEN),)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    admin: ListenAddress | None = None
    overrides: Path | None = None
    network: NetworkSettings = NetworkSettings(timeout=DEFAULT_TIMEOUT)  # noqa: RUF009 (frozen)
    store: StoreSettings = StoreSettings()
    zones: Mapping[str, Zone] = field(default_factory=builtin_zones)

    def zone_settings_default(self) -> tuple[bool, bool]:
        """The (strict_testing, fail_open_temp) of the built-in ``postfix`` zone: the daemon's own."""
        zone = self.zones[Profile.POSTFIX.value]
        return zone.strict_testing, zone.fail_open_temp


# --- where keys sit -------------------------------------------------------------------------


class _Lines:
    """The line of each ``key =`` per table (tomllib gives no positions): a scan for table
    headers and key lines, good enough for the files people write; ``None`` when unplaced.
    ``[[listen]]`` entries are counted, so a problem in the third one points at it."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, str], int] = {}
        self.headers: dict[str, int] = {}
        self.items: dict[str, list[int]] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), 1):
            header = self._HEADER.match(line)
            if header:
                table = ".".join(part.strip().strip('"').strip("'") for part in header[2].split("."))
                if header[1] == "[[":
                    self.items.setdefault(table, []).append(number)
                    table = f"{table}[{len(self.items[table]) - 1}]"
                self.headers.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self.keys.setdefault((table, key[1]), number)

    def of(self, table: str, key: str | None = None) -> int | None:
        if key is not None:
            if (table, key) in self.keys:
                return self.keys[(table, key)]
            nested = f"{table}.{key}" if table else key
            if nested in self.headers:
                return self.headers[nested]
        return self.headers.get(table)

    def item(self, name: str, index: int) -> int | None:
        """The line of entry ``index`` of ``name`` (``[[name]]`` header, else ``name =``)."""
        found = self.items.get(name, [])
        return found[index] if index < len(found) else self.of("", name)


@dataclass(slots=True)
class _Reader:
    file: str
    lines: _Lines
    problems: list[ConfigProblem] = field(default_factory=list)

    def bad(self, table: str, key: str, message: str, fix: str) -> None:
        dotted = f"{table}.{key}" if table else key
        self.problems.append(ConfigProblem(self.file, dotted, message, fix, self.lines.of(table, key)))

    def unknown(self, table: str, data: Mapping[str, Any], known: Sequence[str]) -> None:
        for key in data:
            if key not in known:
                self.bad(table, key, "unknown key", f"use {', '.join(known)}")

    def typed(self, table: str, data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
        """``data[key]`` when it is a ``kind`` (an int counts as a float), else a problem and ``default``."""
        value = data.get(key, default)
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            self.bad(table, key, f"must be {_KIND_NAMES[kind]}", f"e.g. {key} = {_EXAMPLES.get(key, default)!r}")
            return default
        return value


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_EXAMPLES: dict[str, object] = {"timeout": 5.0, "max_connections": 1000, "https_port": 443}
_TOP = (
    "listen",
    "max_connections",
    "admin",
    "overrides",
    "strict_testing",
    "fail_open_temp",
    "network",
    "store",
    "zone",
)
_NETWORK = ("nameserver", "ca_file", "timeout", "refuse_private", "https_port")
_STORE = ("url", "prefix", "table")
_LISTEN = ("address", "mode", "owner", "group")
_ZONE = ("profile", "postfix_version", "strict_testing", "fail_open_temp")


def parse_config(text: str, path: Path | str) -> ResolverConfig:
    """The configuration in ``text`` (read from ``path``); :class:`ConfigError` lists every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION_RE.search(str(exc))
        message = _TOML_POSITION_RE.sub("", str(exc)).strip()
        line = int(position[1]) if position else None
        raise ConfigError(
            [ConfigProblem(str(path), "", f"not valid TOML: {message}", "fix the syntax (https://toml.io)", line)]
        ) from None
    reader = _Reader(str(path), _Lines(text))
    base = path.parent
    reader.unknown("", data, _TOP)
    listen = _listen(reader, data.get("listen", [DEFAULT_LISTEN]), base)
    max_connections = reader.typed("", data, "max_connections", int, DEFAULT_MAX_CONNECTIONS)
    if max_connections < 1:
        reader.bad("", "max_connections", "must be at least 1", "raise it")
    admin = None
    admin_text = reader.typed("", data, "admin", str, "off")
    try:
        admin = parse_admin_address(admin_text)
    except ValueError as exc:
        reader.bad("", "admin", str(exc), 'e.g. admin = "127.0.0.1:9461", or "off"')
    overrides_text = reader.typed("", data, "overrides", str, "")
    overrides = _path(base, overrides_text) if overrides_text else None
    strict = reader.typed("", data, "strict_testing", bool, False)
    temp = reader.typed("", data, "fail_open_temp", bool, False)
    network = _network(reader, _table(reader, data, "network"), base)
    store = _store(reader, _table(reader, data, "store"), base)
    zones = _zones(reader, _table(reader, data, "zone"), strict, temp)
    if reader.problems:
        raise ConfigError(reader.problems)
    return ResolverConfig(path, listen, max_connections, admin, overrides, network, store, zones)


def _table(reader: _Reader, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        reader.bad("", name, "must be a table", f"write [{name}] and its keys below it")
        return {}
    return value


def _path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _listen(reader: _Reader, value: object, base: Path) -> tuple[ListenSpec, ...]:
    if isinstance(value, str | dict):
        value = [value]
    if not isinstance(value, list) or not value:
        reader.bad("", "listen", "must be a list of addresses", f'e.g. listen = ["{DEFAULT_LISTEN}"]')
        return ()
    specs: list[ListenSpec] = []
    for number, entry in enumerate(value):
        key = f"listen[{number}]"
        item = entry

        def bad(message: str, fix: str, key: str = key, number: int = number) -> None:
            reader.problems.append(ConfigProblem(reader.file, key, message, fix, reader.lines.item("listen", number)))

        options: Mapping[str, Any] = {}
        if isinstance(item, dict):
            options = item
            for extra in sorted(set(item) - set(_LISTEN)):
                bad(f"unknown key {extra!r}", f"use {', '.join(_LISTEN)}")
            item = item.get("address")
        if not isinstance(item, str):
            bad("an address is a string", 'e.g. "inet:127.0.0.1:8461" or "unix:PATH"')
            continue
        try:
            spec = parse_listen(item)
        except ValueError as exc:
            bad(str(exc), 'e.g. "inet:127.0.0.1:8461" or "unix:/run/mtasts-resolver/socketmap.sock"')
            continue
        if spec.path is None:
            if set(options) & {"mode", "owner", "group"}:
                bad("mode, owner and group are for unix: sockets", "remove them")
        else:
            mode = spec.mode
            if "mode" in options:
                try:
                    mode = parse_mode(options["mode"])
                except ValueError as exc:
                    bad(f"mode: {exc}", 'e.g. mode = "660"')
            names: dict[str, str | None] = {}
            for name in ("owner", "group"):
                given = options.get(name)
                if given is not None and (not isinstance(given, str) or not given):
                    bad(f"{name}: must be a user or group name", f'e.g. {name} = "postfix"')
                    given = None
                names[name] = given
            path = spec.path if spec.path.is_absolute() else base / spec.path
            spec = ListenSpec(path=path, mode=mode, owner=names["owner"], group=names["group"])
        if spec.to_text() in {s.to_text() for s in specs}:
            bad(f"{spec.to_text()} is listed twice", "list each address once")
            continue
        specs.append(spec)
    return tuple(specs)


def _network(reader: _Reader, data: Mapping[str, Any], base: Path) -> NetworkSettings:
    reader.unknown("network", data, _NETWORK)
    nameserver = None
    text = reader.typed("network", data, "nameserver", str, "")
    if text:
        try:
            nameserver = parse_nameserver(text)
        except ValueError as exc:
            reader.bad("network", "nameserver", str(exc), 'e.g. nameserver = "127.0.0.1:53"')
    ca_text = reader.typed("network", data, "ca_file", str, "")
    timeout = reader.typed("network", data, "timeout", float, DEFAULT_TIMEOUT)
    if not 0.1 <= timeout <= 120:
        reader.bad("network", "timeout", f"{timeout:g} s is out of range", "use 0.1 to 120 seconds")
        timeout = DEFAULT_TIMEOUT
    refuse = reader.typed("network", data, "refuse_private", bool, False)
    port = reader.typed("network", data, "https_port", int, 443)
    if not 0 < port < 65536:
        reader.bad("network", "https_port", f"{port} is not a port", "use 443 (RFC 8461) or a test port")
        port = 443
    return NetworkSettings(
        nameserver=nameserver,
        ca_file=_path(base, ca_text) if ca_text else None,
        timeout=timeout,
        https_port=port,
        allow_private=not refuse,
    )


def _store(reader: _Reader, data: Mapping[str, Any], base: Path) -> StoreSettings:
    reader.unknown("store", data, _STORE)
    store = StoreSettings()
    url = reader.typed("store", data, "url", str, "")
    if url:
        try:
            store = parse_store(url, base)
        except ValueError as exc:
            reader.bad("store", "url", str(exc), 'e.g. url = "postgresql://mtasts@127.0.0.1/mtasts"')
    prefix = reader.typed("store", data, "prefix", str, DEFAULT_REDIS_PREFIX)
    if not prefix:
        reader.bad("store", "prefix", "must not be empty (the store would own the whole database)", "remove it")
        prefix = DEFAULT_REDIS_PREFIX
    table = reader.typed("store", data, "table", str, DEFAULT_PG_TABLE)
    if not _PG_TABLE_RE.match(table):
        reader.bad(
            "store", "table", f"{table[:60]!r} is not a table name", "lower-case letters, digits, _ (SCHEMA.TABLE)"
        )
        table = DEFAULT_PG_TABLE
    if "prefix" in data and store.kind is not StoreKind.REDIS:
        reader.bad("store", "prefix", "is for a Redis store", "remove it, or set url to redis://...")
    if "table" in data and store.kind is not StoreKind.POSTGRESQL:
        reader.bad("store", "table", "is for a PostgreSQL store", "remove it, or set url to postgresql://...")
    return StoreSettings(store.kind, store.path, store.url, prefix, table)


def _zones(reader: _Reader, data: Mapping[str, Any], strict: bool, temp: bool) -> dict[str, Zone]:
    zones = builtin_zones(strict_testing=strict, fail_open_temp=temp)
    for name, table in data.items():
        where = f"zone.{name}"
        if not _ZONE_NAME_RE.match(name):
            reader.bad("zone", name, "is not a socketmap name", "letters, digits, '.', '_', '-' (at most 63)")
            continue
        if not isinstance(table, dict):
            reader.bad("zone", name, "must be a table", f"write [zone.{name}] and its keys below it")
            continue
        reader.unknown(where, table, _ZONE)
        version = None
        version_text = reader.typed(where, table, "postfix_version", str, "")
        if version_text:
            try:
                version = parse_postfix_version(version_text)
            except ValueError as exc:
                reader.bad(where, "postfix_version", str(exc), "what postconf -h mail_version prints")
        profile: Profile | None = None
        profile_text = reader.typed(where, table, "profile", str, "")
        choices = ", ".join(p.value for p in Profile)
        if profile_text:
            try:
                profile = Profile(profile_text)
            except ValueError:
                reader.bad(where, "profile", f"{profile_text[:40]!r} is not a profile", f"use {choices}")
                continue
        elif name in zones:
            profile = zones[name].profile
        elif version is not None:
            profile = recommended_profile(version)
        else:
            reader.bad("zone", name, "needs a profile or a postfix_version", f"add profile = (one of {choices})")
            continue
        if version is not None and (why := profile_error(profile, version)) is not None:
            reader.bad(where, "profile" if profile_text else "postfix_version", why, "match the profile to the version")
            continue
        zones[name] = Zone(
            name,
            profile,
            strict_testing=reader.typed(where, table, "strict_testing", bool, strict),
            fail_open_temp=reader.typed(where, table, "fail_open_temp", bool, temp),
            postfix_version=version,
        )
    return zones


# --- the command line over the file ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandLine:
    """What ``serve``'s options say, parsed; ``None`` is "not given" (the file's value stands).
    ``admin_off`` turns off an admin listener the file asks for (``--admin off``)."""

    listen: tuple[ListenSpec, ...] | None = None
    unix_mode: int | None = None
    unix_owner: str | None = None
    unix_group: str | None = None
    max_connections: int | None = None
    admin: ListenAddress | None = None
    admin_off: bool = False
    overrides: Path | None = None
    strict_testing: bool | None = None
    fail_open_temp: bool | None = None
    nameserver: tuple[str, int] | None = None
    ca_file: Path | None = None
    timeout: float | None = None
    https_port: int | None = None
    refuse_private: bool | None = None
    store: StoreSettings | None = None
    redis_prefix: str | None = None


def apply_command_line(config: ResolverConfig, given: CommandLine) -> ResolverConfig:
    """``config`` with every option the command line gave in place of the file's value.

    ``--listen`` replaces the file's list; ``--unix-mode/owner/group`` then apply to every
    ``unix:`` listener (the command line's or the file's); ``--strict-testing`` and
    ``--fail-open-temp`` apply to every zone."""
    listen = given.listen if given.listen is not None else config.listen
    if given.unix_mode is not None or given.unix_owner is not None or given.unix_group is not None:
        listen = tuple(
            spec
            if spec.path is None
            else ListenSpec(
                path=spec.path,
                mode=spec.mode if given.unix_mode is None else given.unix_mode,
                owner=given.unix_owner or spec.owner,
                group=given.unix_group or spec.group,
            )
            for spec in listen
        )
    network = config.network
    network = NetworkSettings(
        nameserver=given.nameserver or network.nameserver,
        ca_file=given.ca_file or network.ca_file,
        timeout=network.timeout if given.timeout is None else given.timeout,
        https_port=given.https_port or network.https_port,
        smtp_port=network.smtp_port,
        allow_private=network.allow_private if given.refuse_private is None else not given.refuse_private,
        ehlo_name=network.ehlo_name,
    )
    zones = dict(config.zones)
    for name, zone in zones.items():
        zones[name] = Zone(
            zone.name,
            zone.profile,
            zone.strict_testing if given.strict_testing is None else given.strict_testing,
            zone.fail_open_temp if given.fail_open_temp is None else given.fail_open_temp,
            zone.postfix_version,
        )
    admin = None if given.admin_off else (given.admin or config.admin)
    store = given.store or config.store
    if given.redis_prefix is not None and store.kind is StoreKind.REDIS:
        store = StoreSettings(store.kind, url=store.url, prefix=given.redis_prefix)
    return ResolverConfig(
        config.path,
        listen,
        config.max_connections if given.max_connections is None else given.max_connections,
        admin,
        given.overrides or config.overrides,
        network,
        store,
        zones,
    )
