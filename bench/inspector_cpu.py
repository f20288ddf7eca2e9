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

The process runs as a worker of ``mtasts check -f`` does: the garbage collector set by
:func:`mtasts.check.workers.tune_collector`, and no report kept once counted (a worker sends
each one away), so the figure is what a bulk run costs per domain. ``--default-gc`` keeps
CPython's collector settings, for comparison; ``--gc-stats`` also prints the CPU time the
collector took (``gc.callbacks``), which is steadier than the totals on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inspector import BULK_EXCLUDED, bulk_names, lab_settings


class _CollectorClock:
    """CPU time spent in the cyclic garbage collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


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
    parser.add_argument("--default-gc", action="store_true", help="CPython's collector settings, not a worker's")
    parser.add_argument("--gc-stats", action="store_true", help="also print the collector's CPU time per domain")
    args = parser.parse_args()

    from mtasts.check.inspect import Inspector
    from mtasts.check.render import report_json_line
    from mtasts.check.workers import tune_collector
    from mtasts.cli._run import run_async

    info: dict[str, Any] = json.loads(args.info.read_text())
    settings = lab_settings(info, args.timeout)
    bulk = [f"{name}.{info['zone']}" for name, _ in bulk_names(args.bulk)]
    collector = _CollectorClock()
    if args.gc_stats:
        gc.callbacks.append(collector.callback)

    async def run(lines: list[str] | None) -> int:
        count = 0
        async for report in Inspector(settings).check_many(bulk, concurrency=args.concurrency):
            count += 1
            if lines is not None:
                lines.append(_strip_timing(report_json_line(report)))
        return count

    if not args.default_gc:
        tune_collector()
    which = "CPython defaults" if args.default_gc else "as the workers of mtasts check -f"
    print(f"collector: {which} {gc.get_threshold()}")
    figures: list[tuple[float, float]] = []
    for round_ in range(args.rounds):
        lines = [] if round_ == 0 and args.jsonl is not None else None
        collector.seconds = 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        count = run_async(run(lines))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        figures.append((cpu * 1000 / count, count / wall))
        gc_text = f", collector {collector.seconds * 1000 / count:.3f} ms/domain" if args.gc_stats else ""
        print(f"round {round_ + 1}: {figures[-1][0]:.2f} ms client CPU/domain, {figures[-1][1]:.0f} domains/s{gc_text}")
        if lines is not None and args.jsonl is not None:
            args.jsonl.write_text("".join(f"{line}\n" for line in sorted(lines)))
    best = min(figures)
    print(f"best: {best[0]:.2f} ms client CPU/domain over {len(bulk)} domains (excluded: {sorted(BULK_EXCLUDED)})")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run_async(run(None))
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
