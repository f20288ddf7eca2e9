"""``mtasts publish retire``: its configuration edits (pure) and its driver steps.

The edits are checked as an operator would: the file still loads, says what was asked, and
keeps everything else (comments, other entries, sections) byte for byte. The driver steps run
:func:`~mtasts.publish.apply.apply_plan` on a plan of the real state machine against a small
in-memory world (the real history; the DNS and the host as plain recorders, since here the
point is the order and what is printed: the real knotd and host run in test_rollout_lab.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mtasts.core.policy import Mode, Policy
from mtasts.publish.apply import HostEffects, Outcome, StepFailed, apply_plan
from mtasts.publish.config import parse_config
from mtasts.publish.history import MemoryPublishHistory, Served
from mtasts.publish.plan import DnsRecord
from mtasts.publish.retire import RetireEditError, remove_config_text, retire_config_text
from mtasts.publish.rollout import LiveState, Rules, Stage, plan_rollout, stage_of

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

CONFIG = """\
# the policy host of example.com and friends
[server]
admin = "off"

[[domain]]
name = "example.org"
mode = "testing"
mx = ["mx.example.org"]
max_age = 86400

# example.com: the main domain
[[domain]]
name = "example.com"
mode = "enforce"   # since the audit
mx = [
    "mx1.example.com",
    "mx2.example.com",
]
max_age = 604800

