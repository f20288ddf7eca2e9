"""Benchmark of the mtasts TLSRPT report parser against parsedmarc's.

Run from the repository root with mtasts installed::

    python bench/report.py            # full run (plus the first-time pip install of parsedmarc)
    python bench/report.py --quick    # a few seconds
    python bench/report.py --json     # machine-readable output

parsedmarc (from PyPI) is installed into a throwaway virtual environment under ``bench/.venvs/``
(created once, then reused) and timed there, in a subprocess, on the same inputs and with the
same method (``bench/_timing.py``).

Three workloads:

* ``json``: bare report JSON (the form inside every report), one per real report of
  ``/work/shared/tlsrpt-samples`` (read in place, never copied);
* ``file``: every readable sample file as it is (JSON, gzip, e-mail), from bytes in memory;
* ``large``: generated reports with many policies and failure details (seeded).

parsedmarc runs with ``offline=True`` (no DNS or IP lookups), so both sides only parse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from mtasts.core.tlsrpt_report import ReportParseError, parse_report
from mtasts.report.mail import parse_any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_rate  # bench/ is not a package: found through sys.path

BENCH = Path(__file__).resolve().parent
PEER_SCRIPT = BENCH / "_report_peer.py"
SAMPLES = Path(os.environ.get("MTASTS_TLSRPT_SAMPLES", "/work/shared/tlsrpt-samples"))
PEER_PACKAGE = "parsedmarc"
PEER_VERSION = "11.1.0"

_RESULT_TYPES = [
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "sts-policy-fetch-error",
]


def sample_corpus() -> tuple[list[bytes], list[bytes]]:
    """(report JSON bodies, whole files) from the shared samples; empty when they are absent."""
    bodies: list[bytes] = []
    files: list[bytes] = []
    if not SAMPLES.is_dir():
        return bodies, files
    for path in sorted(SAMPLES.rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        data = path.read_bytes()
        try:
            reports = parse_any(data)
        except ReportParseError:
            continue
        files.append(data)
        bodies.extend(report.raw for report in reports)
    return bodies, files


def large_corpus(count: int, seed: int = 8460) -> list[bytes]:
    """Reports of a big receiver: 2-6 policies, up to 60 failure details each."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        policies = []
        for p in range(rng.randint(2, 6)):
            domain = f"d{p}.example{number % 7}.com"
            details = [
                {
                    "result-type": rng.choice(_RESULT_TYPES),
                    "sending-mta-ip": f"192.0.2.{rng.randint(1, 254)}",
                    "receiving-mx-hostname": f"mx{rng.randint(1, 4)}.{domain}",
                    "receiving-ip": f"198.51.100.{rng.randint(1, 254)}",
                    "failed-session-count": rng.randint(1, 500),
                }
                for _ in range(rng.randint(0, 60))
            ]
            policies.append(
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": ["version: STSv1", "mode: enforce", f"mx: *.{domain}", "max_age: 604800"],
                        "policy-domain": domain,
                        "mx-host": [f"*.{domain}"],
                    },
                    "summary": {
                        "total-successful-session-count": rng.randint(0, 10**6),
                        "total-failure-session-count": sum(d["failed-session-count"] for d in details),
                    },
                    "failure-details": details,
                }
            )
        report = {
            "organization-name": "Big Sender Inc.",
            "date-range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "2026-11-28T23:59:59Z"},
            "contact-info": "tlsrpt@big-sender.example",
            "report-id": f"2026-11-28T00:00:00Z_{number}",
            "policies": policies,
        }
        out.append(json.dumps(report, indent=1).encode())
    return out


