"""The timing method shared by both sides of ``bench/core.py``, and the peer side itself.

This file runs under two interpreters: imported by ``bench/core.py`` (mtasts side) and executed
as a script by the throwaway virtual environment's Python, where postfix-mta-sts-resolver is
installed and mtasts is not. It therefore uses the standard library only.

Method (the same on both sides): one "pass" calls the function once per corpus item; a pass is
repeated ``inner`` times per sample so that a sample lasts about ``target`` seconds; the garbage
collector is off during a sample (as in :mod:`timeit`); the rate is taken from the fastest of
``repeat`` samples, timed with :func:`time.perf_counter`.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def best_rate(
    func: Callable[..., object], items: Sequence[Any], repeat: int, target: float, star: bool = False
) -> float:
    """Calls of ``func`` per second over ``items`` (``func(*item)`` when ``star``), best of ``repeat``."""

    def one_sample(inner: int) -> float:
        enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            if star:
                for _ in range(inner):
                    for item in items:
                        func(*item)
            else:
                for _ in range(inner):
                    for item in items:
                        func(item)
            return time.perf_counter() - start
        finally:
            if enabled:
                gc.enable()

    once = max(one_sample(1), 1e-9)  # also a warm-up pass
    inner = max(1, round(target / once))
    best = min(one_sample(inner) for _ in range(repeat))
    return inner * len(items) / best


# --- the peer side ---------------------------------------------------------------------------


def _peer_main() -> None:
    """Read ``{"policies", "policy_subsets", "records", "repeat", "target"}`` as JSON on stdin,
    time the peer's parsers on them and write the rates (and what it parsed, for the agreement
    check) as JSON. ``policy_subsets`` maps a name to the indexes of some of the policies."""
    from importlib.metadata import version

    from postfix_mta_sts_resolver.utils import parse_mta_sts_policy, parse_mta_sts_record

    job = json.load(sys.stdin)
    policies: list[str] = job["policies"]
    subsets: dict[str, list[int]] = job["policy_subsets"]
    records: list[str] = job["records"]
    repeat: int = job["repeat"]
    target: float = job["target"]

    def policy_with_checks(text: str) -> dict[str, Any] | None:
        # Transcribed from postfix_mta_sts_resolver.resolver.STSResolver.resolve (1.5.1), which
        # does these checks inline after parse_mta_sts_policy; there is no function to call.
        pol: dict[str, Any] = parse_mta_sts_policy(text)
        if pol.get("version") != "STSv1":
            return None
        try:
            max_age = int(pol.get("max_age", "-1"))
            pol["max_age"] = max_age
        except ValueError:
            return None
        if not 0 <= max_age <= 31557600:
            return None
        if "mode" not in pol:
            return None
        if pol["mode"] == "none":
            return pol
        if pol["mode"] not in ("none", "testing", "enforce"):
            return None
        if not pol["mx"]:
            return None
        return pol

    def record_with_checks(text: str) -> dict[str, str] | None:
        # Same source: the record checks of STSResolver.resolve for one TXT string.
        if not text.startswith("v=STSv1"):
            return None
        rec: dict[str, str] = parse_mta_sts_record(text)
        if rec.get("v") != "STSv1" or "id" not in rec:
            return None
        return rec

    accepted = [policy_with_checks(text) for text in policies]
    result = {
        "python": sys.version.split()[0],
        "package": "postfix-mta-sts-resolver",
        "version": version("postfix-mta-sts-resolver"),
        "rates": {
            "policy.parse": best_rate(parse_mta_sts_policy, policies, repeat, target),
            "policy.parse_checked": best_rate(policy_with_checks, policies, repeat, target),
            **{
                f"policy.parse:{name}": best_rate(parse_mta_sts_policy, [policies[i] for i in indexes], repeat, target)
                for name, indexes in subsets.items()
            },
            "record.parse": best_rate(parse_mta_sts_record, records, repeat, target),
            "record.parse_checked": best_rate(record_with_checks, records, repeat, target),
        },
        "policies": [
            None if pol is None else {"mode": pol["mode"], "max_age": pol["max_age"], "mx": pol["mx"]}
            for pol in accepted
        ],
        "records": [None if (rec := record_with_checks(text)) is None else rec["id"] for text in records],
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    _peer_main()
