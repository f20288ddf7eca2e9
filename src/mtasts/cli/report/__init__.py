"""``mtasts report``: read, store and understand TLSRPT reports (RFC 8460).

One module per sub-command; this one only mounts them, so each command's module imports
what it needs (the store, IMAP, the server) when it runs."""

from __future__ import annotations

import typer

from mtasts.cli.report import digest, export, ingest, parse, serve, summary
from mtasts.cli.report.digest import parse_smtp_server

__all__ = ["app", "parse_smtp_server"]

app = typer.Typer(
    help="Read, store and understand TLSRPT reports (RFC 8460): parse, ingest, summary, export, serve, digest.",
    no_args_is_help=True,
)
app.command("parse")(parse.parse_command)
app.command("ingest")(ingest.ingest_command)
app.command("summary")(summary.summary_command)
app.command("export")(export.export_command)
app.command("serve")(serve.serve_command)
app.command("digest")(digest.digest_command)
