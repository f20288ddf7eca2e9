"""``mtasts resolver query``: the answer Postfix would get for a domain, and why."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.core.untrusted import printable
from mtasts.i18n import current
from mtasts.net.settings import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from mtasts.resolver.server import ListenSpec
    from mtasts.resolver.service import Lookup, PolicyResolver

from mtasts.cli.output import label_width, padded
from mtasts.cli.resolver._common import (
    CaFile,
    ConfigFile,
    FailOpenTemp,
    HttpsPort,
    Nameserver,
    OverridesFile,
    RefusePrivate,
    StrictTesting,
    Timeout,
    fmt_time,
    load_overrides,
    network_settings,
    read_config,
    resolver_settings,
)


def query(
    domain: Annotated[str, typer.Argument(help="The mail domain (as Postfix would ask for it).", show_default=False)],
    profile: Annotated[
        str, typer.Option("--profile", help="The answer profile: postfix, postfix-tlsrpt or postfix-legacy.")
    ] = "postfix",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Ask the daemon running on inet:HOST:PORT or unix:PATH (a plain socketmap lookup, as Postfix makes) "
            "[default: the listen addresses of the configuration file].",
            show_default=False,
        ),
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Resolve DOMAIN here, as a freshly started daemon would, instead of asking the running daemon "
            "(implied by --overrides, --strict-testing, --fail-open-temp, --nameserver, --ca-file, --https-port "
            "and --refuse-private).",
        ),
    ] = False,
    config_file: ConfigFile = None,
    overrides: OverridesFile = None,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    https_port: HttpsPort = 443,
    refuse_private: RefusePrivate = False,
) -> None:
    """The answer the running daemon gives Postfix for DOMAIN (asked on --listen, else on the
    configuration file's listen addresses); with --direct, resolved here, and why.

    Exit status 0 with an answer (OK or NOTFOUND), 1 when the daemon answers TEMP, TIMEOUT or PERM,
    3 when no daemon can be reached (with --direct: 1 when the answer is fail-open because DNS or HTTPS failed)."""
    from mtasts.cli._run import run_async
    from mtasts.resolver.answers import Profile
    from mtasts.resolver.keys import classify_key
    from mtasts.resolver.service import PolicyResolver, Source
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.store import MemoryStore

    try:
        chosen = Profile(profile)
    except ValueError:
        fail(f"--profile: {profile!r} is not one of {', '.join(p.value for p in Profile)}", ExitCode.USAGE)
    implied = [
        name
        for name, given in (
            ("--overrides", overrides is not None),
            ("--strict-testing", strict_testing),
            ("--fail-open-temp", fail_open_temp),
            ("--nameserver", nameserver is not None),
            ("--ca-file", ca_file is not None),
            ("--https-port", https_port != 443),
            ("--refuse-private", refuse_private),
        )
        if given
    ]
    if listen is not None and (direct or implied):
        fail(f"{'--direct' if direct else implied[0]}: resolves here, not with --listen (choose one)", ExitCode.USAGE)
    if not direct and not implied:
        query_daemon(listen, config_file, domain, chosen.value, json_output, timeout)
        return
    network = network_settings(nameserver, ca_file, timeout, https_port, refuse_private)
    settings = resolver_settings(strict_testing, fail_open_temp, timeout)
    resolver = PolicyResolver(NetworkSources(network), MemoryStore(), settings)
    if overrides is not None:
        resolver.overrides = load_overrides(overrides)

    async def run() -> Lookup | None:
        name = classify_key(domain).domain
        if name is None:
            return None
        try:
            return await resolver.lookup(name, chosen, key=domain)
        finally:
            await resolver.stop()

    found = run_async(run())
    if found is None:
        document: dict[str, Any] = {
            "domain": domain,
            "profile": chosen.value,
            "answer": "NOTFOUND",
            "source": Source.NOT_A_DOMAIN.value,
            "reason": "not a mail domain (parent probe, address, [host] or host:port): answered at once",
            "policy": None,
            "id": None,
            "fetched": None,
            "expires": None,
            "last_error": None,
        }
    else:
        document = lookup_document(found, resolver)
    if json_output:
        print_json(document)
    else:
        print_document(document)
    if document["source"] == Source.FAIL_OPEN.value:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def lookup_document(found: Lookup, resolver: PolicyResolver) -> dict[str, Any]:
    entry = found.entry
    policy = None if entry is None or entry.policy is None else entry.policy
    reply = found.reply.decode()
    payload = reply[reply.index(":") + 1 : -1].rstrip()
    return {
        "domain": found.domain,
        "profile": found.profile.value,
        "answer": payload,
        "source": found.source.value,
        "reason": None if found.answer.reason is None else found.answer.reason.value,
        "policy": None
        if policy is None
        else {
            "mode": policy.mode.value,
            "max_age": policy.max_age,
            "mx": list(policy.mx),
            "id": entry.policy_id if entry else None,
        },
        "id": None if entry is None else entry.policy_id,
        "fetched": fmt_time(entry.fetched_at) if entry is not None and entry.policy is not None else None,
        "expires": fmt_time(entry.expires_at) if entry is not None and entry.policy is not None else None,
        "mx_hosts": [] if entry is None else list(entry.mx_hosts),
        "last_error": (entry.last_error or None) if entry is not None else None,
        "override": None if found.override is None else found.override.to_dict(),
    }


_LABELS = ("profile", "source", "why", "policy", "id", "expires", "last error", "override")


def print_document(document: dict[str, Any]) -> None:
    """The answer and why, in the reader's language (the answer itself, codes and names stay)."""
    from mtasts.i18n import current

    tr = current()
    width = label_width(_LABELS, 12)
    lines = [
        f"{document['domain']}: {document['answer']}",
        f"  {padded('profile', width)}{document['profile']}",
        f"  {padded('source', width)}{document['source']}",
    ]
    if document["reason"]:
        reason = document["reason"]
        lines.append(f"  {padded('why', width)}{tr.text(reason) if document['source'] == 'not-a-domain' else reason}")
    policy = document["policy"]
    if policy is not None:
        shown = {"mode": policy["mode"], "max_age": policy["max_age"], "mx": ", ".join(policy["mx"]) or "-"}
        lines.append(
            f"  {padded('policy', width)}{tr.gettext('mode %(mode)s, max_age %(max_age)s, mx %(mx)s') % shown}"
        )
        lines.append(f"  {padded('id', width)}{policy['id']}")
        lines.append(f"  {padded('expires', width)}{document['expires']}")
    if document.get("last_error"):
        lines.append(f"  {padded('last error', width)}{tr.text(document['last_error'])}")
    override = document.get("override")
    if override:
        said = {"action": override["action"], "until": override["expires"], "why": override["reason"]}
        lines.append(f"  {padded('override', width)}{tr.gettext('%(action)s until %(until)s: %(why)s') % said}")
    sys.stdout.write("\n".join(map(printable, lines)) + "\n")  # the last error quotes the domain's servers


def daemon_addresses(listen: str | None, config_file: Path | None) -> tuple[list[ListenSpec], str]:
    """Where to ask the daemon: ``--listen``, else the listen addresses of the configuration
    file (``--config``, or the default file if it exists, else the daemon's default address);
    and where they came from, for messages. An ``inet:`` address on every interface is asked
    on loopback."""
    from mtasts.resolver.server import parse_listen

    if listen is not None:
        try:
            return [parse_listen(listen)], "--listen"
        except ValueError as exc:
            fail(f"--listen: {exc}", ExitCode.USAGE)
    config = read_config(config_file)
    addresses = "listen address" if len(config.listen) == 1 else "listen addresses"
    where = f"the {addresses} of {config.path}" if config.path else f"the daemon's default {addresses}"
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (a listener on every address)
    specs = [dataclasses.replace(s, host=loopback.get(s.host or "", s.host)) for s in config.listen]
    return specs, where


def query_daemon(
    listen: str | None, config_file: Path | None, domain: str, profile: str, json_output: bool, timeout: float
) -> None:
    """Ask the running daemon, as Postfix does: one socketmap request, one reply, on the first
    of its addresses that accepts the connection."""
    import asyncio

    from mtasts.cli._run import run_async

    specs, where = daemon_addresses(listen, config_file)
    payload = f"{profile} {domain}".encode()

    async def connect(spec: ListenSpec) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if spec.path is not None:
            return await asyncio.open_unix_connection(str(spec.path))
        return await asyncio.open_connection(spec.host, spec.port)

    async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        try:
            writer.write(b"%d:%s," % (len(payload), payload))
            await writer.drain()
            length = await reader.readuntil(b":")
            data = await reader.readexactly(int(length[:-1]))
            if await reader.readexactly(1) != b",":
                raise ValueError("the reply is not a netstring")
            return data.decode("utf-8", "replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def first_reachable() -> tuple[ListenSpec, str] | list[str]:
        refused = []
        for spec in specs:
            try:
                streams = await asyncio.wait_for(connect(spec), timeout)
            except (OSError, TimeoutError) as exc:
                refused.append(f"{spec.to_text()}: {_why(exc)}")
                continue
            try:
                return spec, await asyncio.wait_for(ask(*streams), timeout)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                fail(f"cannot ask the daemon on {spec.to_text()}: {_why(exc)}")
        return refused

    asked = run_async(first_reachable())
    if isinstance(asked, list):
        if listen is not None:
            nothing = f"cannot ask the daemon on {asked[0]}"
        else:
            nothing = f"no daemon is running on {where} ({'; '.join(asked)})"
        fail(f"{nothing}: start mtasts resolver serve, or resolve here with --direct")
    spec, reply = asked
    shown = listen if listen is not None else spec.to_text()
    answer = reply.rstrip()
    status = answer.partition(" ")[0]
    if json_output:
        print_json({"domain": domain, "profile": profile, "answer": answer, "source": "daemon", "policy": None})
    else:
        source = current().gettext("daemon on %(where)s") % {"where": shown}
        width = label_width(_LABELS, 12)
        sys.stdout.write(
            f"{domain}: {answer}\n  {padded('profile', width)}{profile}\n  {padded('source', width)}{source}\n"
        )
    if status not in ("OK", "NOTFOUND"):
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
