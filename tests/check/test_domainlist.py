"""A bulk list names each domain once, however it is spelt; counts read as English."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.check.domainlist import DomainList, domain_key
from mtasts.cli.main import app


def test_spellings_of_one_domain_share_a_key() -> None:
    assert domain_key("ENFORCE-OK.Example") == domain_key("enforce-ok.example.") == "enforce-ok.example"
    assert domain_key("Bücher.example") == domain_key("xn--bcher-kva.example") == "xn--bcher-kva.example"
    assert domain_key("  not a domain!  ") == "not a domain!"  # kept as written: the inspector says why


def test_repeats_are_counted_and_order_kept() -> None:
    domains = DomainList()
    lines = ["b.example", "# comment", "A.example", "", "b.example.", "a.example # again", "xn--bcher-kva.example"]
    assert list(domains.names(lines)) == ["b.example", "a.example", "xn--bcher-kva.example"]
    assert list(domains.names(["bücher.example", "c.example"])) == ["c.example"]  # the same list across inputs
    assert domains.repeats == 3


@pytest.mark.lab
def test_bulk_checks_each_domain_once_and_says_one_domain(
    runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path
) -> None:
    domain = lab.domain("enforce-ok")
    listing = tmp_path / "domains.txt"
    listing.write_text(f"{domain.upper()}\n{domain}.\n{domain}\n")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["check", "--file", str(listing), "--output", str(output), *lab_options])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["domain"] for line in lines] == [domain]
    assert "1 domain:" in result.output
    assert "1 domains" not in result.output
