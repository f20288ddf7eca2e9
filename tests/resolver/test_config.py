"""The resolver's TOML configuration (pure parsing, every problem with its line and key), the
command line over it, the zones it defines as the daemon answers them, and ``serve --config``
as a user runs it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.core.policy import parse_policy
from mtasts.net.listen import ListenAddress
from mtasts.resolver.answers import AnswerSettings, Profile, render_answer
from mtasts.resolver.cache import TxtResult, TxtStatus
from mtasts.resolver.config import (
    CommandLine,
    ConfigError,
    ResolverConfig,
    StoreKind,
    StoreSettings,
    apply_command_line,
    default_config_path,
    parse_config,
    parse_mode,
    parse_store,
)
from mtasts.resolver.grammar import PostfixVersion
from mtasts.resolver.server import ListenSpec
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.store import MemoryStore
from mtasts.resolver.zones import Zone, ZonedResolver
from tests.commands import MTASTS
from tests.resolver.helpers import SocketmapClient
from tests.resolver.test_service import ANSWER1, Clock, D, ScriptedSources

FULL = """\
listen = [
  "inet:127.0.0.1:8461",
  { address = "unix:run/resolver.sock", group = "postfix", mode = "640" },
]
max_connections = 200
admin = "9461"
overrides = "overrides.toml"
strict_testing = true

[network]
nameserver = "127.0.0.1:5353"
ca_file = "/etc/ssl/certs/ca-certificates.crt"
timeout = 3
refuse_private = true

[store]
url = "postgresql://mtasts@db.example/mtasts"
table = "resolver.cache"

[zone.mta-sts]
postfix_version = "3.7.11"

[zone.edge]
profile = "postfix-tlsrpt"
postfix_version = "3.10.5"
strict_testing = false
fail_open_temp = true
"""


def test_an_empty_file_is_the_documented_defaults() -> None:
    config = parse_config("", "/etc/mtasts/resolver.toml")
    assert config == ResolverConfig(Path("/etc/mtasts/resolver.toml"))
    assert [spec.to_text() for spec in config.listen] == ["inet:127.0.0.1:8461"]
    assert (config.max_connections, config.admin, config.overrides) == (1000, None, None)
    assert (config.network.timeout, config.network.nameserver, config.network.allow_private) == (5.0, None, True)
    assert config.store == StoreSettings(StoreKind.SQLITE)
    assert {name: zone.profile for name, zone in config.zones.items()} == {p.value: p for p in Profile}
    assert not any(zone.strict_testing or zone.fail_open_temp for zone in config.zones.values())


def test_every_section_is_read(tmp_path: Path) -> None:
    config = parse_config(FULL, tmp_path / "resolver.toml")
    assert config.listen == (
        ListenSpec(host="127.0.0.1", port=8461),
        ListenSpec(path=tmp_path / "run/resolver.sock", mode=0o640, group="postfix"),
    )
    assert (config.max_connections, config.admin) == (200, ListenAddress("127.0.0.1", 9461))
    assert config.overrides == tmp_path / "overrides.toml"  # relative to the file
    assert config.network.nameserver == ("127.0.0.1", 5353)
    assert (config.network.timeout, config.network.allow_private) == (3.0, False)
    assert config.store.kind is StoreKind.POSTGRESQL
    assert (config.store.url, config.store.table) == ("postgresql://mtasts@db.example/mtasts", "resolver.cache")
    # top-level strict_testing is every zone's default; a version alone chooses the profile
    assert config.zones["postfix"] == Zone("postfix", Profile.POSTFIX, strict_testing=True)
    assert config.zones["mta-sts"] == Zone(
        "mta-sts", Profile.POSTFIX, strict_testing=True, postfix_version=PostfixVersion(3, 7, 11)
    )
    edge = config.zones["edge"]
    assert (edge.profile, edge.strict_testing, edge.fail_open_temp) == (Profile.POSTFIX_TLSRPT, False, True)
    assert edge.answers == AnswerSettings(wildcard_suffix=True)  # 3.10.5 matches mx_host_pattern itself


BROKEN = """\
listen = ["tcp:1.2.3.4:5", { address = "inet:127.0.0.1:1", mode = "600" }]
admin = "localhost:80"
colour = "blue"

[network]
timeout = "fast"
nameserver = "dns.example"

[store]
url = "mysql://db"
prefix = ""

[zone.old]
profile = "postfix-tlsrpt"
postfix_version = "3.7.11"

