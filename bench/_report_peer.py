"""The parsedmarc side of ``bench/report.py``, run by the throwaway venv's Python (no mtasts there).

Reads ``{"json_bodies": [latin-1 str], "files": [...], "mails": [...], "large": [...], "repeat", "target"}``
as JSON on stdin (bytes travel as latin-1 strings), times parsedmarc on them with the method of
``bench/_timing.py`` and writes the rates and what it read (for the agreement check) as JSON.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_rate  # standard library only


def main() -> None:
    import parsedmarc

    job = json.load(sys.stdin)
    bodies = [text.encode("latin-1") for text in job["json_bodies"]]
    files = [text.encode("latin-1") for text in job["files"]]
    mails = [text.encode("latin-1") for text in job["mails"]]
    large = [text.encode("latin-1") for text in job["large"]]
    repeat: int = job["repeat"]
    target: float = job["target"]

    def whole_file(data: bytes) -> Any:
        return parsedmarc.parse_report_file(data, offline=True)

    def summary(report: Any) -> dict[str, Any]:
        return {
            "organization_name": report["organization_name"],
            "report_id": report["report_id"],
            "policies": [
                [p["policy_domain"], p["successful_session_count"], p["failed_session_count"]]
                for p in report["policies"]
            ],
        }

    def accepted(func: Any, items: list[bytes]) -> list[int]:
        """The indexes of the inputs parsedmarc reads (it refuses some real reports)."""
        keep = []
        for index, item in enumerate(items):
            try:
                func(item)
            except Exception:
                continue
            keep.append(index)
        return keep

    json_ok = accepted(parsedmarc.parse_smtp_tls_report_json, bodies)
    file_ok = accepted(whole_file, files)
    mail_ok = accepted(whole_file, mails)
    result = {
        "python": sys.version.split()[0],
        "package": "parsedmarc",
        "version": version("parsedmarc"),
        "accepted": {"json": json_ok, "file": file_ok, "mail": mail_ok},
        "rates": {
            "json": best_rate(parsedmarc.parse_smtp_tls_report_json, [bodies[i] for i in json_ok], repeat, target),
            "mail": best_rate(whole_file, [mails[i] for i in mail_ok], repeat, target),
            "file": best_rate(whole_file, [files[i] for i in file_ok], repeat, target),
            "large": best_rate(parsedmarc.parse_smtp_tls_report_json, large, repeat, target),
        },
        "read": {i: summary(parsedmarc.parse_smtp_tls_report_json(bodies[i])) for i in json_ok},
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
