"""Bulk checks as a hosting provider runs them: a long list over every core, streamed to a file,
interrupted and resumed, split over machines; against the lab (which runs in this process: the
worker processes reach it over loopback). Most names are ``nx-N.<zone>``, names the lab's zone
does not hold: they end in ``domain-nxdomain`` after a few lookups, so a list of thousands is
checked in seconds; the catalogue's real domains are mixed in."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.check.bulk import (
    InputError,
    Shard,
    decoded_lines,
    estimate_total,
    progress_text,
    resume_point,
    shard_number,
)
from mtasts.check.render import CSV_FIELDS
from mtasts.cli.main import app
from tests.cli.terminal import COMMAND, environment, in_terminal

TIMING = ("checked_at", "elapsed_seconds")
HEADER = ",".join(CSV_FIELDS)


# --- the pure parts -------------------------------------------------------------------------


def test_shards_are_a_fixed_hash_of_the_normalised_name() -> None:
    """Pinned values: a change of hash would split one list differently on two machines."""
    assert [shard_number(n, 3) for n in ("example.com", "xn--bcher-kva.example", "enforce-ok.mtasts.test")] == [1, 2, 1]
    assert shard_number("example.com", 1000) == 711
    assert Shard.parse("2/3") == Shard(2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(ValueError, match=r"I/N|1 ≤ I ≤ N"):
            Shard.parse(bad)


def test_streamed_decoding_names_the_bad_line() -> None:
    assert list(decoded_lines(io.BytesIO("\ufeffa.example\r\nb.example".encode()), "x")) == ["a.example", "b.example"]
    assert list(decoded_lines(io.BytesIO("a.example\nb.example\n".encode("utf-16")), "x")) == [
        "a.example",
        "b.example",
    ]
    with pytest.raises(InputError, match=r"is not UTF-8 \(byte 0xe9 on line 3\)"):
        list(decoded_lines(io.BytesIO(b"a.example\nb.example\ncaf\xe9.example\n"), "list.txt"))


def test_resume_point_drops_a_torn_line_and_the_last_csv_domain() -> None:
    jsonl = b'{"domain":"a.example"}\n{"domain":"B.example."}\n{"domain":"c.exa'
    point = resume_point(io.BytesIO(jsonl), "jsonl", "out.jsonl", HEADER)
    assert point.done == {"a.example", "b.example"}
    assert point.keep == jsonl.index(b'{"domain":"c')
    rows = (
        f'{HEADER}\na.example,error,x,c1,error,,,"two\nlines",fix\n'
        "a.example,error,x,c2,error,,,m,f\nb.example,ok,x,,,,,,\n"
    )
    point = resume_point(io.BytesIO(rows.encode()), "csv", "out.csv", HEADER)
    assert point.done == {"a.example"}  # b.example's rows may be incomplete: checked again
    assert point.keep == rows.index("b.example")
    with pytest.raises(InputError, match="not a result of mtasts check"):
        resume_point(io.BytesIO(b'{"domain":"a.example"}\nhello\n'), "jsonl", "out.jsonl", HEADER)


def test_progress_figures() -> None:
    assert estimate_total(1000, 100, 50) == 500  # half the lines read so far were checked
    assert estimate_total(None, 10, 10) is None
    assert progress_text(50, 500, 10.0, "domain-nxdomain 50") == (
        "50/500 domains · 5.0/s · 0:01:30 left · errors: domain-nxdomain 50"
    )
    assert progress_text(1200, None, 10.0, "") == "1,200 domains · 120/s"


# --- through the command, against the lab ----------------------------------------------------


def _nx(lab: Any, count: int, start: int = 0) -> list[str]:
    return [f"nx-{i}.{lab.info()['zone']}" for i in range(start, start + count)]


def _canonical(value: Any) -> Any:
    """A result without its timing, and with lists in a fixed order: the lab rotates the order
    of DNS answers (TXT records, MX addresses) as real servers do, run to run."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _results(path: Path) -> dict[str, str]:
    """Domain → canonical result; each domain must appear once."""
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    out = {r["domain"]: json.dumps(_canonical(r), sort_keys=True) for r in records}
    assert len(out) == len(records), "a domain appears twice"
    return out


