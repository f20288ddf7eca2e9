"""``mtasts resolver selftest --postfix``: ask the live daemon through Postfix's own ``postmap -q``
and hold every answer against the grammar of the Postfix that is installed.

The map is the one Postfix uses (the ``socketmap:`` entry of ``postconf -h
smtp_tls_policy_maps``) unless ``--map`` or ``--listen`` name another; the version is
``postconf -h mail_version``. ``postmap`` is Postfix's own client, so a framing or grammar
mistake shows up exactly as Postfix would meet it. Exit 0 when every answer is valid, 1 when
one is not (or is a deferral), 3 when Postfix's tools or the daemon cannot be reached.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.i18n.words import counted

if TYPE_CHECKING:
    from mtasts.resolver.grammar import AnswerProblem, PostfixVersion

# domains that publish enforce or testing MTA-STS policies (checked 2026-12): the default sample
DEFAULT_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com")


@dataclass(slots=True)
class Checked:
    """One ``postmap -q`` and what the grammar says of its answer."""

    key: str
    reply: str  # "OK <policy>", "NOTFOUND", "TEMP <reason>", ...
    problems: list[AnswerProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "answer": self.reply,
            "valid": not self.problems,
            "problems": [{"code": p.code, "message": p.message, "severity": p.severity.value} for p in self.problems],
        }


def selftest(
    domains: Annotated[
        list[str] | None,
        typer.Argument(help=f"Mail domains to ask for [default: {', '.join(DEFAULT_DOMAINS)}].", show_default=False),
    ] = None,
    postfix: Annotated[
        bool, typer.Option("--postfix", help="Ask through Postfix's postmap and check Postfix's grammar. Required.")
    ] = False,
    table: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="The Postfix table to ask, socketmap:inet:HOST:PORT:NAME or socketmap:unix:PATH:NAME "
            "[default: the socketmap of smtp_tls_policy_maps].",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Ask the daemon on inet:HOST:PORT or unix:PATH (with the map name --zone) "
            "instead of the socketmap of smtp_tls_policy_maps.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        str | None,
        typer.Option(
            "--zone",
            help="The map name (zone) to ask with --listen [default: the profile recommended for this Postfix].",
            show_default=False,
        ),
    ] = None,
    postfix_config: Annotated[
        Path | None,
        typer.Option(
            "--postfix-config",
            help="The Postfix configuration directory (postconf -c) [default: Postfix's own].",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds allowed for each postmap -q.")] = 30.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check the daemon's answers as the installed Postfix reads them, and the profile for its version.

    Exit status 0 when every answer is valid for this Postfix, 1 when one is not (or is a deferral),
    3 when postconf, postmap or the daemon cannot be reached."""
    from mtasts.resolver.answers import Profile
    from mtasts.resolver.grammar import parse_postfix_version, profile_error, recommended_profile, socketmap_tables
    from mtasts.resolver.server import parse_listen

    if not postfix:
        fail("selftest: choose what to test: --postfix", ExitCode.USAGE)
    if table is not None and listen is not None:
        fail("--listen: choose one of --map and --listen", ExitCode.USAGE)
    if zone is not None and listen is None:
        fail("--zone: needs --listen", ExitCode.USAGE)
    if table is not None and not table.startswith("socketmap:"):
        fail(f"--map: {table!r} is not a socketmap: table", ExitCode.USAGE)
    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as exc:
            fail(f"--listen: {exc}", ExitCode.USAGE)
    for tool in ("postconf", "postmap"):
        if shutil.which(tool) is None:
            fail(f"selftest --postfix needs Postfix's {tool} (apt-get install postfix)")
    base = ["-c", str(postfix_config)] if postfix_config is not None else []
    if postfix_config is not None and not (postfix_config / "main.cf").is_file():
        fail(f"--postfix-config: {postfix_config} has no main.cf", ExitCode.USAGE)
    version_text = postconf(base, "mail_version")
    try:
        version = parse_postfix_version(version_text)
    except ValueError as exc:
        fail(f"postconf -h mail_version: {exc}")
    recommended = recommended_profile(version)
    origin = "--map"
    if table is None and listen is not None:
        table = f"socketmap:{listen}:{zone or recommended.value}"
        origin = "--listen"
    if table is None:
        found = socketmap_tables(postconf(base, "smtp_tls_policy_maps"))
        if not found:
            fail(
                "smtp_tls_policy_maps names no socketmap: table; give the daemon with --listen or --map", ExitCode.USAGE
            )
        table, origin = found[0], "smtp_tls_policy_maps"
    name = table.rpartition(":")[2]
    keys = [d.strip() for d in (domains or DEFAULT_DOMAINS) if d.strip()]
    keys.append("." + keys[0].lstrip("."))  # Postfix's parent probe: must be NOTFOUND, at once
    results = [ask(base, table, key, version, timeout) for key in keys]
    if not results[-1].problems and results[-1].reply != "NOTFOUND":
        from mtasts.resolver.grammar import AnswerProblem

        results[-1].problems.append(AnswerProblem("parent-probe-answered", "a parent probe must get NOTFOUND"))
    in_use = profile_of_answers([r.reply for r in results]) or (Profile(name) if name in set(Profile) else None)
    advice = None
    if in_use is not None and (why := profile_error(in_use, version)) is not None:
        advice = why
    elif in_use is not None and in_use is not recommended:
        advice = f"Postfix {version.to_text()} takes the {recommended.value} profile: map name {recommended.value}"
    invalid = [r for r in results if r.problems]
    document = {
        "postfix_version": version.to_text(),
        "map": table,
        "map_from": origin,
        "profile_in_use": None if in_use is None else in_use.value,
        "recommended_profile": recommended.value,
        "recommended_map": table.rpartition(":")[0] + ":" + recommended.value,
        "advice": advice,
        "results": [r.to_dict() for r in results],
        "valid": not invalid,
    }
    if json_output:
        print_json(document)
    else:
        print_report(document, results, version)
    if invalid:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _tool(name: str) -> str:
    """The absolute path of one of Postfix's tools (checked to exist before)."""
    return shutil.which(name) or name


