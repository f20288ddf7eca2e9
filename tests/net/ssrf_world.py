"""A world of non-public addresses with real listeners on them, and two checks of one domain
whose MX and policy host resolve to all of them: one that may contact them (the control,
which proves the listeners are reachable) and one with ``--refuse-private``.

Run as a script by tests/net/test_refuse_private.py, inside a network namespace the test
creates, where the addresses are put on the namespace's own loopback device, so real
connections to 100.64.0.1 or 10.0.0.1 reach our listeners and nothing else. Prints one JSON
object: the connections each listener received in each run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from mtasts.check.inspect import CheckLimits, Inspector
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.net.settings import NetworkSettings

ZONE = "ssrf.test"
DOMAIN = f"victim.{ZONE}"


async def _listen(address: str, port: int, hits: dict[str, int], key: str) -> asyncio.Server:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits[key] = hits.get(key, 0) + 1
        writer.close()

    return await asyncio.start_server(accept, address, port)


async def world(
    ipv4: list[str], ipv6: list[str], dial: list[str], smtp_port: int, https_port: int
) -> dict[str, object]:
    """``dial``: the addresses published in DNS (may include IPv4-mapped forms of ``ipv4``)."""
    records = [
        Record(ZONE, "SOA", f"ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60"),
        Record(ZONE, "NS", f"ns.{ZONE}."),
        Record(DOMAIN, "MX", f"10 mx.{DOMAIN}."),
        Record(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=1"'),
    ]
    for name in (f"mx.{DOMAIN}", f"mta-sts.{DOMAIN}"):
        records += [Record(name, "AAAA" if ":" in a else "A", a) for a in dial]
    dns = DnsServer(Zone(ZONE, records), "127.0.0.1")
    await dns.start()
    result: dict[str, object] = {}
    for name, allow in (("control", True), ("refused", False)):
        hits: dict[str, int] = {}
        servers = [
            await _listen(address, port, hits, f"{kind} {address}")
            for address in (*ipv4, *ipv6)
            for kind, port in (("smtp", smtp_port), ("https", https_port))
        ]
        settings = NetworkSettings(
            nameserver=("127.0.0.1", dns.port),
            timeout=2.0,
            smtp_port=smtp_port,
            https_port=https_port,
            allow_private=allow,
        )
        inspector = Inspector(settings, limits=CheckLimits(max_addresses=len(dial)))
        report = await inspector.check(DOMAIN)
        for server in servers:
            server.close()
            await server.wait_closed()
        result[name] = {"hits": hits, "findings": [f.to_dict() for f in report.findings]}
    await dns.stop()
    return result


def main() -> None:
    mode = sys.argv[1]
    ipv4 = ["100.64.0.1", "100.100.100.200", "192.0.0.8", "192.0.0.170", "10.0.0.1"]
    ipv6 = ["2002:a00:1::1", "64:ff9b::a00:1", "2001:0:a00:1::f5ff:fffe"]
    if mode == "netns":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        for address in ipv4:
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        for address in ipv6:
            subprocess.run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"], check=True)
        dial = [*ipv4, *ipv6, "::ffff:10.0.0.1"]
    else:  # no namespace: only loopback addresses are ours to listen on
        ipv4, ipv6 = ["127.0.0.1", "127.0.0.2"], ["::1"]
        dial = [*ipv4, *ipv6, "::ffff:127.0.0.2"]
    smtp_port, https_port = int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(world(ipv4, ipv6, dial, smtp_port, https_port))))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
