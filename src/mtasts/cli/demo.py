"""``mtasts demo``: an offline first look at MTA-STS, on the loopback lab.

Brings up the lab for a few correct and broken domains, looks up each ``_mta-sts`` record
through the lab's nameserver, fetches each policy from its policy host, and shows what
mtasts' own parsers make of them beside what the scenario expects. (When ``mtasts check``
exists, the demo will show its findings instead.)
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Annotated

import dns.asyncresolver
import dns.exception
import dns.resolver
import typer
from rich.table import Table
from rich.text import Text

from mtasts.cli.output import console, print_problems
from mtasts.core.policy import Policy, lint_policy
from mtasts.core.problems import ParseError, Problem
from mtasts.core.record import StsRecord, select_sts_record
from mtasts.lab.scenarios import CATALOGUE
from mtasts.lab.world import Lab

DEFAULT_SCENARIOS = (
    "enforce-ok",
    "testing-ok",
    "split-txt-ok",
    "cname-policy-host-ok",
    "no-sts-record",
    "multiple-sts-records",
    "sts-record-bad-id",
    "policy-404",
    "policy-redirect",
    "policy-cert-expired",
    "policy-syntax",
    "mx-not-in-policy",
)
POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024
TIMEOUT = 2.0


@dataclass(slots=True)
class _Seen:
    """What the demo saw for one domain."""

    domain: str
    scenario: str
    record_text: str = ""
    record: StsRecord | None = None
    policy_text: str = ""
    policy: Policy | None = None
    problems: list[Problem] = field(default_factory=list)


def demo(
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="A scenario to show (repeat for several). See 'mtasts lab list'."),
    ] = None,
) -> None:
    """Bring up the loopback lab and show what mtasts sees on correct and broken domains."""
    names = tuple(scenario or DEFAULT_SCENARIOS)
    unknown = [name for name in names if name not in CATALOGUE]
    if unknown:
        console(stderr=True).print(f"[severity.error]error:[/] unknown scenario(s): {', '.join(unknown)}")
        raise typer.Exit(2)
    seen = asyncio.run(_look(names))
    _show(seen)


async def _look(names: tuple[str, ...]) -> list[_Seen]:
    async with Lab(names) as lab:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [lab.nameserver[0]]
        resolver.port = lab.nameserver[1]
        resolver.lifetime = TIMEOUT
        context = ssl.create_default_context(cafile=str(lab.ca_file))
        return list(
            await asyncio.gather(
                *(_look_one(domain, name, resolver, context, lab.https_port) for domain, name in lab.plan.domains)
            )
        )


async def _look_one(
    domain: str, scenario: str, resolver: dns.asyncresolver.Resolver, context: ssl.SSLContext, port: int
) -> _Seen:
    seen = _Seen(domain, scenario)
    try:
        answer = await resolver.resolve(f"_mta-sts.{domain}", "TXT")
        strings = [tuple(s.decode("latin-1") for s in rr.strings) for rr in answer]
        seen.record_text = "\n".join("".join(parts) for parts in strings)
        seen.record = select_sts_record(strings)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        seen.record_text = "(no TXT record)"
    except dns.exception.DNSException as exc:
        seen.record_text = f"(lookup failed: {type(exc).__name__})"
    except ParseError as exc:
        seen.problems.extend(exc.problems)
    seen.policy_text = await _fetch(seen, resolver, context, port)
    return seen


async def _fetch(seen: _Seen, resolver: dns.asyncresolver.Resolver, context: ssl.SSLContext, port: int) -> str:
    """GET the policy without following redirects; a one-line description of the outcome."""
    host = f"mta-sts.{seen.domain}"
    try:
        address = (await resolver.resolve(host, "A"))[0].address
    except dns.exception.DNSException as exc:
        return f"{host} does not resolve ({type(exc).__name__})"
    writer = None
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=host)
            writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            response = await reader.read(MAX_POLICY_BYTES + 4096)
    except ssl.SSLCertVerificationError as exc:
        return f"certificate rejected: {exc.verify_message}"
    except (OSError, TimeoutError) as exc:
        return f"fetch failed: {exc!r}"
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                writer.transport.abort()
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if len(status) < 2 or status[1] != "200":
        location = headers.get("location")
        return f"HTTP {' '.join(status[1:])}" + (f" -> {location}" if location else "")
    content_type = headers.get("content-type", "")
    if len(body) > MAX_POLICY_BYTES:
        return f"body larger than {MAX_POLICY_BYTES // 1024} KiB"
    policy, problems = lint_policy(body)
    seen.policy = policy
    seen.problems.extend(problems)
    note = "" if content_type.startswith("text/plain") else f"  (Content-Type {content_type})"
    return body.decode("utf-8", "replace").strip() + note


def _show(seen: list[_Seen]) -> None:
    out = console()
    table = Table(title="mtasts demo: what the lab publishes and what mtasts makes of it", show_lines=True)
    table.add_column("domain / scenario", style="heading")
    table.add_column("_mta-sts record")
    table.add_column("policy")
    table.add_column("expected")
    for item in seen:
        scenario = CATALOGUE[item.scenario]
        record = Text(item.record_text or "")
        record.append(
            "\nvalid" if item.record else "\nno usable record", style="ok" if item.record else "severity.error"
        )
        policy = Text(item.policy_text[:300])
        if item.policy:
            policy.append(f"\nvalid, mode {item.policy.mode.value}", style="ok")
        expected = Text(scenario.expect.delivery.value, style="heading")
        for code in sorted(scenario.expect.findings):
            expected.append(f"\n{code}", style="code")
        table.add_row(f"{item.domain}\n[dim]{scenario.description}[/]", record, policy, expected)
    out.print(table)
    for item in seen:
        if item.problems:
            out.print(f"[heading]{item.domain}[/]")
            print_problems(out, item.problems)
