"""``mtasts publish apply``: carry a plan out in RFC 8461 §8 order."""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import (
    AdminOption,
    CaFileOption,
    ConfigOption,
    DbOption,
    HttpsPortOption,
    Known,
    NameserverOption,
    NowOption,
    ReasonOption,
    ReportersOption,
    SmtpPortOption,
    TestingDaysOption,
    TimeoutOption,
    check_force,
    gather_live,
    listen_address,
    network_settings,
    planned_names,
    read_known,
    rollout_now,
)
from mtasts.cli.text import plural
from mtasts.publish.config import ListenAddress

if TYPE_CHECKING:
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.apply import Applied
    from mtasts.publish.rollout import Rules

# what retire adds to apply's effects: given the host's reload and the sender's fetch, the
# coroutine that takes a domain out of the host and checks that no policy is served any more
Reload = Callable[[], Awaitable[str]]
Fetch = Callable[[str], Awaitable[bytes]]
StopServing = Callable[[Reload, Fetch], Callable[[str], Awaitable[str]]]


def _reload_via_admin(address: ListenAddress, timeout: float) -> str:
    """``POST /reload`` on the running host's admin listener (what ``reload`` does); a line
    saying what is served, or :class:`~mtasts.publish.apply.StepFailed` saying why not."""
    from mtasts.publish.apply import StepFailed

    connection = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        connection.request("POST", "/reload", headers={"Content-Length": "0"})
        response = connection.getresponse()
        outcome = json.loads(response.read())
        ok, generation, served = bool(outcome["ok"]), int(outcome["generation"]), int(outcome["served"])
    except (OSError, http.client.HTTPException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise StepFailed(
            f"cannot reach the admin listener at http://{address.to_text()}: {detail}; "
            "is `mtasts publish serve` running?"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise StepFailed(f"unexpected answer from http://{address.to_text()}/reload") from None
    finally:
        connection.close()
    if not ok:
        problems = "; ".join(str(p) for p in outcome.get("problems", []))
        raise StepFailed(f"reload refused ({problems}): still serving generation {generation}")
    return f"reloaded the policy host: generation {generation}, {plural(served, 'domain')} served"


def apply_command(
    domains: Annotated[
        list[str] | None, typer.Argument(help="Only these domains (default: every configured one).")
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    admin: AdminOption = None,
    force: Annotated[bool, typer.Option("--force", help="Apply past a refusing guard (needs --reason).")] = False,
    reason: ReasonOption = None,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    https_port: HttpsPortOption = 443,
    smtp_port: SmtpPortOption = 25,
    timeout: TimeoutOption = 10.0,
    now_text: NowOption = None,
) -> None:
    """Carry out the steps `plan` prints, in RFC 8461 §8 order, stopping at the first that fails.

    1. serve: reload the running `publish serve` (its admin listener: --admin or [server] admin);
    2. verify: fetch the body as a sender does (DNS, validated HTTPS, no redirect), byte for byte;
    3. record it in the history in --db under its new id (--force --reason: the reason too);
    4. publish the id: with a [dns] section, an RFC 2136 update signed with its TSIG key; without,
    print the exact TXT record and stop ("set this record, then run apply again");
    5. confirm the TXT record on the [dns] server. A failed step changes nothing after it (a body
    that does not verify is not recorded and its id not published). testing → enforce first runs
    the inspector against the live MX (its SMTP probes; --smtp-port for tests). Exit 0 done, 1 a
    step failed, a guard refused or a record waits to be set, 2 usage, 3 cannot read the
    configuration, database or TSIG secret."""
    from mtasts.publish.apply import Outcome
    from mtasts.publish.rollout import Rules

    check_force(force, reason)
    settings = network_settings(nameserver, ca_file, https_port, timeout, smtp_port)
    admin_address = admin_option(admin)
    now = rollout_now(now_text)
    rules = Rules(testing_days=testing_days, reporters=reporters)
    known = read_known(config, db, domains or [], now, rules)
    names = planned_names(known)
    results = run_apply(
        known,
        names,
        settings=settings,
        admin=admin_address,
        admin_off=admin == "off",
        timeout=timeout,
        db=db,
        now=now,
        fixed_clock=now_text is not None,
        rules=rules,
        reason=reason,
    )
    print_results(results)
    raise typer.Exit(int(ExitCode.OK if all(r.outcome is Outcome.DONE for r in results) else ExitCode.PROBLEMS))


def admin_option(admin: str | None) -> ListenAddress | None:
    """``--admin``: an address, or ``None`` (``off``, or not given: the configuration's)."""
    if admin is not None and admin != "off":
        return listen_address(admin, "--admin")
    return None


def print_results(results: list[Applied]) -> None:
    """Per domain: what was done, one line a step, then how the run ended (a failure on stderr)."""
    from mtasts.publish.apply import Outcome

    for result in results:
        typer.echo(f"{result.domain}:" + (f" {result.message}" if result.outcome is Outcome.DONE else ""))
        for line in result.done:
            typer.echo(f"  {line}")
        if result.outcome is Outcome.FAILED:
            sys.stderr.write(f"mtasts: error: {result.domain}: {result.message}\n")
        elif result.outcome is not Outcome.DONE:
            typer.echo(f"  {result.message}")
    sys.stderr.flush()


def run_apply(
    known: Known,
    names: list[str],
    *,
    settings: NetworkSettings,
    admin: ListenAddress | None,
    admin_off: bool,
    timeout: float,
    db: str | None,
    now: datetime,
    fixed_clock: bool,
    rules: Rules,
    reason: str | None,
    stop_serving: StopServing | None = None,
) -> list[Applied]:
    """Plan each of ``names`` and carry the plan out (``apply``, and ``retire`` with
    ``stop_serving``); anticipated trouble exits with one line."""
    from mtasts.cli._run import run_async
    from mtasts.net.dns import DnsClient
    from mtasts.net.https import fetch_policy
    from mtasts.publish.apply import HostEffects, StepFailed, apply_plan
    from mtasts.publish.history import SqlPublishHistory
    from mtasts.publish.plan import DnsRecord
    from mtasts.publish.rfc2136 import UpdateFailed, delete_txt, query_txt, read_secret, replace_txt
    from mtasts.publish.rollout import plan_rollout
    from mtasts.store.errors import StoreError, UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    admin_address = admin
    if admin_address is None and not admin_off:
        admin_address = known.config.server.admin
    dns_settings = known.config.dns
    secret = b""
    if dns_settings is not None:
        try:
            secret = read_secret(dns_settings)
        except UpdateFailed as exc:
            fail(str(exc), ExitCode.CANNOT_RUN)
    try:
        store = ReportStore(db or default_db_url(os.environ))
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    ttl = dns_settings.ttl if dns_settings is not None else None

    def zone_line(record: DnsRecord) -> str:
        return record.to_zone_line() if ttl is None else record.to_zone_line(ttl)

    def clock() -> datetime:
        """When a step happens: the real time, or the fixed --now of a test."""
        return now if fixed_clock else datetime.now(UTC)

    async def reload() -> str:
        import asyncio

        if admin_address is None:
            raise StepFailed("[server] admin is off: reload the host (SIGHUP), then run the command again")
        return await asyncio.to_thread(_reload_via_admin, admin_address, timeout)

    async def run() -> list[Applied]:
        live = await gather_live(names, settings, now, inspect=known)
        dns = DnsClient(settings)

        async def fetch(name: str) -> bytes:
            fetched = await fetch_policy(name, dns, settings, now=datetime.now(UTC))
            if fetched.failure is not None or fetched.body is None:
                raise StepFailed(f"{fetched.url}: {fetched.detail or fetched.failure}")
            return fetched.body

        async def publish(record: DnsRecord) -> None:
            assert dns_settings is not None
            try:
                await replace_txt(dns_settings, secret, record.name + ".", record.value)
            except UpdateFailed as exc:
                raise StepFailed(str(exc)) from None

        async def delete(record: DnsRecord) -> None:
            assert dns_settings is not None
            try:
                await delete_txt(dns_settings, secret, record.name + ".")
            except UpdateFailed as exc:
                raise StepFailed(str(exc)) from None

        async def confirm(record: DnsRecord) -> tuple[str, ...]:
            assert dns_settings is not None
            try:
                return await query_txt(dns_settings, record.name + ".")
            except UpdateFailed as exc:
                raise StepFailed(str(exc)) from None

        results = []
        with SqlPublishHistory(store) as history:
            effects = HostEffects(
                reload=reload,
                fetch=fetch,
                history=history,
                publish=publish if dns_settings is not None else None,
                confirm=confirm if dns_settings is not None else None,
                delete=delete if dns_settings is not None else None,
                stop_serving=None if stop_serving is None else stop_serving(reload, fetch),
            )
            for name in names:
                plan = plan_rollout(
                    name,
                    known.config.domain(name),
                    known.histories[name],
                    live[name],
                    now=now,
                    evidence=known.evidence.get(name),
                    rules=rules,
                    force_reason=reason,
                )
                results.append(await apply_plan(plan, effects, now=clock(), zone_line=zone_line))
        return results

    try:
        return run_async(run())
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
