"""Write seed inputs for the ``report`` and ``mail`` fuzz targets: the hostile shapes of issue #8.

    python fuzz/make_seeds.py fuzz/corpus     # then: fuzz_parsers.py report fuzz/corpus/report ...

Each seed is one shape at a size past its cap (so the refusal path is covered) and one just
under it (so the fuzzer mutates inputs that are read): many gzip members, extreme dates and
offsets, counts around 10^12, deep MIME nesting (fast reader and standard library), headers
folded over many lines. Kept small enough for libFuzzer's ``-max_len`` (pass the largest seed's
size, about 200 KB); the million-line and 200,000-member sizes are in ``bench/report.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shape builders live in tests/
from tests.hostile import REPORT, nested_mime


def body(**changes: object) -> bytes:
    obj = json.loads(json.dumps(REPORT))
    obj.update(changes)
    return json.dumps(obj).encode()


def report_seeds() -> dict[str, bytes]:
    plain = body()
    empty = gzip.compress(b"", mtime=0)
    seeds = {
        "plain.json": plain,
        "one-member.json.gz": gzip.compress(plain, mtime=0),
        "64-members.json.gz": b"".join(
            gzip.compress(plain[i : i + -(-len(plain) // 64)], mtime=0)
            for i in range(0, len(plain), -(-len(plain) // 64))
        ),
        "2000-empty-members.gz": empty * 2000,
        "members-then-padding.gz": gzip.compress(plain, mtime=0) + empty * 10 + b"\0" * 16,
    }
    for name, start, end in [
        ("date-overflow", "2026-11-28T00:00:00Z", "9999-12-31T23:59:59-23:59"),
        ("date-underflow", "0001-01-01T00:00:00+23:59", "2026-11-28T00:00:00Z"),
        ("date-edges", "1970-01-01T00:00:00Z", "9998-12-31T23:59:59Z"),
        ("date-before-1970", "1969-12-31T23:59:59Z", "2026-11-28T00:00:00Z"),
        ("date-offset-24h", "2026-11-28T00:00:00+24:00", "2026-11-28T00:00:00Z"),
    ]:
        seeds[f"{name}.json"] = body(**{"date-range": {"start-datetime": start, "end-datetime": end}})
    for count in (10**12, 10**12 + 1, 2**63 - 1, 2**64):
        obj = json.loads(body())
        obj["policies"][0]["summary"]["total-successful-session-count"] = count
        seeds[f"count-{count}.json"] = json.dumps(obj).encode()
    return seeds


def nested(depth: int, *, encoded: bool = False, kind: bytes = b"multipart/mixed") -> bytes:
    attachment = b"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    attachment += base64.encodebytes(gzip.compress(body(), mtime=0))
    return nested_mime([kind], depth, attachment, encoded=encoded)


def folded(lines: int, *, in_part: bool = False) -> bytes:
    field = b"X-Folded: x" + b"\r\n y" * lines + b"\r\n"
    attachment = b"Content-Type: application/tlsrpt+json\r\n" + (field if in_part else b"") + b"\r\n" + body()
    top = b"From: r@sender.example\r\n" + (b"" if in_part else field)
    return top + b"Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\n" + attachment + b"\r\n--B--\r\n"


def mail_seeds() -> dict[str, bytes]:
    return {
        "nested-32.eml": nested(32),
        "nested-33.eml": nested(33),
        "nested-1000.eml": nested(1000),
        "nested-40-stdlib.eml": nested(40, encoded=True),
        "nested-digest-33.eml": nested(33, kind=b"multipart/digest"),
        "nested-rfc822-40.eml": nested(40, kind=b"message/rfc822"),
        "folded-under-cap.eml": folded(15_000),
        "folded-over-cap.eml": folded(20_000),
        "folded-part-over-cap.eml": folded(20_000, in_part=True),
        "many-params.eml": nested(2, encoded=True).replace(
            b"Content-Transfer-Encoding",
            b"Content-Disposition: attachment" + b"; a=b" * 40 + b"\r\nContent-Transfer-Encoding",
        ),
    }


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR")
    root = Path(sys.argv[1])
    for target, seeds in (("report", report_seeds()), ("mail", {**mail_seeds(), **report_seeds()})):
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds, largest {max(map(len, seeds.values())):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
