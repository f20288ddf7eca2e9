"""``mtasts publish``: host MTA-STS policies (``serve``), reload the running host (``reload``),
plan the roll-out of each domain (``plan``), carry it out (``apply``) and show where each stands
(``status``). One module per command; this one only mounts them.

Mounted by :mod:`mtasts.cli.main` as ``mtasts publish``; runnable alone for tests
(``python -c "from mtasts.cli.publish import app; app()" serve ...``).
"""

from __future__ import annotations

import typer

from mtasts.cli.publish import apply, export, init, plan, retire, serve, verify

__all__ = ["app"]

app = typer.Typer(
    help="Host MTA-STS policies for many domains: serve them, reload the running host, plan their roll-out.",
    no_args_is_help=True,
)
app.command("serve")(serve.serve_command)
app.command("reload")(serve.reload_command)
app.command("plan")(plan.plan_command)
app.command("status")(plan.status_command)
app.command("apply")(apply.apply_command)
app.command("init")(init.init_command)
app.command("retire")(retire.retire_command)
app.command("export")(export.export_command)
app.command("verify")(verify.verify_command)
