"""``mtasts resolver cache list|show|flush|export``: the persisted cache."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.cli.text import plural

if TYPE_CHECKING:
    from mtasts.resolver.store import PolicyStore

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
    lines = [f"{'domain':<{width}}  {'state':<9}  {'mode':<7}  {'id':<20}  expires"]
    for r in rows:
        mode, record_id, expires = r["mode"] or "-", r["id"] or "-", r["expires"] or "-"
        lines.append(f"{r['domain']:<{width}}  {r['state']:<9}  {mode:<7}  {record_id:<20}  {expires}")
    lines.append(plural(len(rows), "cached domain"))
    sys.stdout.write("\n".join(lines) + "\n")


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
    for key, label in (
        ("mode", "mode"),
        ("id", "id"),
        ("mx", "mx"),
        ("fetched", "fetched"),
        ("expires", "expires"),
        ("next_txt_check", "next check"),
        ("mx_hosts", "mx hosts"),
        ("last_error", "last error"),
    ):
        value = row[key]
        if value:
            lines.append(f"  {label:<11} {', '.join(value) if isinstance(value, list) else value}")
    sys.stdout.write("\n".join(lines) + "\n")


@cache_app.command("flush")
def cache_flush(
    domain: Annotated[
        str | None, typer.Argument(help="The mail domain [default: every domain].", show_default=False)
    ] = None,
    store_url: StoreUrl = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = None,
    config: ConfigFile = None,
) -> None:
    """Forget DOMAIN (or every domain) in the persistent store.

    A running daemon keeps its in-memory copy until it expires or the daemon restarts; a restarted
    daemon, and every daemon of a fleet on a miss, then fetches afresh."""
    from mtasts.resolver.keys import classify_key

    name = None
    if domain is not None:
        name = classify_key(domain).domain
        if name is None:
            fail(f"{domain!r} is not a mail domain", ExitCode.USAGE)

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

    count = with_store(db, redis_url, redis_prefix, work, store_url=store_url, config=config)
    sys.stdout.write(f"flushed {plural(count, 'cached domain')}\n")


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
