"""Carrying a roll-out out, for every front end: what ``mtasts publish plan``, ``apply`` and
``retire`` and the web's publish actions (:mod:`mtasts.web.actions`) share.

The decisions are :mod:`mtasts.publish.rollout`'s (:func:`~mtasts.publish.rollout.plan_rollout`
and its guards) and the order of the effects :mod:`mtasts.publish.apply`'s
(:func:`~mtasts.publish.apply.apply_plan`). This module gathers their inputs (the configuration,
each domain's published history and the report evidence for its guards; what a sender sees live,
through the inspector's adapters) and builds the effects on the real world (the running host's
admin listener, RFC 2136 signed with the TSIG key, the history), once, so that the command line
and the web cannot drift apart. Each front end only says how it shows trouble: the CLI as one
line and an exit code, the web as a page; nothing here prints or exits.

Retiring's steps around the plan live here too (:func:`retire_stop`, :func:`retire_edit_needed`,
:func:`config_stopper`, :func:`retire_progress`), and the configuration edit that advances a
domain to ``enforce`` from the web (:func:`enforce_entry`, :func:`enforce_config_text`), the
counterpart of retiring's ``mode = "none"`` edit (:mod:`mtasts.publish.retire`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from mtasts.core.policy import Mode, Policy
from mtasts.publish.config import Config, DomainConfig, ListenAddress
from mtasts.publish.rollout import Stage

if TYPE_CHECKING:  # the network and the store load when an action needs them
    from mtasts.check.analysis import Analysis, Observations
    from mtasts.core.findings import Finding
    from mtasts.net.settings import NetworkSettings
    from mtasts.publish.apply import Applied
    from mtasts.publish.history import PublishHistory, Served
    from mtasts.publish.rollout import Evidence, LiveInspection, LiveState, Plan, Rules
    from mtasts.store.interface import ReportStoreProtocol

__all__ = [
    "CannotRun",
    "Fetch",
    "Known",
    "Reload",
    "RetireStop",
    "StopServing",
    "admin_address",
    "as_if_enforced",
    "carry_out",
    "config_stopper",
    "enforce_blockers",
    "enforce_config_text",
    "enforce_entry",
    "gather_live",
    "guard_mx",
    "inspect_enforce",
    "needs_inspection",
    "observe",
    "plan_of",
    "read_histories",
    "read_tsig_secret",
    "reload_via_admin",
    "retire_edit_needed",
    "retire_progress",
    "retire_stop",
    "unknown_names",
    "wanted_names",
    "with_entry",
    "write_config_file",
]

# what retire adds to apply's effects: given the host's reload and the sender's fetch, the
# coroutine that takes a domain out of the host and checks that no policy is served any more
Reload = Callable[[], Awaitable[str]]
Fetch = Callable[[str], Awaitable[bytes]]
StopServing = Callable[[Reload, Fetch], Callable[[str], Awaitable[str]]]


class CannotRun(Exception):
    """Something a run needs cannot be read (the TSIG secret); the message says what, in one line."""


# --- what is known: the configuration, the histories, the report evidence ---------------------


@dataclass(frozen=True, slots=True)
class Known:
    """What ``plan``, ``status``, ``apply`` and the web's actions read from the configuration and
    the store (``store_found``: ``False`` when the database does not exist yet)."""

    config: Config
    histories: dict[str, list[Served]]
    evidence: dict[str, Evidence]
    store_found: bool


def wanted_names(config: Config, names: Sequence[str]) -> list[str]:
    """The domains asked for (in the history's spelling), else every configured one."""
    from mtasts.publish.history import history_domain  # noqa: PLC0415

    return [history_domain(n) for n in names] or [d.name for d in config.domains]


def read_histories(
    config: Config,
    history: PublishHistory,
    store: ReportStoreProtocol,
    names: Sequence[str],
    *,
    now: datetime,
    rules: Rules,
) -> Known:
    """Each domain's history and the report evidence for its guards, from an open history and
    store (without ``names``: every configured domain and every one ever published). Store
    trouble is the store's own exception (:class:`~mtasts.store.errors.StoreError`)."""
    from mtasts.publish.rollout import evidence_from_rows, evidence_window, stage_of  # noqa: PLC0415

    wanted = wanted_names(config, names)
    histories: dict[str, list[Served]] = {}
    evidence: dict[str, Evidence] = {}
    for name in dict.fromkeys([*wanted, *([] if names else history.domains())]):
        histories[name] = history.entries(name)
        entry = config.domain(name)
        known = histories[name]
        if stage_of(known) is not Stage.TESTING and (entry is None or entry.mode is not Mode.ENFORCE):
            continue  # the guards read reports only for a domain in testing or asked to enforce
        mx = guard_mx(entry, known)
        since, until = evidence_window(known, now, rules)
        evidence[name] = evidence_from_rows(
            name,
            mx,
            store.policy_rows(since=since, domain=name),
            store.failure_rows(since=since, domain=name),
            since=since,
            until=until,
        )
    return Known(config, histories, evidence, True)


def unknown_names(known: Known) -> list[str]:
    """The names asked for that are neither configured nor ever published: nothing can be planned
    for them (a typo would otherwise plan the removal of nothing)."""
    return [n for n in known.histories if known.config.domain(n) is None and not known.histories[n]]


def guard_mx(entry: DomainConfig | None, history: list[Served]) -> tuple[str, ...]:
    """The MX patterns whose failures the guard counts: the configured policy's, else the served one's."""
    from mtasts.core.policy import parse_policy  # noqa: PLC0415

    if entry is not None and entry.policy is not None:
        return entry.policy.mx
    if history:
        return parse_policy(history[-1].body).mx
    return ()


def with_entry(config: Config, entry: DomainConfig) -> Config:
    """``config`` with ``entry`` in place of the entry of the same name (what a configuration
    edit would read back as): the web plans an edit before making it."""
    return replace(config, domains=tuple(entry if d.name == entry.name else d for d in config.domains))


# --- what a sender sees live -----------------------------------------------------------------


def needs_inspection(known: Known, name: str) -> bool:
    """Whether ``plan``/``apply`` will weigh ``testing → enforce`` for ``name`` (configured
    ``enforce``, not enforced yet): only then is the live inspection (SMTP probes) worth its time."""
    from mtasts.publish.rollout import stage_of  # noqa: PLC0415

    entry = known.config.domain(name)
    return entry is not None and entry.mode is Mode.ENFORCE and stage_of(known.histories[name]) is not Stage.ENFORCE


async def gather_live(
    names: list[str], settings: NetworkSettings, now: datetime, *, inspect: Known | None = None
) -> dict[str, LiveState]:
    """What a sender sees for each domain, through the inspector's adapters: the policy fetched
    as a sender fetches it (DNS, validated HTTPS, no redirect), the ``_mta-sts`` TXT, the MX;
    with ``inspect``, for each domain that :func:`needs_inspection`, the inspector's prediction
    for its ``enforce`` body too (:func:`inspect_enforce`)."""
    import asyncio  # noqa: PLC0415 (the commands that need no network start without it)

    from mtasts.net.dns import DnsClient, LookupStatus  # noqa: PLC0415
    from mtasts.net.https import fetch_policy  # noqa: PLC0415
    from mtasts.publish.rollout import LiveState  # noqa: PLC0415

    dns = DnsClient(settings)

    async def one(name: str) -> LiveState:
        txt, mx, fetched = await asyncio.gather(
            dns.txt(f"_mta-sts.{name}"), dns.mx(name), fetch_policy(name, dns, settings, now=now)
        )
        records: tuple[str, ...] | None = None
        if txt.status is not LookupStatus.FAILED:
            records = tuple(b"".join(strings).decode("utf-8", "replace") for strings in txt.values)
        hosts: tuple[str, ...] | None = None
        if mx.status is not LookupStatus.FAILED:
            hosts = tuple(m.host for m in mx.values if m.host)
        ok = fetched.failure is None and fetched.body is not None
        return LiveState(
            served_body=fetched.body if ok else None,
            fetch_error="" if ok else (fetched.detail or str(fetched.failure)),
            sts_records=records,
            txt_error=txt.detail,
            mx_hosts=hosts,
        )

    states = dict(zip(names, await asyncio.gather(*(one(name) for name in names)), strict=True))
    if inspect is None:
        return states
    wanted = {}
    for name in names:
        entry = inspect.config.domain(name)
        if entry is None or not needs_inspection(inspect, name):
            continue
        policy = entry.policy
        hosts = states[name].mx_hosts
        if policy is None and hosts is not None:  # mx = "from-dns": the policy lists the live MX
            policy = Policy(mode=entry.mode, max_age=entry.max_age, mx=hosts)
        if policy is not None:
            wanted[name] = policy
    inspected = await asyncio.gather(*(inspect_enforce(name, policy, settings) for name, policy in wanted.items()))
    for name, inspection in zip(wanted, inspected, strict=True):
        states[name] = replace(states[name], inspection=inspection)
    return states


def as_if_enforced(observations: Observations, policy: Policy) -> Observations:
    """The observations as a sender would make them once ``policy``, in mode ``enforce``, is
    served and announced: the fetch returns it and the ``_mta-sts`` record exists; the MX
    lookups and probes are the live ones. The inspector's analysis of these is its prediction
    for that policy (each MX: would a sender deliver over validated TLS, or skip it and why),
    with its own codes and fixes: nothing of the verdict is re-derived here."""
    from mtasts.net.dns import Lookup, LookupStatus  # noqa: PLC0415

    enforced = Policy(mode=Mode.ENFORCE, max_age=policy.max_age, mx=policy.mx)
    fetch = replace(
        observations.fetch,
        policy=enforced,
        body=enforced.to_text().encode("utf-8"),
        problems=(),
        failure=None,
        detail="",
        internal_error="",
        status=200,
        content_type="text/plain",
    )
    announced: tuple[bytes, ...] = (b"v=STSv1; id=preview",)
    record = Lookup(f"_mta-sts.{observations.domain}", "TXT", LookupStatus.FOUND, values=(announced,))
    return replace(observations, fetch=fetch, sts_txt=record)


def enforce_blockers(analysis: Analysis) -> tuple[Finding, ...]:
    """The findings of an :func:`as_if_enforced` analysis that would stop mail: errors about
    the MX hosts (TLS, STARTTLS, certificates, not listed, unreachable when no MX is left) and
    trouble on this side that leaves them unknown."""
    from mtasts.core.findings import Area  # noqa: PLC0415
    from mtasts.core.problems import Severity  # noqa: PLC0415

    return tuple(f for f in analysis.findings if f.severity is Severity.ERROR and f.area in (Area.MX, Area.LOCAL))


async def observe(name: str, settings: NetworkSettings) -> Observations:
    """What the inspector gathers about ``name`` (its own lookups, fetch and MX probes), dated
    by the real clock: certificates are judged by the time they are used in."""
    from mtasts.check.inspect import Inspector  # noqa: PLC0415

    return await Inspector(settings).observe(name, datetime.now(UTC))


async def inspect_enforce(name: str, policy: Policy, settings: NetworkSettings) -> LiveInspection:
    """The inspector's prediction for ``policy`` enforced on ``name`` now (the live guard's input)."""
    from mtasts.check.analysis import analyse  # noqa: PLC0415
    from mtasts.publish.rollout import LiveInspection  # noqa: PLC0415

    observations = await observe(name, settings)
    analysis = analyse(as_if_enforced(observations, policy), now=datetime.now(UTC))
    return LiveInspection(analysis.verdict, enforce_blockers(analysis))


# --- carrying a plan out ---------------------------------------------------------------------


def plan_of(
    known: Known,
    name: str,
    live: LiveState,
    *,
    now: datetime,
    rules: Rules,
    reason: str | None = None,
) -> Plan:
    """The plan of ``name`` from what is known and live: the one call of the pure planner that
    ``plan``, ``apply``, ``retire`` and the web make (``reason``: override a refusing guard; the
    ``_mta-sts`` record with ``[dns] ttl`` when the configuration has one)."""
    from mtasts.publish.plan import RECORD_TTL  # noqa: PLC0415
    from mtasts.publish.rollout import plan_rollout  # noqa: PLC0415

    dns = known.config.dns
    return plan_rollout(
        name,
        known.config.domain(name),
        known.histories[name],
        live,
        now=now,
        evidence=known.evidence.get(name),
        rules=rules,
        force_reason=reason,
        record_ttl=RECORD_TTL if dns is None else dns.ttl,
    )


def admin_address(config: Config, given: ListenAddress | None, *, off: bool) -> ListenAddress | None:
    """The running host's admin listener: the one given, else the configuration's ``[server]
    admin``; ``None`` when turned off (the serve step then says to reload by hand)."""
    if given is not None:
        return given
    return None if off else config.server.admin


def reload_via_admin(address: ListenAddress, timeout: float) -> str:
    """``POST /reload`` on the running host's admin listener (what ``reload`` does); a line
    saying what is served, or :class:`~mtasts.publish.apply.StepFailed` saying why not.
    Blocking: callers run it in a thread."""
    import http.client  # noqa: PLC0415
    import json  # noqa: PLC0415

    from mtasts.publish.apply import StepFailed  # noqa: PLC0415

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
    return f"reloaded the policy host: generation {generation}, {served} domain{'' if served == 1 else 's'} served"


def read_tsig_secret(config: Config) -> bytes:
    """The TSIG secret of ``[dns]`` (empty without a ``[dns]`` section); :class:`CannotRun`."""
    from mtasts.publish.rfc2136 import UpdateFailed, read_secret  # noqa: PLC0415

    if config.dns is None:
        return b""
    try:
        return read_secret(config.dns)
    except UpdateFailed as exc:
        raise CannotRun(str(exc)) from None


async def carry_out(
    known: Known,
    names: Sequence[str],
    *,
    history: PublishHistory,
    secret: bytes,
    settings: NetworkSettings,
    admin: ListenAddress | None,
    timeout: float,
    now: datetime,
    clock: Callable[[], datetime],
    rules: Rules,
    reason: str | None,
    stop_serving: StopServing | None = None,
    live: Mapping[str, LiveState] | None = None,
) -> list[Applied]:
    """Plan each of ``names`` (:func:`plan_of` at ``now``) and carry the plan out
    (:func:`~mtasts.publish.apply.apply_plan`) against the real world: the host reloaded through
    its ``admin`` listener, the body fetched as a sender fetches it, the record set, read back
    and deleted by RFC 2136 with ``secret`` where ``[dns]`` is configured, the history written
    to ``history`` (open) and dated by ``clock``. ``live``: what a sender sees, when the caller
    has just gathered it (else it is gathered here). ``stop_serving``: retire's last step."""
    import asyncio  # noqa: PLC0415

    from mtasts.net.dns import DnsClient  # noqa: PLC0415
    from mtasts.net.https import fetch_policy  # noqa: PLC0415
    from mtasts.publish.apply import HostEffects, StepFailed, apply_plan  # noqa: PLC0415
    from mtasts.publish.plan import DnsRecord  # noqa: PLC0415
    from mtasts.publish.rfc2136 import UpdateFailed, delete_txt, query_txt, replace_txt  # noqa: PLC0415

    dns_settings = known.config.dns
    ttl = dns_settings.ttl if dns_settings is not None else None

    def zone_line(record: DnsRecord) -> str:
        return record.to_zone_line() if ttl is None else record.to_zone_line(ttl)

    async def reload() -> str:
        if admin is None:
            raise StepFailed("[server] admin is off: reload the host (SIGHUP), then run the command again")
        return await asyncio.to_thread(reload_via_admin, admin, timeout)

    states = dict(live) if live is not None else await gather_live(list(names), settings, now, inspect=known)
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

    effects = HostEffects(
        reload=reload,
        fetch=fetch,
        history=history,
        publish=publish if dns_settings is not None else None,
        confirm=confirm if dns_settings is not None else None,
        delete=delete if dns_settings is not None else None,
        stop_serving=None if stop_serving is None else stop_serving(reload, fetch),
    )
    results = []
    for name in names:
        plan = plan_of(known, name, states[name], now=now, rules=rules, reason=reason)
        results.append(await apply_plan(plan, effects, now=clock(), zone_line=zone_line))
    return results


# --- the configuration file --------------------------------------------------------------------


def write_config_file(path: Path, text: str) -> None:
    """Replace the configuration file with ``text`` in one step (a temporary file beside it,
    then a rename), so the host never reads half a file; its permissions are kept, and its
    directory is created for a first file. ``OSError`` when it cannot be written."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        handle.write(text)
        temporary = Path(handle.name)
    try:
        if path.exists():
            shutil.copymode(path, temporary)
        else:
            temporary.chmod(0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def enforce_entry(entry: DomainConfig) -> DomainConfig:
    """The entry advancing to ``enforce`` asks for: the same ``max_age`` and MX, mode ``enforce``
    (``max_age`` grows later, by its own guard)."""
    policy = None if entry.policy is None else Policy(mode=Mode.ENFORCE, max_age=entry.max_age, mx=entry.policy.mx)
    return replace(entry, mode=Mode.ENFORCE, policy=policy)


def enforce_config_text(text: str, path: Path | str, domain: str) -> str:
    """``text`` with ``domain``'s entry set to ``mode = "enforce"`` (unchanged when it says so
    already), by the line edit of :mod:`mtasts.publish.retire` and its check that the file
    reads back as exactly that change; :class:`~mtasts.publish.retire.RetireEditError` with
    what to change by hand otherwise."""
    from mtasts.publish.config import ConfigError, parse_config  # noqa: PLC0415
    from mtasts.publish.retire import ENTRY_VALUE_RE, RetireEditError, config_entry, entry_block, same_except  # noqa: PLC0415

    before = parse_config(text, path)
    entry = config_entry(before, domain)
    if entry.mode is Mode.ENFORCE:
        return text
    by_hand = f'set mode = "enforce" in the entry of {entry.name} at line {entry.line} of {path} by hand'
    lines = text.splitlines(keepends=True)
    assert entry.line is not None
    start, end = entry_block(lines, entry.line)
    pattern = ENTRY_VALUE_RE["mode"]
    found = [i for i in range(start, end) if pattern.match(lines[i])]
    if len(found) != 1:
        raise RetireEditError(f"cannot find one mode line: {by_hand}")
    match = pattern.match(lines[found[0]])
    assert match is not None
    lines[found[0]] = match["key"] + f'"{Mode.ENFORCE.value}"' + match["rest"]
    edited = "".join(lines)
    try:
        after = parse_config(edited, path)
    except ConfigError:
        raise RetireEditError(f"the edit would not load: {by_hand}") from None
    if not same_except(before, after, entry.name, enforce_entry(entry)):
        raise RetireEditError(f"the edit would change more than the entry's mode: {by_hand}")
    return edited


# --- retiring ----------------------------------------------------------------------------------


class RetireStop(StrEnum):
    """Why ``retire`` does not start."""

    NEVER_PUBLISHED = "never-published"  # nothing to retire
    REMOVED = "removed"  # done already: nothing left to do
    NOT_CONFIGURED = "not-configured"  # senders may hold its policy: its entry must come back first


def retire_stop(
    name: str, path: Path, history: Sequence[Served], entry: DomainConfig | None
) -> tuple[RetireStop, str] | None:
    """Whether retiring ``name`` cannot start, and the sentence saying why; ``None``: it can."""
    from mtasts.publish.rollout import stage_of  # noqa: PLC0415

    stage = stage_of(history)
    if stage is Stage.DRAFT:
        where = f" (remove its entry from {path})" if entry is not None else ""
        return RetireStop.NEVER_PUBLISHED, f"{name} was never published: nothing to retire{where}"
    if stage is Stage.REMOVED:
        ended = history[-1].until
        assert ended is not None
        return RetireStop.REMOVED, f"removed on {ended:%Y-%m-%d %H:%M} UTC: nothing left to do"
    if entry is None and stage is not Stage.RETIRING:
        return RetireStop.NOT_CONFIGURED, (
            f"{name} is not in {path}, but senders may hold its {history[-1].mode.value} policy: put its entry "
            "back (as it was), then run retire"
        )
    return None


def retire_edit_needed(entry: DomainConfig | None, rules: Rules) -> bool:
    """Whether the entry must first be set to ``mode = "none"`` with the short ``max_age``."""
    return entry is not None and (entry.mode is not Mode.NONE or entry.max_age > rules.retire_max_age)


def retire_progress(history: Sequence[Served], now: datetime) -> tuple[bool, datetime | None]:
    """After a retire run that did all it could: (removed, when the next run can go on; ``None``:
    now, to delete the record and stop serving)."""
    from mtasts.publish.rollout import retire_safe_at, stage_of  # noqa: PLC0415

    if stage_of(history) is Stage.REMOVED:
        return True, None
    safe_at = retire_safe_at(history)
    return False, safe_at if safe_at is not None and safe_at > now else None


def config_stopper(path: Path, now: datetime, write: Callable[[Path, str], None]) -> StopServing:
    """The stop-serving step of retire: comment the entry out of the configuration (``write``
    replaces the file), reload the host, and check from outside, as a sender fetches, that no
    policy is served any more."""

    def bind(reload: Reload, fetch: Fetch) -> Callable[[str], Awaitable[str]]:
        async def stop_serving(name: str) -> str:
            from mtasts.publish.apply import StepFailed  # noqa: PLC0415
            from mtasts.publish.config import ConfigError, parse_config  # noqa: PLC0415
            from mtasts.publish.retire import RetireEditError, remove_config_text  # noqa: PLC0415

            try:
                text = path.read_text("utf-8")
                config = parse_config(text, path)
                edited = None
                if config.domain(name) is not None:
                    edited = remove_config_text(text, path, name, now=now)
                    config = parse_config(edited, path)
            except OSError as exc:
                raise StepFailed(f"cannot read {path}: {exc.strerror or exc}") from None
            except (RetireEditError, ConfigError) as exc:
                raise StepFailed(str(exc)) from None
            if edited is not None:
                try:
                    write(path, edited)
                except OSError as exc:
                    raise StepFailed(f"cannot write {path}: {exc.strerror or exc}") from None
            # the host reloads into a configuration without domains only with [acme] (a host
            # that waits for its first domain); without it, the last domain needs a stop
            can_reload = bool(config.domains) or config.acme is not None
            reloaded = await reload() if can_reload else "no other domain is configured"
            try:
                await fetch(name)
            except StepFailed:
                return f"mta-sts.{name} serves no policy any more ({reloaded}; its entry in {path} is commented out)"
            if not can_reload:
                raise StepFailed(
                    f"mta-sts.{name} still serves a policy: {path} has no other domain, so the host cannot reload "
                    "without it; stop mtasts publish serve, then run retire again"
                )
            raise StepFailed(f"mta-sts.{name} still serves a policy after the reload: does another host serve it?")

        return stop_serving

    return bind
