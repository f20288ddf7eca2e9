"""``mtasts report summary``: what the stored reports say, per domain and day, and who fails."""

from __future__ import annotations

from rich.markup import escape

from mtasts.cli.output import console, print_json
from mtasts.cli.report._common import (
    DaysOption,
    DbOption,
    DomainOption,
    JsonOption,
    normalise_domain,
    reading,
    since_days,
    today,
)
from mtasts.cli.report.tables import domains_table, result_types_table, senders_table
from mtasts.i18n import current
from mtasts.report.analysis import (
    failing_senders_rollup,
    readiness_rollup,
    summarise_rollup,
)


def summary_command(
    domain: DomainOption = None,
    days: DaysOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """What the stored reports say: success per domain and day, who fails, how, and since when."""
    since, wanted = since_days(days), normalise_domain(domain)
    with reading(db) as store:
        rollup = store.rollup(since=since, domain=wanted)  # summed in the database
    summaries = summarise_rollup(rollup)
    senders = failing_senders_rollup(rollup)
    until = today() if days is not None else None
    verdicts = {v.policy_domain: v for v in readiness_rollup(rollup, until=until, days=days or 30)}
    if json_output:
        print_json(
            {
                "since": None if since is None else since.isoformat(),
                "domains": [{**s.to_dict(), "readiness": verdicts[s.policy_domain].to_dict()} for s in summaries],
                "failing_senders": [issue.to_dict() for issue in senders],
            }
        )
        return
    out, tr = console(), current()
    if not summaries:
        where = escape(store.display_url)
        selection = " for this selection" if since or wanted else ""
        out.print(tr.gettext(f"No reports stored{selection} in %(where)s.") % {"where": where}, soft_wrap=True)
        out.print(tr.gettext("Store some with [heading]mtasts report ingest PATH[/] (files, e-mails, mbox, Maildir)."))
        return
    out.print(domains_table(summaries, verdicts))
    if senders:
        out.print(senders_table(senders))
        out.print(result_types_table(summaries))
    else:
        out.print(f"[ok]{tr.gettext('No sender reported a failed TLS session.')}[/]")