def postconf(base: list[str], parameter: str) -> str:
    """``postconf -h PARAMETER``; a failure is one line, exit 3."""
    try:
        done = subprocess.run(  # noqa: S603 (an argument list, no shell)
            [_tool("postconf"), *base, "-h", parameter], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail(f"postconf -h {parameter}: {exc}")
    if done.returncode != 0:
        fail(f"postconf -h {parameter}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return done.stdout.strip()


def ask(base: list[str], table: str, key: str, version: PostfixVersion, timeout: float) -> Checked:
    """``postmap -q KEY TABLE`` and the grammar's verdict. The reply is read back from postmap's
    exit status and warnings: 0 and a value (``OK``), 1 and silence (``NOTFOUND``), 1 and
    "temporary/permanent/timeout error: REASON" (``TEMP``/``PERM``/``TIMEOUT``); a daemon that
    cannot be reached is exit 3."""
    from mtasts.resolver.grammar import check_answer

    try:
        done = subprocess.run(  # noqa: S603 (an argument list, no shell)
            [_tool("postmap"), *base, "-q", key, table], capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        fail(f"postmap -q {key} {table}: no answer within {timeout:g} s")
    except OSError as exc:
        fail(f"postmap: {exc}")
    reply = reply_of(done.returncode, done.stdout, done.stderr)
    if reply is None:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        fail(f"postmap -q {key} {table}: {lines[-1] if lines else f'exit status {done.returncode}'}")
    return Checked(key, reply, check_answer(reply, version))


_ERRORS = {"temporary error: ": "TEMP", "permanent error: ": "PERM", "timeout error: ": "TIMEOUT"}


def reply_of(status: int, stdout: str, stderr: str) -> str | None:
    """The socketmap reply behind a ``postmap -q`` run, or ``None`` when it got none."""
    if status == 0:
        return "OK " + stdout.rstrip("\n")
    for line in stderr.splitlines():
        for marker, word in _ERRORS.items():
            if "socketmap server " + marker in line:
                return f"{word} {line.partition(marker)[2].strip()}"
    if status == 1 and not stderr.strip():
        return "NOTFOUND"
    return None


def profile_of_answers(replies: list[str]) -> Any:
    """The answer profile the ``OK`` replies were written in, or ``None`` without one."""
    from mtasts.resolver.answers import Profile

    policies = [reply[3:] for reply in replies if reply.startswith("OK ")]
    if not policies:
        return None
    if any(" policy_type=" in p for p in policies):
        return Profile.POSTFIX_TLSRPT
    if any(" servername=" in p for p in policies):
        return Profile.POSTFIX
    return Profile.POSTFIX_LEGACY


def print_report(document: dict[str, Any], results: list[Checked], version: PostfixVersion) -> None:
    """The report in the reader's language; keys, replies, codes and the map stay as they are."""
    from mtasts.cli.output import padded
    from mtasts.i18n import current

    tr = current()
    shown = version.to_text()
    width = max(len(r.key) for r in results)
    head = {"version": shown, "map": document["map"], "origin": document["map_from"]}
    lines = [tr.gettext("Postfix %(version)s, map %(map)s (from %(origin)s)") % head]
    for result in results:
        status, _, data = result.reply.partition(" ")
        verdict = padded("invalid" if result.problems else "valid", 9)
        lines.append(f"  {result.key:<{width}}  {verdict}{status}{' ' + data if data else ''}")
        lines += [f"  {'':<{width}}           {p.code}: {tr.text(p.message)}" for p in result.problems]
    bad = sum(1 for r in results if r.problems)
    if bad:
        said = {"counted": counted(bad, "answer"), "total": len(results), "version": shown}
        lines.append(tr.gettext("%(counted)s of %(total)s not valid for Postfix %(version)s") % said)
    else:
        said = {"version": shown, "counted": counted(len(results), "lookup")}
        lines.append(tr.gettext("every answer valid for Postfix %(version)s (%(counted)s)") % said)
    in_use = document["profile_in_use"] or tr.gettext("unknown (no OK answer)")
    said = {"in_use": in_use, "version": shown, "recommended": document["recommended_profile"]}
    lines.append(tr.gettext("profile in use: %(in_use)s; recommended for %(version)s: %(recommended)s") % said)
    if document["advice"]:
        said = {"advice": tr.text(document["advice"]), "map": document["recommended_map"]}
        lines.append(tr.gettext("advice: %(advice)s; smtp_tls_policy_maps = %(map)s") % said)
    sys.stdout.write("\n".join(lines) + "\n")
