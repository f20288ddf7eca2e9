"""How long ``mtasts check`` takes on a domain of tarpits (issue #8): N MX hosts with K
addresses each, every address accepting connections and never answering.

Run from the repository root::

    .venv/bin/python bench/check_budget.py                      # 200 MX x 50 addresses, --timeout 3
    .venv/bin/python bench/check_budget.py --mx 500 --addresses 1 --timeout 3

Method: a lab (mtasts.lab) serves the zone; every MX address gets a listening socket that is
never accepted from (the kernel completes the handshake, or drops the SYN once the backlog is
full: a tarpit either way); ``Inspector.check(domain)`` is timed with ``time.perf_counter``,
once, with the default caps and budget (``--domain-timeout`` = 4 x ``--timeout``). Before the
per-domain budget, 500 MX at --timeout 3 took 25 s and 200 x 50 ran past 150 s.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mtasts.check.inspect import CheckLimits, Inspector
from mtasts.lab.scenarios import Delivery, Expectation, MxFault, Scenario
from mtasts.lab.world import Lab
from mtasts.net.settings import NetworkSettings


async def main(mx: int, addresses: int, timeout: float) -> None:
    scenario = Scenario(
        "tarpit",
        "Tarpits.",
        Expectation(Delivery.DEFER),
        mx_count=(mx, addresses),
        mx_fault=MxFault.UNREACHABLE,
    )
    async with Lab([scenario]) as lab:
        targets = [r.data for r in lab.plan.records if r.rdtype == "A" and r.name.startswith("mx")]
        sockets: list[socket.socket] = []
        port = 0
        for address in targets:
            sock = socket.socket()
            sock.bind((address, port))
            sock.listen(1)
            port = sock.getsockname()[1]
            sockets.append(sock)
        settings = NetworkSettings(
            nameserver=lab.nameserver,
            ca_file=Path(lab.ca_file),
            timeout=timeout,
            https_port=lab.https_port,
            smtp_port=port,
        )
        inspector = Inspector(settings, limits=CheckLimits())
        start = time.perf_counter()
        report = await inspector.check(lab.domain("tarpit"))
        elapsed = time.perf_counter() - start
        for sock in sockets:
            sock.close()
    assert report.observations is not None
    obs = report.observations
    if "--verbose" in sys.argv:
        print(
            "mx lookup",
            round(obs.mx.elapsed, 2),
            "fetch",
            round(obs.fetch.elapsed, 2),
            "sts",
            round(obs.sts_txt.elapsed, 2),
        )
        print("addresses", sorted(round(a.elapsed, 2) for a in obs.addresses.values()))
        print("probes", sorted(round(p.elapsed, 2) for p in obs.probes))
    print(
        f"{mx} MX x {addresses} addresses, --timeout {timeout:g} (budget {4 * timeout:g} s): {elapsed:.1f} s; "
        f"{len(report.observations.probes)} probes, {len(report.observations.unprobed)} not probed"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mx", type=int, default=200)
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--verbose", action="store_true", help="print the time of each step")
    args = parser.parse_args()
    asyncio.run(main(args.mx, args.addresses, args.timeout))
