"""``mtasts generate``: the policy file and DNS records to publish for a domain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import console, print_json, print_problems
from mtasts.core.policy import MAX_AGE_LIMIT, Mode
from mtasts.core.problems import ParseError
from mtasts.i18n import current
from mtasts.publish.plan import POLICY_FILE, ZONE_FILE, Deployment, plan_deployment


def generate(
    domain: Annotated[str, typer.Option("--domain", "-d", help="The mail domain (Unicode names are converted).")],
    mx: Annotated[
        list[str],
        typer.Option("--mx", help="An MX host name or '*.' pattern allowed to receive mail; repeat for each MX."),
    ],
    mode: Annotated[Mode, typer.Option("--mode", help="testing: deliver and report; enforce: refuse invalid MX.")],
    max_age: Annotated[
        int,
        typer.Option(
            "--max-age", min=0, max=MAX_AGE_LIMIT, help="Seconds senders cache the policy (604800 = one week)."
        ),
    ],
    rua: Annotated[
        list[str] | None,
        typer.Option("--rua", help="Where TLS reports go: mailto:addr or https://url; repeat for several."),
    ] = None,
    existing: Annotated[
        bool, typer.Option("--existing", help="The domain already runs MTA-STS (no first-deployment warning).")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help=f"Also write {POLICY_FILE} (the exact bytes to serve) and {ZONE_FILE} (zone-file lines) "
            "into this existing folder.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON document.")] = False,
) -> None:
    """Print the policy file and the DNS records to publish for DOMAIN, as plain text to copy.

    The policy id is the current UTC time; publish the policy first, then the _mta-sts record,
    and change the id whenever the policy changes. With --output-dir, mta-sts.txt holds the
    policy exactly as https://mta-sts.DOMAIN/.well-known/mta-sts.txt must serve it (CRLF line
    ends) and zone.txt the records in zone-file syntax, with the mta-sts.DOMAIN address
    line to fill in. Exit status 2 when an option's value is invalid (each problem is printed,
    with its fix), 3 when the folder does not exist or cannot be written; warnings do not
    change the exit status.
    """
    try:
        plan = plan_deployment(
            domain, mx, mode, max_age, rua or (), now=datetime.now(UTC), first_deployment=not existing
        )
    except ParseError as exc:
        if json_output:
            print_json({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            print_problems(console(stderr=True), exc.problems, tr=current())
        raise typer.Exit(int(ExitCode.USAGE)) from exc  # the values given on the command line
    written = {} if output_dir is None else _write_files(plan, output_dir)
    if json_output:
        print_json({**plan.to_dict(), "written": [str(path) for path in written.values()]})
    else:
        _render(plan, written)


def _write_files(plan: Deployment, folder: Path) -> dict[str, Path]:
    """Write :meth:`Deployment.files` into ``folder``, which must exist: it is not created, as
    for ``report export -o``, so a typo in the path leaves no folder behind. Files already
    there are replaced (a new plan has a new policy id)."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist (create it first)"
        fail(current().text(f"cannot write to {folder}: it {what}"))
    written: dict[str, Path] = {}
    for name, data in plan.files().items():
        path = folder / name
        try:
            path.write_bytes(data)
        except OSError as exc:
            fail(current().text(f"cannot write {path}: {exc.strerror or exc}"))
        written[name] = path
    return written


def _render(plan: Deployment, written: dict[str, Path]) -> None:
    """The plan as plain text: everything meant to be copied (the policy, the zone-file lines)
    starts at column 0 with no box, border or indentation around it, since an indented policy
    line is invalid and an indented zone-file line belongs to the previous owner name. The
    explanations are in the language of --lang / LANG (the ``findings`` catalogue of
    :mod:`mtasts.i18n`); what is meant to be copied stays as it is."""
    out, tr = console(), current()

    def say(text: str = "", style: str | None = None) -> None:
        out.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def words(message_id: str, **values: object) -> str:
        return tr.gettext(message_id) % values

    host = plan.policy_host
    say(words("MTA-STS for %(domain)s", domain=plan.domain), style="heading")
    say()
    say(
        words(
            "1. Point %(host)s at an HTTPS server: an A and/or AAAA record for its address, or a\n"
            "   CNAME to its name. That server needs a certificate valid for %(host)s.",
            host=host,
        )
    )
    say()
    say(
        words(
            "2. Serve this file at %(url)s\n"
            "   (Content-Type: text/plain, no redirect; lines end in CRLF, as --output-dir writes it):",
            url=plan.policy_url,
        )
    )
    say()
    for line in plan.policy.to_text().split("\r\n")[:-1]:
        say(line)
    say()
    say(words("3. Once the policy is reachable, publish these DNS records (zone-file lines, absolute names):"))
    say()
    for record in plan.records:
        say(record.to_zone_line())
    if written:
        say()
        say(words("Wrote %(file)s: serve it as it is.", file=written[POLICY_FILE]))
        say(
            words(
                "Wrote %(file)s: add it to the zone of %(domain)s, with the %(host)s line filled in.",
                file=written[ZONE_FILE],
                domain=plan.domain,
                host=host,
            )
        )
    if plan.warnings:
        out.print()
        print_problems(out, plan.warnings, tr=tr)