def peer_python(reinstall: bool, quiet: bool) -> Path:
    """The interpreter of the throwaway venv holding parsedmarc, created and installed if needed."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    env_dir = BENCH / ".venvs" / f"{PEER_PACKAGE}-{PEER_VERSION}-{tag}"
    python = env_dir / "bin" / "python"
    check = [str(python), "-c", f"import {PEER_PACKAGE}"]
    if not reinstall and python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    if not quiet:
        print(f"installing {PEER_PACKAGE}=={PEER_VERSION} into {env_dir} ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    pip = [str(python), "-m", "pip", "install", "--quiet", f"{PEER_PACKAGE}=={PEER_VERSION}"]
    subprocess.run(pip, check=True, stdout=sys.stderr)
    subprocess.run(check, check=True)
    return python


def run_peer(python: Path, job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(PEER_SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def mine_read(bodies: list[bytes]) -> list[dict[str, Any]]:
    read = []
    for body in bodies:
        report = parse_report(body)
        read.append(
            {
                "organization_name": report.organization_name,
                "report_id": report.report_id,
                "policies": [[p.policy_domain, p.total_successful, p.total_failure] for p in report.policies],
            }
        )
    return read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short samples (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--no-peer", action="store_true", help="time mtasts only (no venv, no pip)")
    parser.add_argument("--reinstall", action="store_true", help="recreate the peer's venv")
    args = parser.parse_args()
    repeat, target = (3, 0.05) if args.quick else (7, 0.3)

    bodies, files = sample_corpus()
    if not bodies:
        print(f"the samples are absent ({SAMPLES}); only the generated corpus is timed", file=sys.stderr)
    large = large_corpus(20 if args.quick else 100)

    peer: dict[str, Any] | None = None
    if not args.no_peer:
        python = peer_python(args.reinstall, args.json)
        job = {
            "json_bodies": [b.decode("latin-1") for b in bodies],
            "files": [f.decode("latin-1") for f in files],
            "large": [b.decode("latin-1") for b in large],
            "repeat": repeat,
            "target": target,
        }
        peer = run_peer(python, job)
        # both sides are timed on the inputs parsedmarc accepts (mtasts accepts all of them)
        bodies = [bodies[i] for i in peer["accepted"]["json"]]
        files = [files[i] for i in peer["accepted"]["file"]]
        theirs = [peer["read"][str(i)] for i in peer.pop("accepted")["json"]]
        agree = [p == m for p, m in zip(theirs, mine_read(bodies), strict=True)]
        peer.pop("read")
        peer["agreement"] = {"same": sum(agree), "of": len(agree)}
    rates = {
        "json": best_rate(parse_report, bodies, repeat, target) if bodies else None,
        "file": best_rate(parse_any, files, repeat, target) if files else None,
        "large": best_rate(parse_report, large, repeat, target),
    }
    if peer is not None:
        peer["speedup"] = {
            name: (rates[name] / peer["rates"][name]) if rates[name] and peer["rates"].get(name) else None
            for name in rates
        }
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "corpus": {"json": len(bodies), "file": len(files), "large": len(large)},
        "mtasts": rates,
        "peer": peer,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(f"Python {report['machine']['python']} on {report['machine']['platform']}")
    corpus = report["corpus"]
    print(f"corpus: {corpus['json']} report bodies, {corpus['file']} sample files, {corpus['large']} large reports")
    peer = report["peer"]
    if peer:
        print(f"peer: {peer['package']} {peer['version']} (Python {peer['python']}, own venv, subprocess)")
        agreement = peer["agreement"]
        print(f"agreement on organisation, report-id and per-policy totals: {agreement['same']}/{agreement['of']}")
    print()
    print(f"{'workload':<10} {'mtasts /s':>12} {'parsedmarc /s':>14} {'speedup':>8}")
    for name, mine in report["mtasts"].items():
        theirs = peer["rates"].get(name) if peer else None
        speedup = peer["speedup"].get(name) if peer else None
        print(f"{name:<10} {mine or 0:>12,.0f} {theirs or 0:>14,.0f} {'' if speedup is None else f'{speedup:.1f}x':>8}")


if __name__ == "__main__":
    sys.exit(main())
