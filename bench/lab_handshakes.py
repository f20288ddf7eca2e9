"""TLS handshakes per second against one of the lab's policy hosts, and how many failed.

Run from the repository root with mtasts installed::

    python bench/lab_handshakes.py                      # uvloop, both modes, 500 handshakes each
    python bench/lab_handshakes.py --loop asyncio -n 2000 --mode thread

``same-loop``: client and lab on one event loop (the harshest case for a server that reads
before its TLS layer takes over: issue #8's lost ClientHello). ``thread``: the lab on its own
loop in a :class:`~mtasts.lab.testing.LabController` thread, as ``mtasts lab up`` in another
process would be. Each handshake is a full one (no session resumption), verifies the chain and
the host name, then the connection is dropped. A stalled handshake counts as a failure after
``--patience`` seconds, and a run stops after ``--max-failures`` of them (so a broken server
does not take hours). Numbers depend on the machine and its load: compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from collections.abc import Callable

from mtasts.lab import Lab
from mtasts.lab.testing import LabController


async def _handshakes(
    address: str, port: int, host: str, context: ssl.SSLContext, n: int, patience: float, max_failures: int
) -> tuple[int, int, float]:
    """(done, failed, seconds) for up to ``n`` sequential handshakes."""
    failed = done = 0
    start = time.perf_counter()
    for _ in range(n):
        try:
            async with asyncio.timeout(patience):
                _, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=host)
            writer.transport.abort()
        except (OSError, TimeoutError):
            failed += 1
        done += 1
        if failed >= max_failures:
            break
    return done, failed, time.perf_counter() - start


async def same_loop(n: int, patience: float, max_failures: int) -> tuple[int, int, float]:
    async with Lab(["enforce-ok"]) as lab:
        host = f"mta-sts.{lab.domain('enforce-ok')}"
        context = ssl.create_default_context(cafile=str(lab.ca_file))
        return await _handshakes(lab.address(host), lab.https_port, host, context, n, patience, max_failures)


async def in_thread(n: int, patience: float, max_failures: int) -> tuple[int, int, float]:
    with LabController(["enforce-ok"]) as lab:
        host = f"mta-sts.{lab.domain('enforce-ok')}"
        return await _handshakes(
            lab.address(host), lab.https_port, host, lab.client_context(), n, patience, max_failures
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--mode", choices=["same-loop", "thread", "both"], default="both")
    parser.add_argument("-n", type=int, default=500, help="handshakes per mode")
    parser.add_argument("--patience", type=float, default=10.0, help="seconds before a handshake counts as stalled")
    parser.add_argument("--max-failures", type=int, default=3)
    args = parser.parse_args()
    run: Callable[..., tuple[int, int, float]]
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    modes = {"same-loop": same_loop, "thread": in_thread}
    for name in ["same-loop", "thread"] if args.mode == "both" else [args.mode]:
        done, failed, seconds = run(modes[name](args.n, args.patience, args.max_failures))
        ok = done - failed
        print(
            f"{args.loop:8} {name:10} {done:5} handshakes, {failed} failed, "
            f"{ok / seconds:7.1f} successful handshakes/s ({seconds:.2f} s)"
        )


if __name__ == "__main__":
    main()
