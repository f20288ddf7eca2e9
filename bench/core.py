"""Benchmark of the mtasts core parsers against postfix-mta-sts-resolver's.

Run from the repository root with mtasts installed::

    python bench/core.py            # full run (about a minute, plus the first-time pip install)
    python bench/core.py --quick    # a few seconds
    python bench/core.py --json     # machine-readable output

The peer (postfix-mta-sts-resolver, from PyPI) is installed into a throwaway virtual environment
under ``bench/.venvs/`` (created once, then reused) and timed there, in a subprocess, on the same
corpus and with the same method (``bench/_timing.py``). Goal (foundation issue): mtasts parses
policies at least 3x as fast as the peer.

The corpus is generated (seeded, so every run uses the same inputs): policies of realistic shape
(1-5 mx lines, wildcards, some A-labels, LF and CRLF, with and without the final line break, a
few extensions) and ``_mta-sts`` TXT records; the valid vectors of
``/work/shared/vectors/`` are added when that folder exists (read in place, never copied).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtasts.core.mx import mx_pattern_matches
from mtasts.core.policy import Policy, lint_policy, parse_policy
from mtasts.core.record import lint_sts_record, parse_sts_record

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_rate  # bench/ is not a package: found through sys.path

BENCH = Path(__file__).resolve().parent
TIMING_SCRIPT = BENCH / "_timing.py"
VECTORS = Path(os.environ.get("MTASTS_VECTORS", "/work/shared/vectors"))
PEER_PACKAGE = "postfix-mta-sts-resolver"
GOAL = 3.0  # policy parse rate, mtasts / peer

# --- the corpus ------------------------------------------------------------------------------

_DOMAINS = [
    "example.com", "example.net", "example.org", "mail-corp.de", "shop.example.co.uk", "univ.example.edu",
    "bank.example", "xn--bcher-kva.example", "news.example.io", "sub.dept.example.fr", "a1-b2.example.nl",
]  # fmt: skip
_PROVIDER_MX = [
    "aspmx.l.google.com", "alt1.aspmx.l.google.com", "alt2.aspmx.l.google.com", "*.mail.protection.outlook.com",
    "mx1.mailbox.example", "mx.zoho.eu", "*.mx.cloudflare.example", "in1-smtp.messagingengine.com",
]  # fmt: skip
_EXTENSIONS = [("comment", "managed by ops"), ("x-contact", "postmaster@example.com"), ("x.rev", "42")]


def _policy_text(rng: random.Random) -> str:
    domain = rng.choice(_DOMAINS)
    mode = rng.choices(["enforce", "testing", "none"], weights=[6, 3, 1])[0]
    count = rng.choices([1, 2, 3, 4, 5], weights=[3, 4, 2, 1, 1])[0]
    mx: list[str] = []
    for index in range(count):
        kind = rng.random()
        if kind < 0.45:
            mx.append(f"mx{index + 1}.{domain}")
        elif kind < 0.6:
            mx.append(f"*.{domain}")
        elif kind < 0.7:
            mx.append(f"Mail{index + 1}.{domain.upper()}")  # matching ignores case
        else:
            mx.append(rng.choice(_PROVIDER_MX))
    lines = ["version: STSv1", f"mode: {mode}"]
    max_age = f"max_age: {rng.choice([86400, 604800, 1209600, 2592000, 31557600])}"
    if rng.random() < 0.2:
        lines.append(max_age)
        lines.extend(f"mx: {pattern}" for pattern in mx)
    else:
        lines.extend(f"mx: {pattern}" for pattern in mx)
        lines.append(max_age)
    if rng.random() < 0.1:
        lines.extend(f"{name}: {value}" for name, value in rng.sample(_EXTENSIONS, rng.randint(1, 2)))
    newline = "\r\n" if rng.random() < 0.5 else "\n"
    return newline.join(lines) + (newline if rng.random() < 0.85 else "")


def _record_text(rng: random.Random) -> str:
    record_id = rng.choice(
        [
            f"{rng.randint(2016, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}T{rng.randint(0, 235959):06d}",
            f"{rng.randint(1, 10**9)}",
            "".join(rng.choices("abcdefABCDEF0123456789", k=rng.randint(8, 32))),
        ]
    )
    text = f"v=STSv1; id={record_id}"
    if rng.random() < 0.05:
        text += "; ext=1"
    return text + (";" if rng.random() < 0.3 else "")


def _hosts_for(policy: Policy, rng: random.Random) -> list[str]:
    """Hosts to match against a policy: ones that match (as in DNS answers) and ones that do not."""
    hosts = []
    for pattern in policy.mx:
        if pattern.startswith("*."):
            hosts.append(f"mx{rng.randint(1, 9)}.{pattern[2:]}")
        else:
            hosts.append(pattern.lower() + ("." if rng.random() < 0.3 else ""))
    hosts.append("mx.attacker.example")
    hosts.append(f"a.b.{policy.mx[0].removeprefix('*.')}" if policy.mx else "mx.example.com")
    return hosts


@dataclass
class Corpus:
    policies: list[str]
    records: list[str]
    match_pairs: list[tuple[Policy, str]]
    pattern_pairs: list[tuple[str, str]]
    vector_policies: int
    vector_records: int


def build_corpus(size: int) -> Corpus:
    rng = random.Random(8461)
    policies = [_policy_text(rng) for _ in range(size)]
    records = [_record_text(rng) for _ in range(size)]
    vector_policies = vector_records = 0
    policy_file, record_file = VECTORS / "sts-policy-vectors.json", VECTORS / "sts-txt-vectors.json"
    if policy_file.is_file():
        for vector in json.loads(policy_file.read_text("utf-8"))["vectors"]:
            if vector["expect"] == "valid" and not vector.get("input_bytes_hex"):
                policies.append(vector["input"])
                vector_policies += 1
    if record_file.is_file():
        for vector in json.loads(record_file.read_text("utf-8"))["vectors"]:
            if vector.get("kind") == "record" and vector["expect"] == "valid" and isinstance(vector["input"], str):
                records.append(vector["input"])
                vector_records += 1
    parsed = [parse_policy(text) for text in policies]  # raises if the corpus has an invalid policy
    for text in records:
        parse_sts_record(text)
    match_pairs = [(policy, host) for policy in parsed if policy.mx for host in _hosts_for(policy, rng)]
    pattern_pairs = [(policy.mx[i % len(policy.mx)], host) for i, (policy, host) in enumerate(match_pairs)]
    return Corpus(policies, records, match_pairs, pattern_pairs, vector_policies, vector_records)


# --- the peer --------------------------------------------------------------------------------


def peer_python(reinstall: bool, quiet: bool) -> Path:
    """The interpreter of the throwaway venv holding the peer, created and installed if needed."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    env_dir = BENCH / ".venvs" / f"postfix-mta-sts-resolver-{tag}"
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    check = [str(python), "-c", "import postfix_mta_sts_resolver.utils"]
    if not reinstall and python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    if not quiet:
        print(f"installing {PEER_PACKAGE} into {env_dir.relative_to(BENCH.parent)} ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", PEER_PACKAGE]
    subprocess.run(pip, check=True, stdout=sys.stderr)
    subprocess.run(check, check=True)
    return python


