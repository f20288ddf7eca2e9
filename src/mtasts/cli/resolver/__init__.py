"""``mtasts resolver``: the MTA-STS policy daemon for Postfix (``serve``), its answers (``query``),
its cache (``cache``) and a check of its answers against the installed Postfix (``selftest``).
One module per command; this one only mounts them.

Mounted by :mod:`mtasts.cli.main` as ``mtasts resolver``; runnable alone for tests
(``python -c "from mtasts.cli.resolver import app; app()" serve ...``).
"""

from __future__ import annotations

import typer

from mtasts.cli.resolver import cache, query, selftest, serve
from mtasts.cli.resolver._common import default_db_path

__all__ = ["app", "default_db_path"]

app = typer.Typer(
    help="The sending-side MTA-STS policy daemon for Postfix (smtp_tls_policy_maps = socketmap:...).",
    no_args_is_help=True,
)

app.command("serve")(serve.serve)
app.command("query")(query.query)
app.command("selftest")(selftest.selftest)
app.add_typer(cache.cache_app, name="cache")
