"""What the ``mtasts resolver`` commands share: their options, the network and resolver settings,
the overrides file and the cache store."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail, in_language
from mtasts.net.settings import NetworkSettings, parse_nameserver

if TYPE_CHECKING:
    from mtasts.resolver.config import ResolverConfig, StoreSettings
    from mtasts.resolver.service import ResolverSettings
    from mtasts.resolver.store import PolicyStore


_NETWORK = "Network"
_TESTING = "For testing (the lab)"
DEFAULT_LISTEN = "inet:127.0.0.1:8461"

Nameserver = Annotated[
    str | None,
    typer.Option(
        "--nameserver",
        help="Resolve through this server, IP[:PORT], instead of the system resolver.",
        rich_help_panel=_NETWORK,
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", help="Trust the CAs in this PEM file instead of the system store.", rich_help_panel=_NETWORK
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Seconds allowed for each lookup and fetch.", rich_help_panel=_NETWORK),
]
RefusePrivate = Annotated[
    bool,
    typer.Option(
        "--refuse-private",
        help="Never fetch a policy from an address that is not globally reachable.",
        rich_help_panel=_NETWORK,
    ),
]
HttpsPort = Annotated[
    int,
    typer.Option(
        "--https-port", min=1, max=65535, help="Fetch policies on this port (RFC 8461: 443).", rich_help_panel=_TESTING
    ),
]
StrictTesting = Annotated[
    bool,
    typer.Option("--strict-testing", help="Enforce 'testing' policies too (RFC 8461 says not to)."),
]
OverridesFile = Annotated[
    Path | None,
    typer.Option(
        "--overrides",
        help="Per-domain overrides (force-none, force-enforce, pin) from this TOML file; serve reloads it on SIGHUP.",
        show_default=False,
    ),
]
Db = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The SQLite cache file [default: resolver-cache.sqlite3 in the user data directory].",
        show_default=False,
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis",
        help="Share the cache through Redis at this URL (redis://HOST:PORT/DB) instead of the SQLite file.",
        show_default=False,
    ),
]
RedisPrefix = Annotated[
    str | None,
    typer.Option(
        "--redis-prefix",
        help="The prefix of the resolver's Redis keys [default: mtasts:resolver:].",
        show_default=False,
    ),
]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The cache store: sqlite:PATH, redis://HOST:PORT/DB or postgresql://USER@HOST/DB "
        "[default: the configuration's [store], else the daemon's SQLite file].",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The daemon's configuration file [default: resolver.toml in the user config directory, if it exists].",
        show_default=False,
    ),
]
FailOpenTemp = Annotated[
    bool,
    typer.Option(
        "--fail-open-temp",
        help="Answer TEMP (the mail waits) instead of NOTFOUND when nothing is cached and DNS or HTTPS fail.",
    ),
]


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """``resolver-cache.sqlite3`` in the user data directory (``$XDG_DATA_HOME/mtasts`` on Linux)."""
    from platformdirs import user_data_path

    environ = dict(os.environ) if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) / "mtasts" if xdg else user_data_path("mtasts", appauthor=False)
    return base / "resolver-cache.sqlite3"


def network_settings(
    nameserver: str | None, ca_file: Path | None, timeout: float, https_port: int, refuse_private: bool
) -> NetworkSettings:
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver: {exc}", ExitCode.USAGE)
    if ca_file is not None and not ca_file.is_file():
        fail(f"--ca-file: {ca_file} is not a file", ExitCode.USAGE)
    return NetworkSettings(
        nameserver=server, ca_file=ca_file, timeout=timeout, https_port=https_port, allow_private=not refuse_private
    )


def resolver_settings(strict_testing: bool, fail_open_temp: bool, timeout: float) -> ResolverSettings:
    from mtasts.resolver.answers import AnswerSettings
    from mtasts.resolver.service import ResolverSettings

    return ResolverSettings(
        answers=AnswerSettings(strict_testing=strict_testing),
        fail_open_temp=fail_open_temp,
        answer_timeout=max(1.0, timeout * 1.5),
    )


def load_overrides(path: Path) -> dict[str, Any]:
    from mtasts.resolver.overrides import OverrideError, parse_overrides

    try:
        return dict(parse_overrides(path.read_text(encoding="utf-8")))
    except OSError as exc:
        fail(f"--overrides: cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE)
    except (OverrideError, UnicodeDecodeError) as exc:
        fail(f"--overrides: {path}: {exc}", ExitCode.USAGE)


def open_store(db: Path | None, redis_url: str | None, redis_prefix: str) -> tuple[PolicyStore, str]:
    """The persistent store the options name, and how to show it."""
    from mtasts.resolver.config import StoreKind, StoreSettings

    if redis_url is not None and db is not None:
        fail("--redis: choose one of --redis and --db", ExitCode.USAGE)
    if redis_url is not None:
        if not redis_prefix:
            fail("--redis-prefix: must not be empty", ExitCode.USAGE)
        return store_of(StoreSettings(StoreKind.REDIS, url=redis_url, prefix=redis_prefix))
    return store_of(StoreSettings(StoreKind.SQLITE, path=db))


def store_of(settings: StoreSettings) -> tuple[PolicyStore, str]:
    """The store ``settings`` describe (nothing connected yet), and how to show it."""
    from mtasts.resolver.config import StoreKind
    from mtasts.resolver.store import MemoryStore, SqliteStore

    if settings.kind is StoreKind.MEMORY:
        return MemoryStore(), "memory only"
    if settings.kind is StoreKind.REDIS:
        from mtasts.resolver.redis_store import RedisStore

        assert settings.url is not None
        where = f"Redis {settings.url.rpartition('@')[2]}, prefix {settings.prefix}"
        return RedisStore(settings.url, prefix=settings.prefix), where
    if settings.kind is StoreKind.POSTGRESQL:
        from mtasts.resolver.pg_store import PostgresStore
        from mtasts.resolver.store import hide_password

        assert settings.url is not None
        where = f"PostgreSQL {hide_password(settings.url)}, table {settings.table}"
        return PostgresStore(settings.url, table=settings.table), where
    path = settings.path or default_db_path()
    return SqliteStore(path), str(path)


def chosen_store(
    store_url: str | None, db: Path | None, redis_url: str | None, redis_prefix: str | None, config: Path | None
) -> StoreSettings:
    """The store the cache commands work on: ``--store``, ``--db`` or ``--redis`` (one of them),
    else the configuration file's ``[store]`` (``--config``, or the default file if it exists),
    else the daemon's default SQLite file."""
    from mtasts.resolver.config import DEFAULT_REDIS_PREFIX, StoreKind, StoreSettings, parse_store

    named = [name for name, value in (("--store", store_url), ("--db", db), ("--redis", redis_url)) if value]
    if len(named) > 1:
        fail(f"{named[1]}: choose one of --store, --db and --redis", ExitCode.USAGE)
    prefix = DEFAULT_REDIS_PREFIX if redis_prefix is None else redis_prefix
    if not prefix:
        fail("--redis-prefix: must not be empty", ExitCode.USAGE)
    if store_url is not None:
        try:
            settings = parse_store(store_url)
        except ValueError as exc:
            fail(f"--store: {exc}", ExitCode.USAGE)
        return StoreSettings(settings.kind, settings.path, settings.url, prefix, settings.table)
    if redis_url is not None:
        return StoreSettings(StoreKind.REDIS, url=redis_url, prefix=prefix)
    if db is not None:
        return StoreSettings(StoreKind.SQLITE, path=db)
    loaded = read_config(config)
    if redis_prefix is not None and loaded.store.kind is StoreKind.REDIS:
        return StoreSettings(StoreKind.REDIS, url=loaded.store.url, prefix=prefix)
    return loaded.store


