"""``mtasts generate``: policy and records for a domain with two MX."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dns.name
import dns.zone
import pytest
from typer.testing import CliRunner

import mtasts
from mtasts.cli.main import app

ARGS = ["generate", "--domain", "example.com", "--mx", "mx1.example.com", "--mx", "mx2.example.com"]


def test_two_mx_json(runner: CliRunner) -> None:
    result = runner.invoke(
        app, [*ARGS, "--mode", "testing", "--max-age", "604800", "--rua", "mailto:tlsrpt@example.com", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    policy = mtasts.parse_policy(plan["policy_text"])
    assert policy.mx == ("mx1.example.com", "mx2.example.com")
    assert plan["policy_url"] == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    records = {r["name"]: r["value"] for r in plan["records"]}
    record = mtasts.parse_sts_record(records["_mta-sts.example.com"])
    assert re.fullmatch(r"\d{8}T\d{6}", record.id)
    assert mtasts.parse_tlsrpt_record(records["_smtp._tls.example.com"]).rua == ("mailto:tlsrpt@example.com",)
    assert plan["warnings"] == []


def test_warnings_for_short_max_age_and_first_enforce(runner: CliRunner) -> None:
    result = runner.invoke(app, [*ARGS, "--mode", "enforce", "--max-age", "3600"])
    assert result.exit_code == 0
    assert "policy.max_age.short" in result.output
    assert "policy.enforce.first" in result.output
    assert "policy.tlsrpt.missing" in result.output
    assert '_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=' in result.output
    existing = runner.invoke(app, [*ARGS, "--mode", "enforce", "--max-age", "604800", "--existing", "--json"])
    assert [w["code"] for w in json.loads(existing.output)["warnings"]] == ["policy.tlsrpt.missing"]


@pytest.mark.parametrize(
    ("mode", "max_age", "warned"),
    [
        pytest.param("enforce", "86400", True, id="enforce-a-day"),
        pytest.param("enforce", "604800", False, id="enforce-a-week"),
        pytest.param("testing", "3600", True, id="testing-an-hour"),
        pytest.param("testing", "86400", False, id="testing-a-day"),  # the fix itself says a day is fine here
        pytest.param("none", "60", False, id="none"),  # how a domain leaves MTA-STS: nothing to protect
    ],
)
def test_max_age_floor_depends_on_the_mode(runner: CliRunner, mode: str, max_age: str, warned: bool) -> None:
    result = runner.invoke(
        app, [*ARGS, "--mode", mode, "--max-age", max_age, "--rua", "mailto:tlsrpt@example.com", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert ("policy.max_age.short" in [w["code"] for w in json.loads(result.output)["warnings"]]) is warned


BOX_DRAWING = re.compile("[\u2500-\u257f]")


def test_plain_output_can_be_copied(runner: CliRunner) -> None:
    result = runner.invoke(
        app, [*ARGS, "--mode", "testing", "--max-age", "604800", "--rua", "mailto:tlsrpt@example.com"]
    )
    assert result.exit_code == 0, result.output
    assert not BOX_DRAWING.search(result.output)  # no panel or table borders to pick up with the text
    lines = result.output.splitlines()
    # the policy, as printed from its first line to its last, is a valid policy file as it stands
    start = lines.index("version: STSv1")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("max_age:"))
    pasted = "\n".join(lines[start : end + 1]) + "\n"
    assert mtasts.parse_policy(pasted).mx == ("mx1.example.com", "mx2.example.com")
    lint = runner.invoke(app, ["lint", "policy", "-", "--rua", "mailto:tlsrpt@example.com", "--json"], input=pasted)
    assert json.loads(lint.output)["problems"] == []
    # each DNS record is one zone-file line starting at column 0 (an indented line has no owner)
    records = [line for line in lines if " IN TXT " in line]
    assert [line.split()[0] for line in records] == ["_mta-sts.example.com.", "_smtp._tls.example.com."]
    zone = dns.zone.from_text("\n".join(records) + "\n", origin="example.com", check_origin=False)
    assert zone.get_rdataset("_smtp._tls", "TXT")[0].strings == (b"v=TLSRPTv1; rua=mailto:tlsrpt@example.com",)
    # and it says what the policy host needs
    assert "Point mta-sts.example.com at an HTTPS server: an A and/or AAAA record" in result.output
    assert "CNAME" in result.output
    assert "certificate valid for mta-sts.example.com" in result.output


def test_output_dir_writes_what_to_deploy(runner: CliRunner, tmp_path: Path) -> None:
    rua = [f"mailto:tlsrpt-{i:02d}-with-a-long-local-part@reports.example.com" for i in range(6)]
    options = [arg for uri in rua for arg in ("--rua", uri)]
    result = runner.invoke(
        app, [*ARGS, "--mode", "enforce", "--max-age", "604800", "--existing", *options, "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mta-sts.txt", "zone.txt"]
    assert f"Wrote {tmp_path / 'mta-sts.txt'}: serve it as it is.\n" in result.output
    assert f"Wrote {tmp_path / 'zone.txt'}: add it to the zone of example.com, with the mta-sts" in result.output
    policy = (tmp_path / "mta-sts.txt").read_bytes()
    assert policy == (
        b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: mx2.example.com\r\nmax_age: 604800\r\n"
    )
    text = (tmp_path / "zone.txt").read_text("utf-8")
    # the policy host line is there, commented, saying what it needs
    assert ";mta-sts.example.com. 3600 IN A <" in text
    assert ";mta-sts.example.com. 3600 IN CNAME <" in text
    assert "certificate valid for mta-sts.example.com" in text
    # the file loads as zone-file text; the long TLSRPT record is cut into strings of at most 255 bytes
    zone = dns.zone.from_text(text, origin="example.com", check_origin=False, relativize=False)
    assert set(zone.nodes) == {dns.name.from_text(n) for n in ("_mta-sts.example.com", "_smtp._tls.example.com")}
    [tlsrpt] = zone.get_rdataset("_smtp._tls.example.com.", "TXT")
    assert len(tlsrpt.strings) == 2
    assert all(len(part) <= 255 for part in tlsrpt.strings)
    assert mtasts.parse_tlsrpt_record(b"".join(tlsrpt.strings).decode()).rua == tuple(rua)
    [sts] = zone.get_rdataset("_mta-sts.example.com.", "TXT")
    assert re.fullmatch(rb"v=STSv1; id=\d{8}T\d{6}", b"".join(sts.strings))


def test_output_dir_json_keeps_its_keys(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, [*ARGS, "--mode", "testing", "--max-age", "604800", "-o", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    keys = {"domain", "policy", "policy_text", "policy_host", "policy_url", "records", "warnings"}
    assert keys <= set(plan)
    assert plan["written"] == [str(tmp_path / "mta-sts.txt"), str(tmp_path / "zone.txt")]
    assert (tmp_path / "mta-sts.txt").read_bytes() == plan["policy_text"].encode()
    assert (tmp_path / "zone.txt").read_text() == plan["zone_text"]


def test_output_dir_must_exist(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "deploy"
    result = runner.invoke(app, [*ARGS, "--mode", "testing", "--max-age", "604800", "--output-dir", str(missing)])
    assert result.exit_code == 3  # could not run: nothing is created
    assert result.stderr == f"mtasts: error: cannot write to {missing}: it does not exist (create it first)\n"
    assert not (tmp_path / "typo").exists()
    a_file = tmp_path / "file"
    a_file.write_text("")
    not_folder = runner.invoke(app, [*ARGS, "--mode", "testing", "--max-age", "604800", "-o", str(a_file)])
    assert not_folder.exit_code == 3
    assert not_folder.stderr == f"mtasts: error: cannot write to {a_file}: it is not a folder\n"


def test_unicode_names_become_alabels(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            "-d",
            "bücher.example",
            "--mx",
            "*.bücher.example",
            "--mode",
            "none",
            "--max-age",
            "86400",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["domain"] == "xn--bcher-kva.example"
    assert plan["policy"]["mx"] == ["*.xn--bcher-kva.example"]


def test_invalid_input_is_refused_plainly(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["generate", "-d", "example.com", "--mx", "mail_1.example.com", "--mode", "testing", "--max-age", "86400"]
    )
    assert result.exit_code == 2  # the command line holds a value that cannot be published
    assert "'_' at position 5 is not allowed" in result.output
    bad_max_age = runner.invoke(app, [*ARGS, "--mode", "testing", "--max-age", "31557601"])
    assert bad_max_age.exit_code == 2
    assert "less than or equal to 31557600" in bad_max_age.output