# example.net: next
[[domain]]
name = "example.net"
mode = "testing"
mx = ["mx.example.net"]
max_age = 3600
"""


def test_retiring_sets_mode_none_and_a_short_max_age_on_the_entry_alone() -> None:
    edited = retire_config_text(CONFIG, "publish.toml", "Example.COM.")
    assert edited == CONFIG.replace('mode = "enforce"   # since', 'mode = "none"   # since').replace(
        "max_age = 604800", "max_age = 86400"
    )
    entry = parse_config(edited, "publish.toml").domain("example.com")
    assert entry is not None
    assert (entry.mode, entry.max_age, entry.mx) == (Mode.NONE, 86400, ("mx1.example.com", "mx2.example.com"))
    assert retire_config_text(edited, "publish.toml", "example.com") == edited  # already retiring: unchanged
    shorter = retire_config_text(CONFIG, "publish.toml", "example.net", Rules(retire_max_age=86400))
    assert 'name = "example.net"\nmode = "none"\nmx = ["mx.example.net"]\nmax_age = 3600' in shorter


def test_removal_comments_the_entry_out_and_leaves_the_next_entrys_comment() -> None:
    retired = retire_config_text(CONFIG, "publish.toml", "example.com")
    removed = remove_config_text(retired, "publish.toml", "example.com", now=T0 + 9 * DAY)
    config = parse_config(removed, "publish.toml")
    assert [d.name for d in config.domains] == ["example.org", "example.net"]
    block = removed.split("# example.com: the main domain\n", 1)[1].split("\n\n# example.net: next", 1)[0]
    assert block.splitlines() == [
        "# example.com: removed by mtasts publish retire on 2026-12-10 12:00 UTC (no sender can hold its policy any "
        "more; its _mta-sts record is gone)",
        "# [[domain]]",
        '# name = "example.com"',
        '# mode = "none"   # since the audit',
        "# mx = [",
        '#     "mx1.example.com",',
        '#     "mx2.example.com",',
        "# ]",
        "# max_age = 86400",
    ]
    assert removed.endswith(
        '[[domain]]\nname = "example.net"\nmode = "testing"\nmx = ["mx.example.net"]\nmax_age = 3600\n'
    )
    last = remove_config_text(CONFIG, "publish.toml", "example.net", now=T0)
    assert [d.name for d in parse_config(last, "publish.toml").domains] == ["example.org", "example.com"]


@pytest.mark.parametrize(
    "text",
    [
        '[[domain]]\nname = "example.com"\n"mode" = "testing"\nmx = ["mx.example.com"]\nmax_age = 86400\n',
        '[[domain]]\nname = "example.com"\nmode = """testing"""\nmx = ["mx.example.com"]\nmax_age = 86400\n',
        'domain = [{name = "example.com", mode = "testing", mx = ["mx.example.com"], max_age = 86400}]\n',
    ],
)
def test_an_entry_the_line_edit_cannot_read_is_left_to_the_operator(text: str) -> None:
    assert parse_config(text, "publish.toml").domain("example.com") is not None  # a file that loads
    with pytest.raises(RetireEditError, match=r"example\.com.* by hand"):
        retire_config_text(text, "publish.toml", "example.com")


def test_a_domain_not_configured_cannot_be_edited() -> None:
    with pytest.raises(RetireEditError, match=r"^example\.info is not in publish\.toml$"):
        retire_config_text(CONFIG, "publish.toml", "example.info")


# --- the driver ---------------------------------------------------------------------------------------


class Recorder:
    """The DNS server and the host, as plain data: what the driver asked of them."""

    def __init__(self, txt: tuple[str, ...]) -> None:
        self.txt = txt
        self.deleted: list[str] = []
        self.stopped: list[str] = []

    async def reload(self) -> str:
        return "reloaded"

    async def fetch(self, name: str) -> bytes:
        raise StepFailed("not served")

    async def publish(self, record: DnsRecord) -> None:
        self.txt = (record.value,)

    async def confirm(self, record: DnsRecord) -> tuple[str, ...]:
        return self.txt

    async def delete(self, record: DnsRecord) -> None:
        self.deleted.append(record.name)
        self.txt = ()

    async def stop_serving(self, name: str) -> str:
        self.stopped.append(name)
        return f"mta-sts.{name} serves no policy any more"


def retiring_history() -> MemoryPublishHistory:
    history = MemoryPublishHistory()
    enforce = Policy(mode=Mode.ENFORCE, max_age=604800, mx=("mx.example.com",))
    none = Policy(mode=Mode.NONE, max_age=86400, mx=("mx.example.com",))
    history.record(Served("example.com", "a1", enforce.to_text().encode(), Mode.ENFORCE, 604800, T0 - 30 * DAY))
    history.record(Served("example.com", "a2", none.to_text().encode(), Mode.NONE, 86400, T0))
    return history


def zone_line(record: DnsRecord) -> str:
    return record.to_zone_line()


async def test_after_the_wait_the_record_is_deleted_then_serving_stops_and_the_history_says_removed() -> None:
    history = retiring_history()
    world = Recorder(("v=STSv1; id=a2",))
    entries = history.entries("example.com")
    live = LiveState(served_body=entries[-1].body, sts_records=world.txt, mx_hosts=("mx.example.com",))
    effects = HostEffects(
        reload=world.reload,
        fetch=world.fetch,
        history=history,
        publish=world.publish,
        confirm=world.confirm,
        delete=world.delete,
        stop_serving=world.stop_serving,
    )
    early = plan_rollout("example.com", None, entries, live, now=T0 + 6 * DAY)
    assert early.steps == ()  # taken out of the configuration too early: nothing is done

    plan = plan_rollout("example.com", None, entries, live, now=T0 + 7 * DAY)
    applied = await apply_plan(plan, effects, now=T0 + 7 * DAY, zone_line=zone_line)
    assert applied.outcome is Outcome.DONE
    assert applied.done == (
        "deleted: the TXT record at _mta-sts.example.com (RFC 2136 update); no v=STSv1 record is left",
        "stopped: mta-sts.example.com serves no policy any more",
        "recorded: example.com removed (id a2 served until 2026-12-08 12:00 UTC)",
    )
    assert (world.deleted, world.stopped) == (["_mta-sts.example.com"], ["example.com"])
    assert stage_of(history.entries("example.com")) is Stage.REMOVED


async def test_without_dns_the_exact_record_to_delete_is_printed_and_nothing_stops() -> None:
    history = retiring_history()
    world = Recorder(("v=STSv1; id=a2",))
    entries = history.entries("example.com")
    live = LiveState(served_body=entries[-1].body, sts_records=world.txt, mx_hosts=("mx.example.com",))
    effects = HostEffects(
        reload=world.reload,
        fetch=world.fetch,
        history=history,
        publish=None,
        confirm=None,
        stop_serving=world.stop_serving,
    )
    plan = plan_rollout("example.com", None, entries, live, now=T0 + 7 * DAY)
    applied = await apply_plan(plan, effects, now=T0 + 7 * DAY, zone_line=zone_line)
    assert applied.outcome is Outcome.SET_RECORD
    assert applied.message == (
        'delete this record, then run the command again: _mta-sts.example.com. 3600 IN TXT "v=STSv1; id=a2"'
    )
    assert world.stopped == []  # the name is still served while the record may be live
    assert stage_of(history.entries("example.com")) is Stage.RETIRING


async def test_apply_stops_at_stop_serving_and_names_the_command_that_does_it() -> None:
    history = retiring_history()
    entries = history.entries("example.com")
    live = LiveState(served_body=entries[-1].body, sts_records=(), mx_hosts=("mx.example.com",))
    world = Recorder(())
    effects = HostEffects(reload=world.reload, fetch=world.fetch, history=history, publish=None, confirm=None)
    plan = plan_rollout("example.com", None, entries, live, now=T0 + 7 * DAY)
    applied = await apply_plan(plan, effects, now=T0 + 7 * DAY, zone_line=zone_line)
    assert applied.outcome is Outcome.WAITING
    assert applied.message.endswith("(mtasts publish retire example.com carries this out)")
    assert stage_of(history.entries("example.com")) is Stage.RETIRING
