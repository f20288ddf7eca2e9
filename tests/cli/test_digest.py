"""``mtasts report digest``, run as a cron job would run it: a crontab line through ``/bin/sh``
with cron's bare environment, mailing a real submission server (aiosmtpd with STARTTLS and
AUTH, a trustme certificate), and the mistakes a cron user makes, each one line and no mail.

The reports are dated relative to today (UTC), as they are in a real store: the period ends
today, and silence is counted up to today."""

from __future__ import annotations

import getpass
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
import typer
from typer.testing import CliRunner

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.main import app
from mtasts.cli.report.digest import smtp_settings
from mtasts.net.mailer import SmtpSecurity
from tests.cli.test_mistakes import assert_one_line
from tests.net.test_mailer import PASSWORD, USER, free_port, submission_server
from tests.report.test_mail import BODY

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(smtp_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digest-ca") / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def report(org: str, on: date, domain: str = "example.com", ok: int = 1000, failed: int = 0) -> dict[str, Any]:
    """A TLSRPT report (RFC 8460 §4) of one organisation for one policy domain and day."""
    policy: dict[str, Any] = {
        "policy": {"policy-type": "sts", "policy-domain": domain},
        "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
    }
    if failed:
        policy["failure-details"] = [
            {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.9", "failed-session-count": failed}
        ]
    return {
        "organization-name": org,
        "date-range": {"start-datetime": f"{on}T00:00:00Z", "end-datetime": f"{on}T23:59:59Z"},
        "contact-info": f"tlsrpt@{org.split(maxsplit=1)[0].lower()}.example",
        "report-id": f"{org}-{domain}-{on}",
        "policies": [policy],
    }


def store(tmp_path: Path, reports: Iterable[dict[str, Any]]) -> Path:
    """A database holding ``reports``, stored by ``mtasts report ingest`` as a user would."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    for number, item in enumerate(reports):
        (folder / f"{number}.json").write_text(json.dumps(item))
    db = tmp_path / "reports.sqlite3"
    result = CliRunner().invoke(app, ["report", "ingest", "--db", str(db), str(folder)])
    assert result.exit_code == 0, result.output
    return db


def a_week_of_trouble(tmp_path: Path) -> Path:
    """Google reports daily and is fine; Microsoft reported daily and stopped 4 days ago; Yahoo
    started failing yesterday; example.org has had no report for 5 days."""
    reports = [report("Google Inc.", day(-n)) for n in range(1, 10)]
    reports += [report("Microsoft Corporation", day(-n), ok=300) for n in range(4, 13)]
    reports += [report("Yahoo", day(-1), ok=0, failed=40)]
    reports += [report("Google Inc.", day(-n), "example.org", ok=20) for n in range(5, 12)]
    return store(tmp_path, reports)


def alert_lines() -> list[str]:
    return [
        f"  ! example.org: no report at all for 5 days (the newest covers {day(-5)})",
        f"  ! Microsoft Corporation stopped reporting for example.com: no report for 4 days; "
        f"it reported on 7 of the 7 days to {day(-4)}",
        "  ! example.com: 40 failed sessions, 3.8% of all (before: 0.0%)",
        "  ! Yahoo newly fails to deliver to example.com over TLS: 40 sessions (certificate-expired)",
    ]


def mtasts_script() -> Path:
    """The console script of the environment running the tests, as a crontab names it."""
    script = Path(sys.executable).with_name("mtasts")
    if not script.is_file():
        pytest.fail(f"no mtasts script beside {sys.executable}: install the package (pip install -e .)")
    return script


# --- the acceptance: a crontab line mails a real submission server -------------------------------


def test_a_crontab_line_mails_the_digest_through_starttls_and_auth(
    tmp_path: Path, smtp_ca: trustme.CA, ca_file: Path
) -> None:
    db = a_week_of_trouble(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".mtasts-smtp-password").write_text(PASSWORD + "\n")  # as `echo ... > file` leaves it
    (home / ".mtasts-smtp-password").chmod(0o600)
    (home / "smtp-ca.pem").write_bytes(ca_file.read_bytes())
    with submission_server(smtp_ca) as server:
        command = " ".join(
            [
                shlex.quote(str(mtasts_script())),
                "report digest --exit-status",
                f"--db {shlex.quote(str(db))}",
                "--mail-to postmaster@example.com --mail-from 'TLSRPT digest <mtasts@example.com>'",
                f"--smtp 127.0.0.1:{server.port} --smtp-user {USER}",
                "--smtp-password-file $HOME/.mtasts-smtp-password --smtp-ca-file $HOME/smtp-ca.pem",
            ]
        )
        crontab = f"15 6 * * * {command}\n"
        assert "%" not in crontab  # cron would turn it into a newline
        part = crontab.split(None, 5)[5].rstrip("\n")  # what cron hands to the shell
        cron = subprocess.run(
            ["/bin/sh", "-c", part],
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh", "LOGNAME": getpass.getuser()},
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,  # no controlling terminal, as under cron
            check=False,
            timeout=120,
        )
    assert (cron.returncode, cron.stdout, cron.stderr) == (1, "", "")  # alerts, and nothing for cron to mail
    assert server.logins == [(USER, PASSWORD, True)]  # logged in inside TLS; the newline is not the password
    (mail,) = server.delivered
    assert (mail.authenticated, mail.over_tls) == (True, True)
    assert (mail.mail_from, mail.rcpt_tos) == ("mtasts@example.com", ["postmaster@example.com"])
    message = mail.message
    assert message["From"] == "TLSRPT digest <mtasts@example.com>"
    assert message["To"] == "postmaster@example.com"
    assert message["Subject"] == f"[4 alerts] TLSRPT digest {day(-1)} to {TODAY}"
    sent = parsedate_to_datetime(message["Date"])
    assert sent.tzinfo is not None
    assert abs(datetime.now(UTC) - sent) < timedelta(minutes=2)
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message["Message-ID"])
    body = message.get_content().splitlines()
    assert body[0] == f"TLSRPT digest {day(-1)} to {TODAY} (baseline from {day(-8)})"
    assert body[2:7] == ["ALERTS (4):", *alert_lines()]
    assert "example.com: 1000 ok, 40 failed, 96.2% success (before: 100.0%)" in body


def test_the_password_from_the_environment(tmp_path: Path, smtp_ca: trustme.CA, ca_file: Path) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    with submission_server(smtp_ca) as server:
        args = ["report", "digest", "--db", str(db), "--mail-to", "postmaster@example.com"]
        args += ["--smtp", f"127.0.0.1:{server.port}", "--smtp-user", USER, "--smtp-ca-file", str(ca_file)]
        result = CliRunner().invoke(app, args, env={"MTASTS_SMTP_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert server.logins == [(USER, PASSWORD, True)]
    (mail,) = server.delivered
    assert mail.message["Subject"] == f"TLSRPT digest {day(-1)} to {TODAY}"  # no alert: no flag
    assert "example.com: 1000 ok, 0 failed, 100.0% success (before: n/a)" in mail.message.get_content()


def test_implicit_tls(tmp_path: Path, smtp_ca: trustme.CA, ca_file: Path) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    with submission_server(smtp_ca, mode="tls") as server:
        args = ["report", "digest", "--db", str(db), "--mail-to", "postmaster@example.com", "--smtp-security", "tls"]
        args += ["--smtp", f"127.0.0.1:{server.port}", "--smtp-user", USER, "--smtp-ca-file", str(ca_file)]
        result = CliRunner().invoke(app, args, env={"MTASTS_SMTP_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert server.logins == [(USER, PASSWORD, True)]
    (mail,) = server.delivered
    assert mail.over_tls


@pytest.mark.parametrize(
    ("security", "port"), [(SmtpSecurity.STARTTLS, 587), (SmtpSecurity.TLS, 465), (SmtpSecurity.NONE, 25)]
)
def test_the_port_follows_the_security(security: SmtpSecurity, port: int) -> None:
    settings = smtp_settings("mail.example.com", security, None, None, None, 30.0, {})
    assert (settings.host, settings.port, settings.security) == ("mail.example.com", port, security)
    assert smtp_settings("mail.example.com:2525", security, None, None, None, 30.0, {}).port == 2525


# --- verification, AUTH and passwords: one line, exit 3 or 2, no mail ------------------------------


def mail_args(db: Path, port: int, *more: str) -> list[str]:
    return [
        "report",
        "digest",
        "--db",
        str(db),
        "--mail-to",
        "postmaster@example.com",
        "--smtp",
        f"127.0.0.1:{port}",
        *more,
    ]


def test_a_certificate_that_is_not_trusted_sends_nothing_until_its_ca_is_given(
    tmp_path: Path, smtp_ca: trustme.CA, ca_file: Path
) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    env = {"MTASTS_SMTP_PASSWORD": PASSWORD}
    with submission_server(smtp_ca) as server:
        refused = CliRunner().invoke(app, mail_args(db, server.port, "--smtp-user", USER), env=env)
        line = assert_one_line(refused, ExitCode.CANNOT_RUN, "cannot send the digest: the certificate of 127.0.0.1")
        assert (server.logins, server.delivered) == ([], [])
        trusted = CliRunner().invoke(
            app, mail_args(db, server.port, "--smtp-user", USER, "--smtp-ca-file", str(ca_file)), env=env
        )
    assert "is not trusted: unable to get local issuer certificate; nothing was sent" in line
    assert line.endswith("(for a private CA pass --smtp-ca-file FILE)")
    assert trusted.exit_code == 0, trusted.output
    assert len(server.delivered) == 1


def test_a_wrong_password(tmp_path: Path, smtp_ca: trustme.CA, ca_file: Path) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    (tmp_path / "password").write_text("not it\n")
    options = ["--smtp-user", USER, "--smtp-password-file", str(tmp_path / "password"), "--smtp-ca-file", str(ca_file)]
    with submission_server(smtp_ca) as server:
        result = CliRunner().invoke(app, mail_args(db, server.port, *options))
    line = assert_one_line(result, ExitCode.CANNOT_RUN, f"refused the user name or password of {USER!r}: 535 5.7.8")
    assert "not it" not in line  # the password is never shown
    assert server.logins == [(USER, "not it", True)]  # tried once: no second mechanism, no lock-out
    assert server.delivered == []


def test_auth_offered_in_clear_is_never_used(tmp_path: Path) -> None:
    """A server that offers AUTH before (here: without) STARTTLS gets neither the password nor the
    mail: STARTTLS is required, and AUTH is only sent inside it."""
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    with submission_server(None, mode="plain", auth_in_clear=True) as server:
        result = CliRunner().invoke(
            app, mail_args(db, server.port, "--smtp-user", USER), env={"MTASTS_SMTP_PASSWORD": PASSWORD}
        )
    assert_one_line(
        result, ExitCode.CANNOT_RUN, "does not offer STARTTLS; nothing was sent in clear", "--smtp-security"
    )
    assert (server.logins, server.delivered) == ([], [])


def test_a_local_relay_without_tls_only_when_asked(tmp_path: Path) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    with submission_server(None, mode="plain") as server:
        result = CliRunner().invoke(app, mail_args(db, server.port, "--smtp-security", "none"))
    assert result.exit_code == 0, result.output
    (mail,) = server.delivered
    assert not mail.over_tls


def test_there_is_no_option_for_a_password() -> None:
    command: Any = typer.main.get_command(app)  # a group of typer's own copy of Click
    names = [name for param in command.commands["report"].commands["digest"].params for name in param.opts]
    assert [name for name in names if "password" in name] == ["--smtp-password-file"]
    result = CliRunner().invoke(app, ["report", "digest", "--mail-to", "p@example.com", "--smtp-password", "hunter2"])
    assert result.exit_code == ExitCode.USAGE
    assert "No such option: --smtp-password" in result.output


@pytest.mark.parametrize(
    ("extra", "env", "says"),
    [
        (["--smtp-user", USER, "--smtp-security", "none"], {"MTASTS_SMTP_PASSWORD": PASSWORD}, "--smtp-user needs TLS"),
        (["--smtp-user", USER], {}, "--smtp-user needs a password: --smtp-password-file FILE or $MTASTS_SMTP_PASSWORD"),
        (["--smtp-password-file", "pw"], {}, "--smtp-password-file needs --smtp-user"),
        (["--smtp-ca-file", "ca.pem", "--smtp-security", "none"], {}, "--smtp-ca-file needs TLS"),
        (["--starttls", "--smtp-security", "tls"], {}, "--starttls contradicts --smtp-security tls"),
    ],
)
def test_contradictions_are_usage_errors(tmp_path: Path, extra: list[str], env: dict[str, str], says: str) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    with submission_server(None, mode="plain") as server:
        result = CliRunner().invoke(app, mail_args(db, server.port, *extra), env=env)
    assert_one_line(result, ExitCode.USAGE, says)
    assert server.delivered == []


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "cannot read the password file {path}: No such file or directory"),
        (lambda p: p.write_text("\n"), "the password file {path} is empty"),
        (lambda p: p.mkdir(), "cannot read the password file {path}: Is a directory"),
    ],
)
def test_a_password_file_that_cannot_be_used(tmp_path: Path, make: Any, says: str) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    path = tmp_path / "password"
    make(path)
    with submission_server(None, mode="plain") as server:
        args = mail_args(db, server.port, "--smtp-user", USER, "--smtp-password-file", str(path))
        result = CliRunner().invoke(app, args)
    assert_one_line(result, ExitCode.CANNOT_RUN, says.format(path=path))
    assert server.delivered == []


def test_a_missing_ca_file(tmp_path: Path) -> None:
    db = store(tmp_path, [report("Google Inc.", day(-1))])
    result = CliRunner().invoke(app, mail_args(db, free_port(), "--smtp-ca-file", str(tmp_path / "ca.pem")))
    assert_one_line(result, ExitCode.CANNOT_RUN, f"cannot read the CA file {tmp_path / 'ca.pem'}: no such file")


# --- the period ends today ---------------------------------------------------------------------------


def test_the_period_ends_today_and_silence_is_an_alert(tmp_path: Path) -> None:
    db = a_week_of_trouble(tmp_path)
    printed = CliRunner().invoke(app, ["report", "digest", "--db", str(db), "--exit-status"])
    assert printed.exit_code == ExitCode.PROBLEMS, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0] == f"TLSRPT digest {day(-1)} to {TODAY} (baseline from {day(-8)})"
    assert lines[2:7] == ["ALERTS (4):", *alert_lines()]
    data = json.loads(CliRunner().invoke(app, ["report", "digest", "--db", str(db), "--json"]).stdout)
    assert (data["since"], data["until"], data["silent_days"]) == (str(day(-1)), str(TODAY), 3)
    assert [(a["kind"], a["policy_domain"], a["organization_name"], a["days_silent"]) for a in data["alerts"]] == [
        ("no-reports", "example.org", None, 5),
        ("silent-reporter", "example.com", "Microsoft Corporation", 4),
        ("failure-spike", "example.com", None, None),
        ("new-failing-sender", "example.com", "Yahoo", None),
    ]
    assert data["alerts"][1]["last_report"] == str(day(-4))
    assert data["last_reports"] == [
        {"policy_domain": "example.com", "last_report": str(day(-1)), "days_silent": 1},
        {"policy_domain": "example.org", "last_report": str(day(-5)), "days_silent": 5},
    ]
    patient = CliRunner().invoke(app, ["report", "digest", "--db", str(db), "--json", "--silent-days", "6"])
    assert [a["kind"] for a in json.loads(patient.stdout)["alerts"]] == ["failure-spike", "new-failing-sender"]


def test_a_store_whose_reports_stopped_says_so(tmp_path: Path) -> None:
    """What the old digest (period ending at the newest report) could not notice."""
    db = store(tmp_path, [report("Google Inc.", day(-n)) for n in range(10, 20)])
    result = CliRunner().invoke(app, ["report", "digest", "--db", str(db), "--exit-status"])
    assert result.exit_code == ExitCode.PROBLEMS
    assert result.stdout.splitlines()[2:] == [
        "ALERTS (1):",
        f"  ! example.com: no report at all for 10 days (the newest covers {day(-10)})",
        "",
        "No reports in this period.",
    ]


def test_until_still_ends_the_period_where_it_says(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(BODY)  # one report, of 2026-11-28, with a failure
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    CliRunner().invoke(app, ["report", "ingest", str(tmp_path / "a.json")], env=env)
    printed = CliRunner().invoke(app, ["report", "digest", "--until", "2026-11-28", "--exit-status"], env=env)
    assert printed.exit_code == ExitCode.PROBLEMS  # a new failing sender is an alert
    assert printed.stdout.startswith("TLSRPT digest 2026-11-27 to 2026-11-28 (baseline from 2026-11-20)\n")
    assert "Example Sender newly fails to deliver to example.com" in printed.stdout
    as_json = json.loads(
        CliRunner().invoke(app, ["report", "digest", "--json", "--until", "2026-11-28"], env=env).stdout
    )
    assert [a["kind"] for a in as_json["alerts"]] == ["new-failing-sender"]
    with submission_server(None, mode="plain") as server:
        args = ["report", "digest", "--until", "2026-11-28", "--mail-to", "postmaster@example.com"]
        args += ["--smtp", f"127.0.0.1:{server.port}", "--smtp-security", "none"]
        mailed = CliRunner().invoke(app, args, env=env)
    assert mailed.exit_code == 0, mailed.output
    assert mailed.stdout == ""  # mailed, not printed: cron has nothing to mail
    (mail,) = server.delivered
    assert mail.message["Subject"] == "[1 alert] TLSRPT digest 2026-11-27 to 2026-11-28"
    assert "Example Sender newly fails" in mail.message.get_content()


# --- sessions counted once, as the summary counts them --------------------------------------------


def dane_and_sts_report(on: date, ok: int, failed: int) -> dict[str, Any]:
    """A report that lists the same sessions under the domain's ``tlsa`` and ``sts`` policies, as
    Microsoft's do (docs/report.md, "Sessions counted once")."""
    both = report("Microsoft Corporation", on, ok=ok, failed=failed)
    sts = both["policies"][0]
    tlsa = {**sts, "policy": {"policy-type": "tlsa", "policy-domain": "example.com"}}
    both["policies"] = [tlsa, sts]
    return both


def test_the_digest_counts_sessions_as_the_summary_does(tmp_path: Path) -> None:
    reports = [dane_and_sts_report(day(-n), ok=500, failed=10) for n in range(12)]
    reports += [report("Google Inc.", day(-n), ok=1000) for n in range(12)]
    db = store(tmp_path, reports)

    def totals(command: str, *extra: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["report", command, "--db", str(db), "--json", *extra])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    summary = totals("summary", "--days", "2")
    digest = totals("digest", "--days", "2")
    [in_summary], [in_digest] = summary["domains"], digest["domains"]
    # two days: Google 2 × 1000, Microsoft 2 × 500 ok and 2 × 10 failed, each session once
    assert (in_digest["total_successful"], in_digest["total_failure"]) == (3000, 20)
    assert (in_summary["total_successful"], in_summary["total_failure"]) == (3000, 20)
    assert in_digest["success_rate"] == in_summary["success_rate"]
    assert in_digest["baseline_success_rate"] == 10500 / 10570  # the week before, counted once too
    senders = {s["organization_name"]: s["failed_sessions"] for s in digest["failing_senders"]}
    assert senders == {s["organization_name"]: s["failed_sessions"] for s in summary["failing_senders"]}
    assert senders == {"Microsoft Corporation": 20}

    # a period that ends before the newest report: its own sessions only, still counted once
    past = totals("digest", "--days", "1", "--until", str(day(-5)))
    assert [(d["total_successful"], d["total_failure"]) for d in past["domains"]] == [(1500, 10)]
    assert [(s["organization_name"], s["failed_sessions"]) for s in past["failing_senders"]] == [
        ("Microsoft Corporation", 10)
    ]
