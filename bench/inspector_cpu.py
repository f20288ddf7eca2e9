"""Client CPU per checked domain of the mtasts inspector, on a lab already running (issue 12).

``bench/inspector.py`` measures everything against checkdmarc and takes minutes; this one only
answers "how much CPU does ``Inspector.check_many`` spend per domain" over the same bulk set, in a
few seconds, so a change in the client's hot path can be measured before and after. Start the lab
first, in its own process (the bulk set's copies of the catalogue scenarios, on the standard
ports, as ``bench/inspector.py`` runs it)::

    python bench/inspector.py --serve-lab /tmp/lab.json --network 127.244.0.0/16 --bulk 1000 &
    python bench/inspector_cpu.py --info /tmp/lab.json                    # 3 rounds, best one counts
    python bench/inspector_cpu.py --info /tmp/lab.json --profile          # cProfile (CPU time)
    python bench/inspector_cpu.py --info /tmp/lab.json --jsonl out.jsonl  # the results, for a diff

Client CPU is ``time.process_time()`` of this process around ``check_many`` (the lab is another
process). ``--jsonl`` writes each report's ``report_json_line`` without its timing fields
(``elapsed_seconds``, ``checked_at``), sorted by domain, so two runs compare with ``diff``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inspector import BULK_EXCLUDED, bulk_names, lab_settings


def _strip_timing(line: str) -> str:
    data = json.loads(line)
    data.pop("elapsed_seconds", None)
    data.pop("checked_at", None)
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--info", type=Path, required=True, help="the lab's info file (--serve-lab)")
    parser.add_argument("--bulk", type=int, default=1000, help="bulk domains to check (1000)")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="check_many concurrency (32)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-step timeout (2 s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs; the least CPU counts (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile (CPU time) one more run")
    parser.add_argument("--top", type=int, default=40, help="functions shown by --profile (40)")
    parser.add_argument("--jsonl", type=Path, help="write the results of the first run (no timing fields)")
    args = parser.parse_args()

    from mtasts.check.inspect import DomainReport, Inspector
    from mtasts.check.render import report_json_line
    from mtasts.cli._run import run_async

    info: dict[str, Any] = json.loads(args.info.read_text())
    settings = lab_settings(info, args.timeout)
    bulk = [f"{name}.{info['zone']}" for name, _ in bulk_names(args.bulk)]

    async def run() -> list[DomainReport]:
        return [report async for report in Inspector(settings).check_many(bulk, concurrency=args.concurrency)]

    figures: list[tuple[float, float]] = []
    for round_ in range(args.rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        reports = run_async(run())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        figures.append((cpu * 1000 / len(reports), len(reports) / wall))
        print(f"round {round_ + 1}: {figures[-1][0]:.2f} ms client CPU/domain, {figures[-1][1]:.0f} domains/s")
        if round_ == 0 and args.jsonl is not None:
            lines = sorted(_strip_timing(report_json_line(r)) for r in reports)
            args.jsonl.write_text("".join(f"{line}\n" for line in lines))
    best = min(figures)
    print(f"best: {best[0]:.2f} ms client CPU/domain over {len(bulk)} domains (excluded: {sorted(BULK_EXCLUDED)})")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run_async(run())
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