def policy_subsets(corpus: Corpus) -> dict[str, list[int]]:
    """The policies with an A-label in an mx pattern (its check decodes the Punycode) and the rest."""
    alabel = [i for i, text in enumerate(corpus.policies) if "xn--" in text.lower()]
    rest = sorted(set(range(len(corpus.policies))) - set(alabel))
    return {"alabel": alabel, "ascii": rest}


def run_peer(python: Path, corpus: Corpus, repeat: int, target: float) -> dict[str, Any]:
    job = {
        "policies": corpus.policies,
        "policy_subsets": policy_subsets(corpus),
        "records": corpus.records,
        "repeat": repeat,
        "target": target,
    }
    done = subprocess.run(
        [str(python), str(TIMING_SCRIPT)], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the peer benchmark failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def compare_results(corpus: Corpus, peer: dict[str, Any]) -> dict[str, Any]:
    """On how many inputs the peer (with its resolver checks) reads what mtasts reads, and the others."""
    policy_differences = []
    for text, theirs in zip(corpus.policies, peer["policies"], strict=True):
        ours, problems = lint_policy(text)
        assert ours is not None
        if theirs is None or (ours.mode.value, ours.max_age, list(ours.mx)) != (
            theirs["mode"],
            theirs["max_age"],
            theirs["mx"],
        ):
            repeated = any(p.code == "policy.field.duplicate" for p in problems)
            policy_differences.append({"input": text, "peer": theirs, "repeated_field": repeated})
    record_differences = []
    for text, theirs_id in zip(corpus.records, peer["records"], strict=True):
        record, problems = lint_sts_record(text)
        assert record is not None
        if theirs_id != record.id:
            repeated = any(p.code == "record.field.duplicate" for p in problems)
            record_differences.append({"input": text, "peer_id": theirs_id, "repeated_field": repeated})
    return {
        "policies": len(corpus.policies) - len(policy_differences),
        "records": len(corpus.records) - len(record_differences),
        "policy_differences": policy_differences,
        "record_differences": record_differences,
    }


# --- the run ---------------------------------------------------------------------------------

MTASTS_POLICY = (
    "parse_policy(text): full RFC 8461 §3.2 validation (line grammar, host-name syntax and A-labels of every mx, "
    "mode, max_age range, required fields, duplicates) and an immutable Policy with normalised mx patterns"
)
PEER_POLICY = (
    "utils.parse_mta_sts_policy(text): splitlines + partition(':') into a dict; no validation at all, "
    "max_age stays a string, invalid lines are kept as keys"
)
PEER_POLICY_CHECKED = (
    "parse_mta_sts_policy + the checks STSResolver.resolve makes after it (version == 'STSv1', int(max_age) in "
    "range, mode known, mx non-empty; transcribed, as they are inline); still no check of mx syntax or of lines"
)
MTASTS_RECORD = (
    "parse_sts_record(text): version literal, delimiters, id syntax (1-32 alphanumerics), extension "
    "grammar, duplicates; an immutable StsRecord"
)
PEER_RECORD = "utils.parse_mta_sts_record(text): split(';') + partition('=') into a dict; no validation"
PEER_RECORD_CHECKED = (
    "startswith('v=STSv1') + parse_mta_sts_record + v == 'STSv1' and 'id' present (from STSResolver.resolve); "
    "id syntax is not checked"
)
NO_PEER_MATCH = (
    "no equivalent: the peer does not match MX host names itself; it hands the patterns to Postfix "
    "(responder: 'secure match=...')"
)


def time_mtasts(corpus: Corpus, repeat: int, target: float) -> dict[str, float]:
    """The mtasts rates, keyed like the peer's (``bench/_timing.py``)."""
    rates = {
        "policy.parse": best_rate(parse_policy, corpus.policies, repeat, target),
        "record.parse": best_rate(parse_sts_record, corpus.records, repeat, target),
        "match.policy": best_rate(Policy.matches, corpus.match_pairs, repeat, target, star=True),
        "match.pattern": best_rate(mx_pattern_matches, corpus.pattern_pairs, repeat, target, star=True),
    }
    for name, indexes in policy_subsets(corpus).items():
        rates[f"policy.parse:{name}"] = best_rate(parse_policy, [corpus.policies[i] for i in indexes], repeat, target)
    return rates


def best_of_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: max(r[key] for r in rounds) for key in rounds[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small corpus, few repeats (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--rounds", type=int, help="alternate peer and mtasts timing this many times (default 3, quick 1)"
    )
    parser.add_argument("--no-peer", action="store_true", help="time mtasts only (no venv, no pip)")
    parser.add_argument("--reinstall", action="store_true", help="recreate the peer's virtual environment")
    args = parser.parse_args()

    size, repeat, target, rounds = (100, 3, 0.02, 1) if args.quick else (500, 7, 0.2, 3)
    rounds = args.rounds or rounds
    corpus = build_corpus(size)
    python = None if args.no_peer else peer_python(args.reinstall, args.json)
    # Alternating the two sides spreads any load on the machine over both; each keeps its best.
    peer_runs: list[dict[str, Any]] = []
    mtasts_rounds: list[dict[str, float]] = []
    for _ in range(rounds):
        if python is not None:
            peer_runs.append(run_peer(python, corpus, repeat, target))
        mtasts_rounds.append(time_mtasts(corpus, repeat, target))
    peer = peer_runs[0] if peer_runs else None
    peer_rates = best_of_rounds([run["rates"] for run in peer_runs]) if peer_runs else {}
    ours = best_of_rounds(mtasts_rounds)
    policy_rate = ours["policy.parse"]
    record_rate = ours["record.parse"]
    subsets = policy_subsets(corpus)
    rows = [
        ("policy parse", policy_rate, peer_rates.get("policy.parse"), MTASTS_POLICY, PEER_POLICY),
        ("policy parse, peer with its resolver checks", policy_rate, peer_rates.get("policy.parse_checked"),
         MTASTS_POLICY, PEER_POLICY_CHECKED),
        (f"  the {len(subsets['ascii'])} policies without A-labels", ours["policy.parse:ascii"],
         peer_rates.get("policy.parse:ascii"), MTASTS_POLICY, PEER_POLICY),
        (f"  the {len(subsets['alabel'])} policies with an A-label mx", ours["policy.parse:alabel"],
         peer_rates.get("policy.parse:alabel"), MTASTS_POLICY, PEER_POLICY),
        ("record parse", record_rate, peer_rates.get("record.parse"), MTASTS_RECORD, PEER_RECORD),
        ("record parse, peer with its resolver checks", record_rate, peer_rates.get("record.parse_checked"),
         MTASTS_RECORD, PEER_RECORD_CHECKED),
        ("mx match: Policy.matches(host)", ours["match.policy"], None,
         "Policy.matches(host) on a parsed policy (patterns normalised at parse time)", NO_PEER_MATCH),
        ("mx match: mx_pattern_matches(pattern, host)", ours["match.pattern"],
         None, "mx_pattern_matches(pattern, host): normalises both, then compares", NO_PEER_MATCH),
    ]  # fmt: skip

    results = [
        {
            "operation": name,
            "mtasts_ops_per_s": round(ours),
            "peer_ops_per_s": None if theirs is None else round(theirs),
            "ratio": None if theirs is None else round(ours / theirs, 2),
            "mtasts_measures": ours_what,
            "peer_measures": theirs_what,
        }
        for name, ours, theirs, ours_what, theirs_what in rows
    ]
    agreement = None if peer is None else compare_results(corpus, peer)
    policy_peer = peer_rates.get("policy.parse")
    policy_ratio = None if policy_peer is None else round(policy_rate / policy_peer, 2)
    report = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "mode": "quick" if args.quick else "full",
        "method": (
            f"best of {repeat} samples of ~{target}s each (whole corpus per pass, gc off, time.perf_counter), "
            f"best of {rounds} round(s) alternating peer and mtasts"
        ),
        "peer": None if peer is None else {"package": peer["package"], "version": peer["version"],
                                           "python": peer["python"]},
        "corpus": {"policies": len(corpus.policies), "of_which_vectors": corpus.vector_policies,
                   "records": len(corpus.records), "of_which_record_vectors": corpus.vector_records,
                   "match_pairs": len(corpus.match_pairs)},
        "agreement": agreement,
        "results": results,
        "goal": {"policy_parse_ratio_at_least": GOAL, "ratio": policy_ratio,
                 "met": None if policy_ratio is None else policy_ratio >= GOAL},
    }  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    corpus, peer = report["corpus"], report["peer"]
    print(f"Python {report['python']} ({report['implementation']}), {report['mode']} run: {report['method']}")
    print(
        f"corpus: {corpus['policies']} policies ({corpus['of_which_vectors']} from the valid vectors), "
        f"{corpus['records']} records ({corpus['of_which_record_vectors']} from vectors), "
        f"{corpus['match_pairs']} (policy, host) pairs"
    )
    if peer is not None:
        print(f"peer: {peer['package']} {peer['version']} (Python {peer['python']}, own venv, subprocess)")
        agreement = report["agreement"]
        print(
            f"same inputs: the peer (with its resolver checks) reads the same mode, max_age and mx on "
            f"{agreement['policies']}/{corpus['policies']} policies and the same id on "
            f"{agreement['records']}/{corpus['records']} records"
        )
        differences = agreement["policy_differences"] + agreement["record_differences"]
        if differences:
            repeated = sum(1 for d in differences if d["repeated_field"])
            print(
                f"  {repeated} of the {len(differences)} differences have a repeated field: mtasts keeps the first "
                "value, the peer the last (--json lists them)"
            )
    print()
    width = max(len(r["operation"]) for r in report["results"])
    print(f"{'operation':<{width}}  {'mtasts ops/s':>13}  {'peer ops/s':>13}  {'ratio':>6}")
    print(f"{'-' * width}  {'-' * 13}  {'-' * 13}  {'-' * 6}")
    for row in report["results"]:
        theirs = "n/a" if row["peer_ops_per_s"] is None else f"{row['peer_ops_per_s']:,}"
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"{row['operation']:<{width}}  {row['mtasts_ops_per_s']:>13,}  {theirs:>13}  {ratio:>6}")
    print("\nwhat is measured (one op = one call on one corpus item):")
    seen: set[str] = set()
    for row in report["results"]:
        for side in ("mtasts", "peer"):
            text = row[f"{side}_measures"]
            if text not in seen:
                seen.add(text)
                print(f"  {side:<6}  {text}")
    goal = report["goal"]
    if goal["ratio"] is not None:
        verdict = "met" if goal["met"] else "NOT met"
        wanted = goal["policy_parse_ratio_at_least"]
        print(f"\ngoal: policy parse >= {wanted:.0f}x the peer's: {verdict} ({goal['ratio']:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
