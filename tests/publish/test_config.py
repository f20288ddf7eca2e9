"""The publish configuration (mtasts.publish.config): defaults, normalisation, every problem as
data with file, line, key path and fix, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtasts.core.policy import Mode, parse_policy
from mtasts.publish.config import (
    LETS_ENCRYPT,
    Challenge,
    ConfigError,
    HostLimits,
    ListenAddress,
    parse_address,
    parse_config,
)

FILE = Path("/etc/mtasts/publish.toml")
DOMAIN = '[[domain]]\nname = "example.com"\nmode = "testing"\nmx = ["mx1.example.com"]\nmax_age = 86400\n'


def problems_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    return [(p.key, p.line, p.message) for p in info.value.problems]


def test_a_minimal_file_gets_the_documented_defaults() -> None:
    config = parse_config(DOMAIN, FILE)
    server = config.server
    assert server.listen == (ListenAddress("0.0.0.0", 443), ListenAddress("::", 443))
    assert server.admin == ListenAddress("127.0.0.1", 8461)
    assert server.cache_max_age == 300
    assert server.limits == HostLimits()
    assert config.acme is None
    [domain] = config.domains
    assert (domain.name, domain.mode, domain.max_age, domain.mx) == (
        "example.com",
        Mode.TESTING,
        86400,
        ("mx1.example.com",),
    )
    assert domain.host == "mta-sts.example.com"
    assert domain.body == b"version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n"
    assert domain.body is not None
    assert parse_policy(domain.body) == domain.policy


def test_names_are_normalised_once() -> None:
    text = DOMAIN.replace('"example.com"', '"Bücher.Example."').replace(
        '"mx1.example.com"', '"MX.Bücher.example", "*.Relay.Example."'
    )
    [domain] = parse_config(text, FILE).domains
    assert domain.name == "xn--bcher-kva.example"
    assert domain.mx == ("mx.xn--bcher-kva.example", "*.relay.example")
    assert parse_config(text, FILE).domain("BÜCHER.example") == domain


def test_a_domain_named_twice_points_at_both_entries() -> None:
    text = DOMAIN + "\n" + DOMAIN.replace('"example.com"', '"EXAMPLE.com."')
    assert problems_of(text) == [
        ("domain[2].name", 8, "'EXAMPLE.com.' is example.com, already configured at line 1"),
    ]


def test_from_dns_is_recorded_not_resolved() -> None:
    [domain] = parse_config(DOMAIN.replace('["mx1.example.com"]', '"from-dns"'), FILE).domains
    assert domain.mx is None
    assert domain.policy is None
    assert domain.body is None


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        (DOMAIN.replace('"testing"', '"on"'), "domain[1].mode", 3, "'on' is not a mode"),
        (DOMAIN.replace("86400", "true"), "domain[1].max_age", 5, "must be a whole number of seconds"),
        (DOMAIN.replace("86400", "31557601"), "domain[1].max_age", 5, "31557601 is out of range"),
        (DOMAIN.replace('mx = ["mx1.example.com"]\n', ""), "domain[1].mx", 1, "is missing"),
        (DOMAIN.replace('["mx1.example.com"]', "[]"), "domain[1].mx", 4, "is empty"),
        (
            DOMAIN.replace('"mx1.example.com"', '"mx_1.example.com"'),
            "domain[1].mx",
            4,
            "'mx_1.example.com' is not a valid MX host name or pattern: "
            "'_' at position 3 is not allowed in a host name",
        ),
        (
            DOMAIN.replace('"example.com"', '"localhost"'),
            "domain[1].name",
            2,
            "'localhost' is not a valid domain name: it is not a fully qualified name",
        ),
        (DOMAIN + 'cert = "a.pem"\n', "domain[1].key", 1, "is missing"),
        (DOMAIN + "colour = 3\n", "domain[1].colour", 6, "unknown key"),
        (DOMAIN + 'rua = ["http://example.com/r"]\n', "domain[1].rua", 6, None),
        (
            '[server]\nlisten = ["0.0.0.0"]\n' + DOMAIN,
            "server.listen",
            2,
            "'0.0.0.0' is not HOST:PORT (write an IPv6 address in brackets: [::1]:8443)",
        ),
        ('[server]\nlisten = ["::1:443"]\n' + DOMAIN, "server.listen", 2, None),
        ('[server]\nlisten = ["mta-sts.example.com:443"]\n' + DOMAIN, "server.listen", 2, None),
        (
            '[server]\nadmin = "127.0.0.1:99999"\n' + DOMAIN,
            "server.admin",
            2,
            "'99999' is not a port number (0 to 65535)",
        ),
        ("[server]\nmax_header_bytes = 10\n" + DOMAIN, "server.max_header_bytes", 2, "must be at least 256"),
        ('[server]\nidle_timeout = "long"\n' + DOMAIN, "server.idle_timeout", 2, "must be a number"),
        (
            '[acme]\ndirectory = "http://acme.example/dir"\n' + DOMAIN,
            "acme.directory",
            2,
            "'http://acme.example/dir' is not an https:// URL",
        ),
        (
            '[acme]\ncontact = ["hostmaster@example.com"]\n' + DOMAIN,
            "acme.contact",
            2,
            "'hostmaster@example.com' is not a mailto: URI",
        ),
        ('[acme]\nchallenge = "dns-01"\n' + DOMAIN, "acme.challenge", 2, "'dns-01' is not a supported challenge"),
        ("[sever]\n" + DOMAIN, "sever", None, "unknown section or key"),
        (
            '[report]\npath = "/.well-known/mta-sts.txt"\n' + DOMAIN,
            "report.path",
            2,
            "/.well-known/mta-sts.txt is the policy's or the ACME challenges' path",
        ),
        ('[report]\npath = "v1/report"\n' + DOMAIN, "report.path", 2, "'v1/report' is not a URL path"),
        ('[report]\naccept = "all"\n' + DOMAIN, "report.accept", 2, "'all' is not a choice"),
        ("[report]\nmax_body = 10\n" + DOMAIN, "report.max_body", 2, "10 is out of range"),
        ('[report]\nbody_timeout = "slow"\n' + DOMAIN, "report.body_timeout", 2, None),
        ("[report]\nstore = 5\n" + DOMAIN, "report.store", 2, "must be a database URL or a SQLite file path"),
    ],
)
def test_each_problem_names_its_key_and_line(text: str, key: str, line: int | None, message: str | None) -> None:
    [(found_key, found_line, found_message)] = problems_of(text)
    assert (found_key, found_line) == (key, line)
    if message is not None:
        assert found_message == message


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    text = DOMAIN.replace('"testing"', '"on"').replace("86400", "-1") + "\n" + DOMAIN.replace('"example.com"', '"b..c"')
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    lines = str(info.value).splitlines()
    assert lines == [
        '/etc/mtasts/publish.toml:3: domain[1].mode: \'on\' is not a mode; use "testing", "enforce" or "none"',
        "/etc/mtasts/publish.toml:5: domain[1].max_age: -1 is out of range; give 0 to 31557600 seconds (RFC 8461 §3.2)",
        "/etc/mtasts/publish.toml:8: domain[2].name: 'b..c' is not a valid domain name: the host name has an empty "
        "label (a leading, trailing or doubled dot); give the mail domain, e.g. example.com",
    ]
    assert not info.value.unreadable


def test_toml_syntax_errors_give_the_line() -> None:
    [(key, line, message)] = problems_of(DOMAIN + "max_age = = 3\n")
    assert (key, line) == ("", 6)
    assert message.startswith("not valid TOML: ")


def test_server_and_acme_settings() -> None:
    text = (
        '[server]\nlisten = ["127.0.0.1:8443", "[::1]:8443"]\nadmin = "off"\ncache_max_age = 60\n'
        "max_connections = 50\nrequests_per_second = 2.5\n"
        '[acme]\ncontact = "mailto:hostmaster@example.com"\nchallenge = "tls-alpn-01"\nstorage = "acme"\n'
        + DOMAIN
        + 'cert = "certs/example.pem"\nkey = "/abs/example.key"\n'
    )
    config = parse_config(text, FILE)
    assert config.server.listen == (ListenAddress("127.0.0.1", 8443), ListenAddress("::1", 8443))
    assert config.server.admin is None
    assert config.server.cache_max_age == 60
    assert (config.server.limits.max_connections, config.server.limits.requests_per_second) == (50, 2.5)
    assert config.acme is not None
    assert config.acme.directory == LETS_ENCRYPT
    assert config.acme.contact == ("mailto:hostmaster@example.com",)
    assert config.acme.challenge is Challenge.TLS_ALPN_01
    assert config.acme.storage == Path("/etc/mtasts/acme")
    [domain] = config.domains
    assert (domain.cert, domain.key) == (Path("/etc/mtasts/certs/example.pem"), Path("/abs/example.key"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:443", ListenAddress("0.0.0.0", 443)),
        ("[::]:443", ListenAddress("::", 443)),
        ("[::1]:8443", ListenAddress("::1", 8443)),
        ("[2001:DB8::1]:0", ListenAddress("2001:db8::1", 0)),
    ],
)
def test_listen_addresses(text: str, expected: ListenAddress) -> None:
    assert parse_address(text) == expected
    assert parse_address(expected.to_text()) == expected


@pytest.mark.parametrize(
    "text", ["443", "::1", "[::1]", "[::1]8443", "localhost:443", "1.2.3.4:-1", "[::ffff:1.2.3.4]:1"]
)
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not|IPv4-mapped"):
        parse_address(text)


def test_report_section_defaults_and_a_store_relative_to_the_file() -> None:
    from mtasts.publish.config import ReportAccept, ReportSettings

    assert parse_config(DOMAIN, FILE).report is None
    report = parse_config("[report]\n" + DOMAIN, FILE).report
    assert report == ReportSettings()
    assert (report.path, report.store, report.accept) == ("/v1/report", None, ReportAccept.CONFIGURED)
    report = parse_config('[report]\nstore = "db/mtasts.sqlite3"\naccept = "any"\nburst = 5\n' + DOMAIN, FILE).report
    assert report is not None
    assert report.store == "/etc/mtasts/db/mtasts.sqlite3"
    assert (report.accept, report.burst) == (ReportAccept.ANY, 5)
    url = parse_config('[report]\nstore = "postgresql://mtasts@db/mtasts"\n' + DOMAIN, FILE).report
    assert url is not None
    assert url.store == "postgresql://mtasts@db/mtasts"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_are_counted_whatever_ends_them(newline: str) -> None:
    text = "# a comment\n" + DOMAIN + "\n" + DOMAIN.replace('"example.com"', '"b.example"').replace("86400", "-1")
    assert problems_of(text.replace("\n", newline)) == [("domain[2].max_age", 12, "-1 is out of range")]
    [domain] = parse_config(DOMAIN.replace("\n", newline), FILE).domains
    assert domain.line == 1


def test_the_body_is_read_back_once_and_entries_made_otherwise_are_not_trusted() -> None:
    import dataclasses

    [domain] = parse_config(DOMAIN, FILE).domains
    assert domain.checked_body == domain.body  # read back through the strict parser
    assert domain.policy == parse_policy(domain.body)
    changed = dataclasses.replace(domain, max_age=600, policy=dataclasses.replace(domain.policy, max_age=600))
    assert changed.checked_body is None  # the snapshot parses this one itself
    assert changed.body == domain.body.replace(b"86400", b"600")