@pytest.mark.lab
def test_sharded_and_single_process_runs_give_the_same_results(
    runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path
) -> None:
    # mx-many probes 4 of each MX host's 6 addresses, the first in the order the lab's DNS
    # rotates: which 4 differs from run to run in one process too
    names = [*_nx(lab, 150), *(d["name"] for d in lab.info()["domains"] if d["scenario"] != "mx-many")]
    listing = tmp_path / "domains.txt"
    listing.write_text("\n".join(names) + "\n")
    results = {}
    for workers, concurrency in ((1, "16"), (2, "8")):  # the same load on the lab's servers
        output = tmp_path / f"out-{workers}.jsonl"
        args = ["check", "-f", str(listing), "-o", str(output), "-w", str(workers), "-c", concurrency, *lab_options]
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert f"{len(names)} domains:" in result.output
        results[workers] = _results(output)
    assert set(results[1]) == set(names)
    assert results[1] == results[2]


@pytest.mark.lab
def test_shards_partition_the_list(runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    names = [*_nx(lab, 120), lab.domain("enforce-ok"), lab.domain("testing-ok")]
    listing = tmp_path / "domains.txt"
    listing.write_text("\n".join(names) + "\n" + "\n".join(n.upper() for n in names[:20]) + "\n")  # repeats too
    slices = []
    for index in (1, 2, 3, 1):
        output = tmp_path / f"shard-{index}.jsonl"
        args = ["check", "-f", str(listing), "-o", str(output), "--shard", f"{index}/3", *lab_options]
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 1), result.output
        slices.append(set(_results(output)))
    assert slices[0] == slices[3]  # the same slice on every run
    assert slices[0] | slices[1] | slices[2] == set(names)
    assert sum(map(len, slices[:3])) == len(names)  # pairwise disjoint
    assert all(slices[:3])
    assert runner.invoke(app, ["check", "a.example", "--shard", "4/3"]).exit_code == 2


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment({"NO_COLOR": "1"})
    )


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} results after {timeout} s")


