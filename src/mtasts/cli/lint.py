"""``mtasts lint``: check a policy file, an ``_mta-sts`` record or an ``_smtp._tls`` record."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from mtasts.cli.exitcodes import ExitCode, FailOn, exit_for, fail
from mtasts.cli.output import console, print_json, print_problems
from mtasts.core.advice import policy_advice
from mtasts.core.policy import lint_policy
from mtasts.core.problems import ParseError, Problem, Severity
from mtasts.core.record import lint_sts_record
from mtasts.core.tlsrpt_record import TlsRptRecord, lint_tlsrpt_record
from mtasts.i18n import current
from mtasts.i18n.words import counted

app = typer.Typer(
    help="Check a policy file or a TXT record against RFC 8461 / RFC 8460. Exit status 0 when valid, 1 when "
    "invalid (or, with --fail-on warning, when there is a warning), 3 when FILE cannot be read.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
FailOnOption = Annotated[
    FailOn,
    typer.Option(
        "--fail-on",
        help="Exit 1 when a problem is at least this severe: error (default: the input is invalid), "
        "warning (also a risky but valid input), never.",
    ),
]
MAX_POLICY_FILE = 1024 * 1024  # lint reads files; a policy fetch caps bodies at 64 KiB anyway


@app.command("policy")
def lint_policy_command(
    file: Annotated[str, typer.Argument(help="Policy file to check, or '-' for standard input.", metavar="FILE|-")],
    rua: Annotated[
        list[str] | None,
        typer.Option(
            "--rua",
            help="A report URI the domain's _smtp._tls record lists (as given to generate); repeat for several. "
            "Without it, TLS reporting is unknown and only noted.",
        ),
    ] = None,
    json_output: JsonOption = False,
    fail_on: FailOnOption = FailOn.ERROR,
) -> None:
    """Check an MTA-STS policy file (the body of /.well-known/mta-sts.txt).

    Besides the grammar, lint warns about valid but risky values with the rules and codes
    generate uses (policy.max_age.short, policy.tlsrpt.missing). Whether the domain publishes
    TLS reporting is not in the file: --rua says it does (and checks the URIs); without it the
    policy.tlsrpt.missing advice is an info note, not a warning.
    """
    reporting = None if not rua else _check_rua(rua)
    if file == "-":
        data = sys.stdin.buffer.read(MAX_POLICY_FILE + 1)
        subject = "<stdin>"
    else:
        path = Path(file)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_POLICY_FILE + 1)
        except OSError as exc:
            fail(current().text(f"cannot read {file}: {exc.strerror or exc}"))
        subject = file
    if len(data) > MAX_POLICY_FILE:
        fail(current().text(f"{subject} is larger than 1 MiB: not read (a policy file is a few hundred bytes)"))
    policy, problems = lint_policy(data)
    if policy is not None:
        # the owner's advice, as generate gives it; first_deployment is unknown for a file
        problems += policy_advice(policy, reporting=reporting)
    _finish("policy", subject, policy.to_dict() if policy else None, problems, json_output, fail_on)


def _check_rua(rua: list[str]) -> bool:
    """``--rua`` values must be report URIs a ``_smtp._tls`` record can hold (exit 2 if not):
    lint vouches for the reporting they stand for."""
    try:
        TlsRptRecord(rua=tuple(rua))
    except ParseError as exc:
        fail(current().text(f"--rua: {exc.message} ({exc.fix})"), ExitCode.USAGE)
    return True


@app.command("record")
def lint_record_command(
    text: Annotated[str, typer.Argument(help="The _mta-sts TXT record, e.g. 'v=STSv1; id=20261129T081500'.")],
    json_output: JsonOption = False,
    fail_on: FailOnOption = FailOn.ERROR,
) -> None:
    """Check an _mta-sts TXT record (its strings joined, without quotes)."""
    record, problems = lint_sts_record(text)
    parsed = None if record is None else {"id": record.id, "extensions": dict(record.extensions)}
    _finish("record", None, parsed, problems, json_output, fail_on)


@app.command("tlsrpt")
def lint_tlsrpt_command(
    text: Annotated[str, typer.Argument(help="The _smtp._tls TXT record, e.g. 'v=TLSRPTv1; rua=mailto:...'.")],
    json_output: JsonOption = False,
    fail_on: FailOnOption = FailOn.ERROR,
) -> None:
    """Check an _smtp._tls (TLS reporting) TXT record."""
    record, problems = lint_tlsrpt_record(text)
    parsed = None if record is None else {"rua": list(record.rua), "extensions": dict(record.extensions)}
    _finish("tlsrpt", None, parsed, problems, json_output, fail_on)


def _finish(
    kind: str,
    subject: str | None,
    parsed: Mapping[str, object] | None,
    problems: tuple[Problem, ...],
    json_output: bool,
    fail_on: FailOn,
) -> None:
    valid = parsed is not None
    if json_output:
        print_json(
            {
                "kind": kind,
                "valid": valid,
                "parsed": parsed,
                "problems": [p.to_dict() for p in problems],
            }
        )
    else:  # in the language of --lang / LANG (mtasts.i18n); the JSON above stays English
        out, tr = console(), current()
        print_problems(out, problems, subject=subject, tr=tr)
        errors = sum(p.severity is Severity.ERROR for p in problems)
        warnings = sum(p.severity is Severity.WARNING for p in problems)
        name = {"policy": "policy", "record": "_mta-sts record", "tlsrpt": "_smtp._tls record"}[kind]
        if valid and warnings:
            line, style = tr.gettext(f"valid {name} (%(warnings)s)") % {"warnings": counted(warnings, "warning")}, "ok"
        elif valid:
            line, style = tr.gettext(f"valid {name}"), "ok"
        else:
            said = {"errors": counted(errors, "error")}
            line, style = tr.gettext(f"invalid {name}: %(errors)s") % said, "severity.error"
        out.print(Text(f"{'✓' if valid else '✗'} {line}", style=style))
    # an invalid input always carries an error; the check keeps "invalid" failing regardless
    severities = [p.severity for p in problems] + ([] if valid else [Severity.ERROR])
    raise typer.Exit(int(exit_for(severities, fail_on)))