[zone.nothing]
strict_testing = "yes"

[zone."bad name"]
profile = "postfix"
"""


def test_every_problem_is_reported_with_its_line_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BROKEN, "r.toml")
    assert [problem.to_text() for problem in caught.value.problems] == [
        "r.toml:3: colour: unknown key; use listen, max_connections, admin, overrides, strict_testing, "
        "fail_open_temp, network, store, zone",
        "r.toml:1: listen[0]: 'tcp:1.2.3.4:5' is not inet:HOST:PORT or unix:PATH; "
        'e.g. "inet:127.0.0.1:8461" or "unix:/run/mtasts-resolver/socketmap.sock"',
        "r.toml:1: listen[1]: mode, owner and group are for unix: sockets; remove them",
        "r.toml:2: admin: 'localhost' is not an IP address (listen on addresses, e.g. 0.0.0.0:443 or [::]:443); "
        'e.g. admin = "127.0.0.1:9461", or "off"',
        "r.toml:7: network.nameserver: 'dns.example' is not an IP address (give the nameserver as IP[:PORT]); "
        'e.g. nameserver = "127.0.0.1:53"',
        "r.toml:6: network.timeout: must be a number; e.g. timeout = 5.0",
        "r.toml:10: store.url: 'mysql://db': not memory, sqlite:PATH, redis://... or postgresql://...; "
        'e.g. url = "postgresql://mtasts@127.0.0.1/mtasts"',
        "r.toml:11: store.prefix: must not be empty (the store would own the whole database); remove it",
        "r.toml:11: store.prefix: is for a Redis store; remove it, or set url to redis://...",
        "r.toml:14: zone.old.profile: Postfix 3.7.11 rejects the TLSRPT attributes (they need 3.10): use postfix; "
        "match the profile to the version",
        "r.toml:17: zone.nothing: needs a profile or a postfix_version; "
        "add profile = (one of postfix, postfix-tlsrpt, postfix-legacy)",
        "r.toml:20: zone.bad name: is not a socketmap name; letters, digits, '.', '_', '-' (at most 63)",
    ]


def test_a_toml_syntax_error_points_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('listen = ["inet:127.0.0.1:8461"]\n[store\nurl = "memory"\n', "r.toml")
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert problem.to_text().startswith("r.toml:2: not valid TOML: ")


def test_listen_tables_point_at_their_own_entry(tmp_path: Path) -> None:
    text = '[[listen]]\naddress = "inet:127.0.0.1:8461"\n\n[[listen]]\naddress = "unix:/run/s"\nmode = "999"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "r.toml")
    assert [p.to_text() for p in caught.value.problems] == [
        'r.toml:4: listen[1]: mode: \'999\' is not an octal mode such as "660"; e.g. mode = "660"'
    ]
    config = parse_config(text.replace('"999"', "0o600"), "r.toml")
    assert config.listen[1] == ListenSpec(path=Path("/run/s"), mode=0o600)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("memory", StoreSettings(StoreKind.MEMORY)),
        ("sqlite:/var/lib/c.sqlite3", StoreSettings(StoreKind.SQLITE, path=Path("/var/lib/c.sqlite3"))),
        ("sqlite:///var/lib/c.sqlite3", StoreSettings(StoreKind.SQLITE, path=Path("/var/lib/c.sqlite3"))),
        ("cache.sqlite3", StoreSettings(StoreKind.SQLITE, path=Path("/base/cache.sqlite3"))),
        ("redis://127.0.0.1:6379/0", StoreSettings(StoreKind.REDIS, url="redis://127.0.0.1:6379/0")),
        ("redis+unix:///run/redis.sock", StoreSettings(StoreKind.REDIS, url="unix:///run/redis.sock")),
        ("postgres://u@h/db", StoreSettings(StoreKind.POSTGRESQL, url="postgres://u@h/db")),
    ],
)
def test_store_urls(text: str, expected: StoreSettings) -> None:
    assert parse_store(text, Path("/base")) == expected


@pytest.mark.parametrize("text", ["mysql://db", "redis://", "sqlite:", "postgresql:db"])
def test_bad_store_urls_say_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_store(text)


def test_modes() -> None:
    assert [parse_mode(v) for v in ("660", "0660", "0o660", 0o600)] == [0o660, 0o660, 0o660, 0o600]
    for bad in ("rw", "66", True, 0o17777):
        with pytest.raises(ValueError, match="mode"):
            parse_mode(bad)


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    config = parse_config(FULL, tmp_path / "resolver.toml")
    kept = apply_command_line(config, CommandLine())
    assert kept == config
    changed = apply_command_line(
        config,
        CommandLine(
            unix_mode=0o660,
            admin_off=True,
            strict_testing=False,
            fail_open_temp=True,
            timeout=1.5,
            refuse_private=False,
            store=StoreSettings(StoreKind.MEMORY),
        ),
    )
    assert changed.listen[1] == ListenSpec(path=tmp_path / "run/resolver.sock", mode=0o660, group="postfix")
    assert changed.admin is None
    assert (changed.network.timeout, changed.network.allow_private) == (1.5, True)
    assert changed.network.nameserver == ("127.0.0.1", 5353)  # not given: the file's
    assert changed.store == StoreSettings(StoreKind.MEMORY)
    assert all(not z.strict_testing and z.fail_open_temp for z in changed.zones.values())
    replaced = apply_command_line(config, CommandLine(listen=(ListenSpec(host="::1", port=1),), max_connections=5))
    assert (replaced.listen, replaced.max_connections) == ((ListenSpec(host="::1", port=1),), 5)
    redis = apply_command_line(
        parse_config('[store]\nurl = "redis://127.0.0.1/0"\n', "r.toml"), CommandLine(redis_prefix="fleet:")
    )
    assert (redis.store.url, redis.store.prefix) == ("redis://127.0.0.1/0", "fleet:")


def test_default_config_file_is_in_the_user_config_directory() -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/mtasts/resolver.toml")


# --- zones as the daemon answers them ------------------------------------------------------

TESTING = b"version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n"
WILDCARD = b"version: STSv1\nmode: enforce\nmx: *.mx.example.com\nmax_age: 86400\n"


def zoned(sources: ScriptedSources, text: str) -> ZonedResolver:
    config = parse_config(text, "r.toml")
    return ZonedResolver(sources, MemoryStore(), zones=config.zones, clock=Clock())


async def test_a_strict_testing_zone_enforces_testing_policies_the_others_do_not() -> None:
    sources = ScriptedSources()
    sources.bodies[D] = TESTING
    resolver = zoned(sources, '[zone.strict]\nprofile = "postfix"\nstrict_testing = true\n')
    await resolver.start(refresh=False)
    try:
        assert await resolver.reply("postfix", D) == encode_reply(Status.NOTFOUND)
        assert resolver.reply_now("strict", D) is None  # nothing rendered yet: reply() does the work
        assert await resolver.reply("strict", D) == ANSWER1
        assert resolver.reply_now("strict", D) == ANSWER1  # the server's hot path, for a zone too
        assert resolver.reply_now("postfix", D) == encode_reply(Status.NOTFOUND)
        assert await resolver.reply("strict", ".example.com") == encode_reply(Status.NOTFOUND)
        assert sources.calls["fetch"] == 1  # one cache for every zone
        assert resolver.results[("ok", "postfix")] == 2  # the zone's profile
    finally:
        await resolver.stop()


async def test_a_fail_open_temp_zone_defers_while_the_default_zones_fail_open() -> None:
    sources = ScriptedSources()
    sources.txts[D] = None  # DNS failing, nothing cached
    resolver = zoned(sources, '[zone.careful]\nprofile = "postfix"\nfail_open_temp = true\n')
    await resolver.start(refresh=False)
    try:
        assert await resolver.reply("postfix", D) == encode_reply(Status.NOTFOUND)
        assert await resolver.reply("careful", D) == encode_reply(Status.TEMP, "MTA-STS policy not available yet")
        assert await resolver.reply("nosuchzone", D) == encode_reply(Status.NOTFOUND)
    finally:
        await resolver.stop()


async def test_a_postfix_3_10_5_zone_leaves_wildcards_to_mx_host_pattern() -> None:
    sources = ScriptedSources()
    sources.bodies[D] = WILDCARD
    sources.txts[D] = TxtResult(TxtStatus.FOUND, "id1", 300.0)
    sources.mxs[D] = (("a.mx.example.com", "x.y.mx.example.com"), 300.0)  # type: ignore[assignment]
    resolver = zoned(sources, '[zone.new]\nprofile = "postfix-tlsrpt"\npostfix_version = "3.10.5"\n')
    await resolver.start(refresh=False)
    try:
        new = (await resolver.reply("new", D)).decode()
        old = (await resolver.reply("postfix-tlsrpt", D)).decode()
    finally:
        await resolver.stop()
    assert "secure match=.mx.example.com servername=hostname" in new
    assert "mx_host_pattern=*.mx.example.com" in new
    assert "secure match=a.mx.example.com servername=hostname" in old  # expanded, one label only


def test_wildcard_suffix_only_where_postfix_reads_mx_host_pattern() -> None:
    policy = parse_policy(WILDCARD)
    settings = AnswerSettings(wildcard_suffix=True)
    assert render_answer(D, policy, Profile.POSTFIX, settings=settings).data is None  # no MX known: nothing
    tlsrpt = render_answer(D, policy, Profile.POSTFIX_TLSRPT, settings=settings).data
    assert tlsrpt is not None
    assert tlsrpt.startswith("secure match=.mx.example.com servername=hostname policy_type=sts")


# --- serve --config ----------------------------------------------------------------------


def serve_cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    from mtasts.cli.main import app

    result = runner.invoke(app, ["resolver", "serve", *args])
    return result.exit_code, result.output


def test_serve_with_a_broken_config_is_exit_2_one_line_each(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('colour = "blue"\n[network]\ntimeout = 0\n')
    code, out = serve_cli(runner, "--config", str(path))
    assert code == 2
    assert out.splitlines() == [
        f"mtasts: error: {path}:1: colour: unknown key; use listen, max_connections, admin, overrides, "
        "strict_testing, fail_open_temp, network, store, zone",
        f"mtasts: error: {path}:3: network.timeout: 0 s is out of range; use 0.1 to 120 seconds",
    ]


def test_serve_with_a_missing_config_is_exit_3(runner: CliRunner, tmp_path: Path) -> None:
    code, out = serve_cli(runner, "--config", str(tmp_path / "none.toml"))
    assert code == 3
    assert out.startswith(f"mtasts: error: --config: cannot read {tmp_path / 'none.toml'}: ")


async def test_serve_reads_the_default_config_file_and_options_override_it(tmp_path: Path) -> None:
    """The file in $XDG_CONFIG_HOME/mtasts is read without --config; --listen replaces its
    listeners; its zone answers from its overrides file (no network needed)."""
    (tmp_path / "mtasts").mkdir()
    (tmp_path / "mtasts" / "overrides.toml").write_text(
        '[[override]]\ndomain = "example.com"\naction = "force-enforce"\nmx = ["mx9.example.com"]\n'
        'expires = 2099-01-01T00:00:00Z\nreason = "test"\n'
    )
    (tmp_path / "mtasts" / "resolver.toml").write_text(
        'listen = ["inet:127.0.0.1:1"]\noverrides = "overrides.toml"\n[store]\nurl = "memory"\n'
        '[network]\nnameserver = "127.0.0.1:9"\ntimeout = 0.5\n[zone.legacy-box]\npostfix_version = "3.3.1"\n'
    )
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "resolver",
        "serve",
        "--listen",
        "inet:127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
    )
    assert process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        found = re.search(r"listening on inet:127\.0\.0\.1:(\d+) \(cache: memory only\)", line)
        assert found, line
        zones = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        assert zones == "mtasts: resolver zones beyond the built-in profiles: legacy-box\n"
        client = await SocketmapClient.connect("127.0.0.1", int(found[1]))
        assert await client.query("legacy-box", D) == "OK secure match=mx9.example.com"
        assert await client.query("postfix", D) == "OK secure match=mx9.example.com servername=hostname"
        await client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0


def test_serve_refuses_a_ca_file_it_cannot_load(runner: CliRunner, tmp_path: Path) -> None:
    """A CA file the daemon cannot use would fail every policy fetch later, quietly turning
    enforcement off (uncached domains answered NOTFOUND): refused at start instead."""
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    path = tmp_path / "r.toml"
    path.write_text(f'[network]\nca_file = "{not_pem}"\n')
    code, out = serve_cli(runner, "--config", str(path))
    assert code == 2
    assert f"network.ca_file: {not_pem} holds no usable CA certificate" in out
    if os.geteuid() != 0:  # root reads any file: the permission case is only testable unprivileged
        not_pem.write_text("x")
        not_pem.chmod(0)
        code, out = serve_cli(runner, "--config", str(path))
        assert code == 2
        assert f"network.ca_file: cannot read {not_pem}" in out
