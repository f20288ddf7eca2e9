"""``mtasts resolver selftest --postfix`` with Debian's real Postfix tools (``postconf``,
``postmap``, a private configuration directory from :mod:`tests.resolver.postfix`) asking a real
``mtasts resolver serve`` on the lab; and the pure grammar it checks answers against."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.resolver.answers import Profile
from mtasts.resolver.grammar import (
    PostfixVersion,
    check_answer,
    parse_postfix_version,
    profile_error,
    recommended_profile,
    socketmap_tables,
)
from tests.commands import MTASTS
from tests.resolver.postfix import PostfixInstance, free_port, missing_postfix

V3_3, V3_7, V3_10, V3_10_5 = (
    PostfixVersion(3, 3),
    PostfixVersion(3, 7, 11),
    PostfixVersion(3, 10),
    PostfixVersion(3, 10, 5),
)
TLSRPT = (
    "secure match=mx1.example.com servername=hostname policy_type=sts policy_domain=example.com "
    "{ policy_string = version: STSv1 } { policy_string = mode: enforce } mx_host_pattern=*.example.com"
)


# --- the grammar --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "version", "codes"),
    [
        ("NOTFOUND", V3_3, []),
        ("OK secure match=mx1.example.com servername=hostname", V3_7, []),
        ("OK secure match=mx1.example.com:.example.net", V3_3, []),
        ("OK secure match=mx1.example.com servername=hostname", V3_3, ["attribute-too-new"]),
        (f"OK {TLSRPT}", V3_10, []),
        (f"OK {TLSRPT}", V3_7, ["attribute-too-new"] * 5),
        ("OK secure match=", V3_7, ["empty-value"]),
        ("OK secure match=a.example.com::b.example.com", V3_7, ["empty-match-name"]),
        ("OK secure match=192.0.2.1", V3_7, ["address-in-match"]),
        ("OK secure match=a.example.com match=b.example.com", V3_7, ["repeated-attribute"]),
        ("OK secure match=a.example.com colour=blue", V3_7, ["unknown-attribute"]),
        ("OK secure match=a.example.com servername=-bad-", V3_7, ["bad-servername"]),
        ("OK safe match=a.example.com", V3_7, ["unknown-level"]),
        ("OK secure match=a.example.com { policy_string = x", V3_10, ["unbalanced-brace"]),
        ("OK secure match=a.example.com mx_host_pattern=.example.com", V3_10, []),
        ("OK secure match=a.example.com mx_host_pattern=.example.com", V3_10_5, ["dot-mx-host-pattern"]),
        ("OK secure match=a.example.com policy_type=dane", V3_10, ["bad-policy-type"]),
        ("OK secure", V3_7, ["no-match"]),
        ("TEMP MTA-STS policy not available yet", V3_7, ["deferral"]),
        ("HELLO", V3_7, ["not-a-reply"]),
    ],
)
def test_answers_against_each_version(answer: str, version: PostfixVersion, codes: list[str]) -> None:
    assert [problem.code for problem in check_answer(answer, version)] == codes


def test_the_grammar_is_linear_on_hostile_answers() -> None:
    deep = "OK secure " + "{" * 50_000
    assert [p.code for p in check_answer(deep, V3_10)] == ["unbalanced-brace"]
    assert [p.code for p in check_answer("OK secure match=" + "a" * 100_000, V3_10)] == ["too-large"]


def test_versions_and_profiles() -> None:
    assert parse_postfix_version("3.7.11") == V3_7
    assert parse_postfix_version("3.11-20250101") == PostfixVersion(3, 11)
    assert parse_postfix_version("3.10") < parse_postfix_version("3.10.5")
    assert PostfixVersion(3, 9, 9) < V3_10
    with pytest.raises(ValueError, match="is not a Postfix version"):
        parse_postfix_version("three")
    assert [recommended_profile(v) for v in (V3_3, V3_7, V3_10)] == [
        Profile.POSTFIX_LEGACY,
        Profile.POSTFIX,
        Profile.POSTFIX_TLSRPT,
    ]
    assert profile_error(Profile.POSTFIX_TLSRPT, V3_7) == (
        "Postfix 3.7.11 rejects the TLSRPT attributes (they need 3.10): use postfix"
    )
    assert profile_error(Profile.POSTFIX, V3_3) is not None
    assert profile_error(Profile.POSTFIX_LEGACY, V3_10) is None


def test_socketmap_tables_of_smtp_tls_policy_maps() -> None:
    value = "hash:/etc/postfix/tls, proxy:socketmap:inet:127.0.0.1:8461:postfix socketmap:unix:/run/s.sock:edge"
    assert socketmap_tables(value) == ["socketmap:inet:127.0.0.1:8461:postfix", "socketmap:unix:/run/s.sock:edge"]
    assert socketmap_tables("") == []


# --- against a real Postfix and a real daemon ----------------------------------------------

needs_postfix = pytest.mark.skipif(missing_postfix() is not None, reason=str(missing_postfix()))


@pytest.fixture(scope="module")
def daemon(lab: Any, resolver_options: list[str]) -> Iterator[str]:
    """``mtasts resolver serve`` on the lab (memory only, TEMP when failing in zone 'careful'):
    its inet: address."""
    config = Path(lab.info()["ca_file"]).parent / f"selftest-{os.getpid()}.toml"
    config.write_text('[zone.careful]\nprofile = "postfix"\nfail_open_temp = true\n')
    process = subprocess.Popen(
        [
            *MTASTS,
            "resolver",
            "serve",
            "--config",
            str(config),
            "--listen",
            "inet:127.0.0.1:0",
            "--memory-only",
            *resolver_options,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        found = re.search(r"listening on (inet:127\.0\.0\.1:\d+)", line)
        assert found, line
        yield found[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        process.stderr.close()
        config.unlink()


@pytest.fixture
def postfix_dir(lab: Any, daemon: str) -> Iterator[Path]:
    """A Postfix configuration directory (not started: postconf and postmap need none) whose
    smtp_tls_policy_maps names the daemon."""
    instance = PostfixInstance(
        nameserver="127.0.0.1",
        ca_pem=Path(lab.info()["ca_file"]).read_bytes(),
        policy_maps=f"socketmap:{daemon}:postfix",
    )
    try:
        yield instance.config
    finally:
        instance.stop()


def selftest(runner: CliRunner, *args: str) -> tuple[int, str]:
    from mtasts.cli.main import app

    result = runner.invoke(app, ["resolver", "selftest", *args])
    return result.exit_code, result.output


@pytest.mark.lab
@needs_postfix
def test_selftest_finds_the_map_in_main_cf_and_every_answer_valid(
    runner: CliRunner, lab: Any, daemon: str, postfix_dir: Path
) -> None:
    enforce, testing, none = lab.domain("enforce-ok"), lab.domain("testing-ok"), lab.domain("no-sts-record")
    code, out = selftest(runner, "--postfix", "--postfix-config", str(postfix_dir), enforce, testing, none)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"Postfix 3.7.11, map socketmap:{daemon}:postfix (from smtp_tls_policy_maps)"
    assert lines[1].split() == [enforce, "valid", "OK", "secure", f"match=mx1.{enforce}", "servername=hostname"]
    assert lines[2].split() == [testing, "valid", "NOTFOUND"]
    assert lines[3].split() == [none, "valid", "NOTFOUND"]
    assert lines[4].split() == [f".{enforce}", "valid", "NOTFOUND"]
    assert lines[5:] == [
        "every answer valid for Postfix 3.7.11 (4 lookups)",
        "profile in use: postfix; recommended for 3.7.11: postfix",
    ]


@pytest.mark.lab
@needs_postfix
def test_selftest_rejects_tlsrpt_answers_for_postfix_3_7(
    runner: CliRunner, lab: Any, daemon: str, postfix_dir: Path
) -> None:
    enforce = lab.domain("enforce-ok")
    code, out = selftest(
        runner,
        "--postfix",
        "--postfix-config",
        str(postfix_dir),
        "--listen",
        daemon,
        "--zone",
        "postfix-tlsrpt",
        "--json",
        enforce,
    )
    assert code == 1, out
    document = json.loads(out)
    assert document["map"] == f"socketmap:{daemon}:postfix-tlsrpt"
    assert (document["postfix_version"], document["valid"]) == ("3.7.11", False)
    first = document["results"][0]
    assert first["answer"].startswith(f"OK secure match=mx1.{enforce} servername=hostname policy_type=sts")
    assert {p["code"] for p in first["problems"]} == {"attribute-too-new"}
    assert document["profile_in_use"] == "postfix-tlsrpt"
    assert document["advice"] == "Postfix 3.7.11 rejects the TLSRPT attributes (they need 3.10): use postfix"
    assert document["recommended_map"] == f"socketmap:{daemon}:postfix"


@pytest.mark.lab
@needs_postfix
def test_selftest_counts_a_deferral_as_a_problem(runner: CliRunner, lab: Any, daemon: str, postfix_dir: Path) -> None:
    refused = lab.domain("policy-refused")  # the policy host refuses: nothing cached, zone 'careful' says TEMP
    code, out = selftest(
        runner, "--postfix", "--postfix-config", str(postfix_dir), "--map", f"socketmap:{daemon}:careful", refused
    )
    assert code == 1, out
    lines = out.splitlines()
    assert lines[1].split()[:3] == [refused, "invalid", "TEMP"]
    assert "deferral: TEMP: Postfix defers the mail" in lines[2]
    assert "profile in use: postfix" not in out  # no OK answer: the map name is not a profile
    assert "profile in use: unknown (no OK answer)" in out


@pytest.mark.lab
@needs_postfix
def test_selftest_with_no_daemon_is_exit_3_one_line(runner: CliRunner, postfix_dir: Path) -> None:
    port = free_port()
    code, out = selftest(
        runner, "--postfix", "--postfix-config", str(postfix_dir), "--listen", f"inet:127.0.0.1:{port}"
    )
    assert code == 3
    assert out.startswith(
        f"mtasts: error: postmap -q gmail.com socketmap:inet:127.0.0.1:{port}:postfix: postmap: fatal:"
    )
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "selftest: choose what to test: --postfix"),
        (["--postfix", "--map", "hash:/etc/x"], "--map: 'hash:/etc/x' is not a socketmap: table"),
        (["--postfix", "--zone", "x"], "--zone: needs --listen"),
        (["--postfix", "--listen", "tcp:1"], "--listen: 'tcp:1' is not inet:HOST:PORT or unix:PATH"),
    ],
)
def test_selftest_usage_errors_are_one_line(runner: CliRunner, args: list[str], message: str) -> None:
    code, out = selftest(runner, *args)
    assert (code, out) == (2, f"mtasts: error: {message}\n")
