"""``mtasts resolver query``: the answer Postfix would get for a domain, and why."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.net.settings import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from mtasts.resolver.service import Lookup, PolicyResolver

from mtasts.cli.resolver._common import (
    CaFile,
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
            help="Ask the daemon running on inet:HOST:PORT or unix:PATH (a plain socketmap lookup, as Postfix makes).",
            show_default=False,
        ),
    ] = None,
    overrides: OverridesFile = None,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    https_port: HttpsPort = 443,
    refuse_private: RefusePrivate = False,
) -> None:
    """The answer Postfix would get for DOMAIN, and why (resolved directly, as a fresh daemon would;
    with --listen, the running daemon's answer).

    Exit status 0 with an answer (OK or NOTFOUND), 1 when the answer is fail-open because DNS or HTTPS failed
    (with --listen: when the daemon answers TEMP, TIMEOUT or PERM, or cannot be reached: 3)."""
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
    if listen is not None:
        query_daemon(listen, domain, chosen.value, json_output, timeout)
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


def print_document(document: dict[str, Any]) -> None:
    lines = [
        f"{document['domain']}: {document['answer']}",
        f"  profile     {document['profile']}",
        f"  source      {document['source']}",
    ]
    if document["reason"]:
        lines.append(f"  why         {document['reason']}")
    policy = document["policy"]
    if policy is not None:
        lines.append(
            f"  policy      mode {policy['mode']}, max_age {policy['max_age']}, mx {', '.join(policy['mx']) or '-'}"
        )
        lines.append(f"  id          {policy['id']}")
        lines.append(f"  expires     {document['expires']}")
    if document.get("last_error"):
        lines.append(f"  last error  {document['last_error']}")
    override = document.get("override")
    if override:
        lines.append(f"  override    {override['action']} until {override['expires']}: {override['reason']}")
    sys.stdout.write("\n".join(lines) + "\n")


def query_daemon(listen: str, domain: str, profile: str, json_output: bool, timeout: float) -> None:
    """Ask a running daemon, as Postfix does: one socketmap request, one reply."""
    import asyncio

    from mtasts.cli._run import run_async
    from mtasts.resolver.server import parse_listen

    try:
        spec = parse_listen(listen)
    except ValueError as exc:
        fail(f"--listen: {exc}", ExitCode.USAGE)
    payload = f"{profile} {domain}".encode()

    async def ask() -> str:
        if spec.path is not None:
            reader, writer = await asyncio.open_unix_connection(str(spec.path))
        else:
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
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

    try:
        reply = run_async(asyncio.wait_for(ask(), timeout))
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        fail(f"cannot ask the daemon on {listen}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}")
    answer = reply.rstrip()
    status = answer.partition(" ")[0]
    if json_output:
        print_json({"domain": domain, "profile": profile, "answer": answer, "source": "daemon", "policy": None})
    else:
        sys.stdout.write(f"{domain}: {answer}\n  profile     {profile}\n  source      daemon on {listen}\n")
    if status not in ("OK", "NOTFOUND"):
        raise typer.Exit(int(ExitCode.PROBLEMS))