@pytest.mark.lab
def test_interrupted_run_resumes_with_exactly_the_rest(lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    names = [*_nx(lab, 1000), *(lab.domain(s) for s in ("enforce-ok", "mx-cert-expired", "tlsrpt-missing"))]
    listing = tmp_path / "top-domains.txt"
    listing.write_text("\n".join(names) + "\n")
    output = tmp_path / "results.jsonl"
    args = ["check", "-f", str(listing), "-o", str(output), "--workers", "2", "-c", "8", *lab_options]
    process = _start(args)
    _wait_for_lines(output, 200, process)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert b"with --resume" in stderr
    first = _results(output)  # every line whole: the writer never leaves half a line on Ctrl-C
    assert 200 <= len(first) < len(names)
    with output.open("a") as handle:  # as if killed in the middle of a line: --resume rewrites it
        handle.write('{"domain":"' + names[-1][:5])
    process = _start([*args, "--resume"])
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    rest = len(names) - len(first)
    assert f"{rest:,} domains:".replace(",", "") in stdout.decode().replace(",", ""), stdout
    assert f"({len(first)} domains already there)" in stdout.decode()
    final = _results(output)
    assert set(final) == set(names)
    assert {d: final[d] for d in first} == first  # kept, not checked again


def _descendants(root: int) -> dict[int, int]:
    """Every process below ``root``, with its parent (the workers are the forkserver's children)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, int] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found.update((pid, parents[pid]) for pid in frontier)
    return found


def _peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _watch_memory(process: subprocess.Popen[bytes]) -> Iterator[dict[int, int]]:
    """Peak RSS (VmHWM, KiB) of the run and each of its processes, sampled until it ends."""
    peaks: dict[int, int] = {}

    def sample() -> None:
        while process.poll() is None:
            for pid in [process.pid, *_descendants(process.pid)]:
                peaks[pid] = max(peaks.get(pid, 0), _peak_rss_kib(pid))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield peaks
    thread.join()


@pytest.mark.lab
def test_memory_stays_bounded_on_a_200000_line_list(lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    """200,000 distinct lines are read, normalised and remembered, and 1,000 of them checked
    against the lab: the rest are in the output file of an earlier run (``--resume``), which
    keeps the test to seconds while the reader, the set of names and the resume reader carry
    the whole list. (1,000,000 lines: docs/check.md.)"""
    zone = lab.info()["zone"]
    count, checked = 200_000, 1_000
    listing = tmp_path / "top-domains.txt"
    output = tmp_path / "results.jsonl"
    with listing.open("w") as names, output.open("w") as done:
        for i in range(count):
            name = f"nx-{i}.{zone}"
            names.write(name + "\n")
            if i >= checked:
                done.write(json.dumps({"domain": name, "status": "error"}) + "\n")
    process = _start(["check", "-f", str(listing), "-o", str(output), "--resume", "-w", "2", "-c", "16", *lab_options])
    watcher = _watch_memory(process)
    peaks = next(watcher)
    stdout, stderr = process.communicate(timeout=120)
    next(watcher, None)
    assert process.returncode == 1, stderr
    assert f"{checked} domains:" in stdout.decode().replace(",", "")
    assert output.read_bytes().count(b"\n") == count
    assert len(peaks) >= 3, peaks  # the run, its forkserver and workers were all measured
    print(f"peak RSS (KiB) per process: {peaks}")  # shown with -s: the figure for docs/check.md
    assert max(peaks.values()) <= 300 * 1024, peaks


@pytest.mark.lab
def test_a_worker_that_dies_loses_no_domain(lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    names = _nx(lab, 700)
    listing = tmp_path / "domains.txt"
    listing.write_text("\n".join(names) + "\n")
    output = tmp_path / "results.jsonl"
    process = _start(["check", "-f", str(listing), "-o", str(output), "-w", "2", "-c", "8", *lab_options])
    _wait_for_lines(output, 100, process)
    workers = [pid for pid, parent in _descendants(process.pid).items() if parent != process.pid]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert b"a check worker was killed by signal 9" in stderr
    assert set(_results(output)) == set(names)


@pytest.mark.lab
def test_progress_shows_on_a_terminal(lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    listing = tmp_path / "domains.txt"
    listing.write_text("\n".join(_nx(lab, 400)) + "\n")
    output = tmp_path / "results.jsonl"
    shown = in_terminal(["check", "-f", str(listing), "-o", str(output), "-w", "2", "-c", "4", *lab_options], 120)
    assert shown.returncode == 1, shown.stdout
    assert "checking" in shown.stdout
    assert "/400 domains · " in shown.stdout
    assert "errors: domain-nxdomain" in shown.stdout
    assert "400 domains: 0 ok, 0 with warnings, 400 with errors; results in" in shown.stdout


@pytest.mark.lab
def test_resume_into_csv_keeps_one_header_and_each_domain_once(
    runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path
) -> None:
    names = [lab.domain("enforce-ok"), lab.domain("policy-404"), lab.domain("tlsrpt-missing")]
    output = tmp_path / "results.csv"
    assert runner.invoke(app, ["check", *names[:2], "-o", str(output), *lab_options]).exit_code == 1
    with output.open("a") as handle:
        handle.write(f"{names[2]},warn")  # torn
    result = runner.invoke(app, ["check", *names, "-o", str(output), "--resume", *lab_options])
    assert result.exit_code == 1, result.output
    # the last domain of a CSV file may have lost rows: it is checked again, with the new one
    assert "2 domains:" in result.output
    assert "(1 domain already there)" in result.output
    lines = output.read_text().splitlines()
    assert lines.count(HEADER) == 1
    assert lines[0] == HEADER
    domains = [line.split(",", 1)[0] for line in lines[1:]]
    assert set(domains) == set(names)
    assert [d for i, d in enumerate(domains) if i == 0 or domains[i - 1] != d] == list(dict.fromkeys(domains))


def test_resume_needs_an_output_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "a.example", "--resume"])
    assert result.exit_code == 2
    assert "--resume continues the results of --output FILE" in result.output
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text("my own notes\n")
    result = runner.invoke(app, ["check", "a.example", "-o", str(foreign), "--resume"])
    assert result.exit_code == 3
    assert "line 1 of" in result.output
    assert "not a result of mtasts check" in result.output
    assert foreign.read_text() == "my own notes\n"  # left alone
