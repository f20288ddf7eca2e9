"""``mtasts resolver cache list|show|flush|export``: the persisted cache."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.i18n import current
from mtasts.i18n.words import counted

if TYPE_CHECKING:
    from mtasts.resolver.store import PolicyStore

from mtasts.cli.output import label_width, padded
from mtasts.cli.resolver._common import (
    ConfigFile,
    Db,
    RedisPrefix,
    RedisUrl,
    StoreUrl,
    StrictTesting,
    entry_row,
    with_store,
)

cache_app = typer.Typer(
    help="The persistent cache (--store, --db, --redis, or the configuration's [store]): list, show, flush, "
    "export for a warm standby.",
    no_args_is_help=True,
)


@cache_app.command("list")
def cache_list(
    store_url: StoreUrl = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    config: ConfigFile = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every cached domain: state (policy, no-policy, failing, expired), mode, id, expiry."""
    import time

    async def work(store: PolicyStore) -> list[Any]:
        return sorted(await store.load_all(), key=lambda e: e.domain)

    entries = with_store(db, redis_url, redis_prefix, work, store_url=store_url, config=config)
    now = time.time()
    rows = [entry_row(entry, now) for entry in entries]
    if json_output:
        print_json({"domains": rows})
        return
    width = max((len(r["domain"]) for r in rows), default=6)
    tr = current()
    lines = [f"{padded('domain', width + 2)}{padded('state', 11)}{'mode':<7}  {'id':<20}  {tr.gettext('expires')}"]
    for r in rows:
        mode, record_id, expires = r["mode"] or "-", r["id"] or "-", r["expires"] or "-"
        lines.append(f"{r['domain']:<{width}}  {r['state']:<9}  {mode:<7}  {record_id:<20}  {expires}")
    lines.append(counted(len(rows), "cached domain"))
    sys.stdout.write("\n".join(lines) + "\n")


_SHOWN = (  # (key of the row, label) in the order cache show prints them
    ("mode", "mode"),
    ("id", "id"),
    ("mx", "mx"),
    ("fetched", "fetched"),
    ("expires", "expires"),
    ("next_txt_check", "next check"),
    ("mx_hosts", "mx hosts"),
    ("last_error", "last error"),
)


@cache_app.command("show")
def cache_show(
    domain: Annotated[str, typer.Argument(help="The mail domain.", show_default=False)],
    store_url: StoreUrl = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    config: ConfigFile = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """One cached domain in full. Exit status 1 when it is not cached."""
    import time

    from mtasts.resolver.keys import classify_key

    name = classify_key(domain).domain
    if name is None:
        fail(f"{domain!r} is not a mail domain", ExitCode.USAGE)

    async def work(store: PolicyStore) -> Any:
        return await store.get(name)

    entry = with_store(db, redis_url, redis_prefix, work, store_url=store_url, config=config)
    if entry is None:
        fail(f"{name} is not cached", ExitCode.PROBLEMS)
    row = entry_row(entry, time.time())
    if json_output:
        print_json(row)
        return
    lines = [f"{row['domain']}: {row['state']}"]
    width = label_width(tuple(label for _, label in _SHOWN), 12)
    for key, label in _SHOWN:
        value = row[key]
        if value:
            shown = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"  {padded(label, width)}{current().text(shown) if key == 'last_error' else shown}")
    sys.stdout.write("\n".join(lines) + "\n")