def read_config(path: Path | None, environ: Mapping[str, str] | None = None) -> ResolverConfig:
    """The configuration at ``path`` (it must exist), or at the default place (if it exists),
    or the defaults. Every problem is one line; exit 2, or 3 when the file cannot be read."""
    from mtasts.resolver.config import ConfigError, ResolverConfig, default_config_path, parse_config

    environ = os.environ if environ is None else environ
    where = path or default_config_path(environ)
    if path is None and not where.exists():
        return ResolverConfig()
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--config: cannot read {where}: {getattr(exc, 'strerror', None) or exc}")
    try:
        return parse_config(text, where)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"mtasts: error: {in_language(problem.to_text())}\n")
        sys.stderr.flush()
        raise typer.Exit(int(ExitCode.USAGE)) from None


def with_settings(settings: StoreSettings, work: Any) -> Any:
    """Run ``work(store)`` on the store ``settings`` name; a store failure is one line, exit 3."""
    from mtasts.cli._run import run_async
    from mtasts.resolver.config import StoreKind
    from mtasts.resolver.store import StoreError

    if settings.kind is StoreKind.SQLITE:
        path = settings.path or default_db_path()
        if not path.is_file():
            fail(f"--db: {path} does not exist (no daemon has used it)")
    store, _ = store_of(settings)

    async def run() -> Any:
        try:
            return await work(store)
        finally:
            with contextlib.suppress(StoreError):
                await store.close()

    try:
        return run_async(run())
    except StoreError as exc:
        fail(str(exc))


def with_store(
    db: Path | None,
    redis_url: str | None,
    redis_prefix: str | None,
    work: Any,
    *,
    store_url: str | None = None,
    config: Path | None = None,
) -> Any:
    """Run ``work(store)`` on the store the options name (see :func:`chosen_store` and
    :func:`with_settings`)."""
    return with_settings(chosen_store(store_url, db, redis_url, redis_prefix, config), work)


def entry_row(entry: Any, now: float) -> dict[str, Any]:
    """One cache entry as the JSON of ``cache list``/``show`` (keys are a public contract)."""
    policy = entry.policy
    if entry.valid(now):
        state = "policy"
    elif now < entry.negative_until:
        state = "no-policy"
    elif now < entry.fail_open_until:
        state = "failing"
    else:
        state = "expired"
    return {
        "domain": entry.domain,
        "state": state,
        "mode": None if policy is None else policy.mode.value,
        "id": entry.policy_id,
        "mx": [] if policy is None else list(policy.mx),
        "fetched": fmt_time(entry.fetched_at) if policy is not None else None,
        "expires": fmt_time(entry.expires_at) if policy is not None else None,
        "next_txt_check": fmt_time(entry.txt_next_check) if entry.txt_next_check else None,
        "mx_hosts": list(entry.mx_hosts),
        "last_error": entry.last_error or None,
    }


def fmt_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