@cache_app.command("flush")
def cache_flush(
    domain: Annotated[
        str | None, typer.Argument(help="The mail domain [default: every domain].", show_default=False)
    ] = None,
    admin: Annotated[
        str | None,
        typer.Option(
            "--admin",
            help="Also flush the memory of the daemon whose admin listener is HOST:PORT (a bare PORT: 127.0.0.1) "
            "[default: the configuration's admin address, if any].",
            show_default=False,
        ),
    ] = None,
    store_url: StoreUrl = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    config: ConfigFile = None,
) -> None:
    """Forget DOMAIN (or every domain) in the persistent store, then in the running daemon's memory.

    The daemon is asked through its admin listener (--admin, or admin in the configuration file),
    which takes this command from loopback peers only. Without one, a running daemon keeps its
    in-memory copy until it expires or the daemon restarts."""
    from mtasts.cli.resolver._common import chosen_store, default_db_path, read_config, store_of, with_settings
    from mtasts.resolver.config import StoreKind, parse_admin_address
    from mtasts.resolver.keys import classify_key

    name = None
    if domain is not None:
        name = classify_key(domain).domain
        if name is None:
            fail(f"{domain!r} is not a mail domain", ExitCode.USAGE)
    address = None
    if admin is not None:
        try:
            address = parse_admin_address(admin)
        except ValueError as exc:
            fail(f"--admin: {exc}", ExitCode.USAGE)
        if address is None:
            fail("--admin: give the daemon's admin listener, HOST:PORT", ExitCode.USAGE)
    else:
        address = read_config(config).admin
    settings = chosen_store(store_url, db, redis_url, redis_prefix, config)
    _, where = store_of(settings)

    async def work(store: PolicyStore) -> int:
        if name is not None:
            if await store.get(name) is None:
                return 0
            await store.delete(name)
            return 1
        entries = await store.load_all()
        for entry in entries:
            await store.delete(entry.domain)
        return len(entries)

    tr = current()
    missing_file = settings.kind is StoreKind.SQLITE and not (settings.path or default_db_path()).is_file()
    if settings.kind is StoreKind.MEMORY:
        sys.stdout.write(tr.gettext("store: memory only, nothing persisted") + "\n")
    elif missing_file and address is not None:  # a daemon without a store file of its own: ask it alone
        sys.stdout.write(tr.gettext("store: %(where)s does not exist, nothing persisted") % {"where": where} + "\n")
    else:
        count = with_settings(settings, work)
        said = {"counted": counted(count, "cached domain"), "where": where}
        sys.stdout.write(tr.gettext("flushed %(counted)s from the store (%(where)s)") % said + "\n")
    sys.stdout.flush()
    if address is None:
        sys.stdout.write(
            tr.gettext(
                "daemon: not asked (no --admin, and no admin address in the configuration): a running daemon keeps "
                "its copy in memory until it expires or the daemon restarts"
            )
            + "\n"
        )
        return
    url, flushed = flush_daemon(address.host, address.port, name)
    memory, stored, error = flushed["flushed"], flushed["store"], flushed["store_error"]
    # the daemon deletes from its own store too: more there means it is not the store named here
    said = {"counted": counted(memory, "cached domain"), "url": url, "stored": stored}
    if stored:
        line = tr.gettext(
            "flushed %(counted)s from the daemon's memory (%(url)s); %(stored)s more from the daemon's own store"
        )
    else:
        line = tr.gettext("flushed %(counted)s from the daemon's memory (%(url)s)")
    sys.stdout.write(line % said + "\n")
    if error is not None:
        fail(f"the daemon's own store failed (its memory was flushed): {error}")


def flush_daemon(host: str, port: int, domain: str | None) -> tuple[str, dict[str, Any]]:
    """``POST /cache/flush`` to the daemon's admin listener: the URL asked and the daemon's
    answer (``flushed``: entries dropped from memory, ``store``: from its store, ``store_error``).
    A daemon that cannot be reached or refuses is one line, exit 3.

    An admin listener on every address (``0.0.0.0``, ``::``) is asked on loopback: the daemon
    accepts the command from loopback peers only."""
    import ipaddress
    import urllib.parse

    import httpx

    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(str(ipaddress.ip_address(host)), host)  # noqa: S104
    netloc = f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"
    url = f"http://{netloc}/cache/flush"
    target = url if domain is None else f"{url}?{urllib.parse.urlencode({'domain': domain})}"
    try:
        response = httpx.post(target, timeout=10.0, trust_env=False)
    except httpx.HTTPError as exc:
        fail(f"cannot ask the daemon at {url}: {exc or type(exc).__name__}")
    if response.status_code != 200:
        fail(f"the daemon at {url} refused: {response.status_code} {response.text.strip()[:200]}")
    try:
        document = response.json()
        flushed = {"flushed": int(document["flushed"]), "store": int(document["store"])}
        error = document["store_error"]
    except (ValueError, KeyError, TypeError):
        fail(f"the daemon at {url} answered something that is not a cache flush: {response.text[:200]!r}")
    return url, {**flushed, "store_error": None if error is None else str(error)[:300]}


@cache_app.command("export")
def cache_export(
    postfix: Annotated[
        bool,
        typer.Option("--postfix", help="A Postfix hash: map text (domain, TAB, answer), for postmap. Required."),
    ] = False,
    profile: Annotated[
        str, typer.Option("--profile", help="The answer profile: postfix, postfix-tlsrpt or postfix-legacy.")
    ] = "postfix",
    strict_testing: StrictTesting = False,
    store_url: StoreUrl = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    config: ConfigFile = None,
) -> None:
    """The answers the daemon gives now, as a static map for a warm standby (postmap hash:FILE).

    Only domains with a valid cached policy and an answer (enforce; testing with --strict-testing)."""
    import time

    from mtasts.resolver.answers import AnswerSettings, Profile, render_answer

    if not postfix:
        fail("export: choose the format: --postfix", ExitCode.USAGE)
    try:
        chosen = Profile(profile)
    except ValueError:
        fail(f"--profile: {profile!r} is not one of {', '.join(p.value for p in Profile)}", ExitCode.USAGE)

    async def work(store: PolicyStore) -> list[Any]:
        return sorted(await store.load_all(), key=lambda e: e.domain)

    now = time.time()
    settings = AnswerSettings(strict_testing=strict_testing)
    lines = []
    for entry in with_store(db, redis_url, redis_prefix, work, store_url=store_url, config=config):
        if entry.policy is None or not entry.valid(now):
            continue
        answer = render_answer(
            entry.domain, entry.policy, chosen, mx_hosts=entry.mx_hosts, body=entry.body, settings=settings
        )
        if answer.data is not None:
            lines.append(f"{entry.domain}\t{answer.data}\n")
    sys.stdout.write("".join(lines))
