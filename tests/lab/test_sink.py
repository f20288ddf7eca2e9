"""The TLSRPT sink keeps what reporters POST."""

from __future__ import annotations

import gzip
import json

import pytest

from mtasts.lab.https import Request
from mtasts.lab.sink import ReportSink
from mtasts.lab.testing import LabController
from tests.lab.helpers import https_request

pytestmark = pytest.mark.lab


def test_posted_report_is_kept(lab: LabController) -> None:
    host = f"tlsrpt.{lab.lab.zone}"
    body = gzip.compress(json.dumps({"organization-name": "sink test"}).encode())
    status, _, _ = https_request(
        lab,
        host,
        "/v1/report",
        method="POST",
        body=body,
        headers={"Content-Type": "application/tlsrpt+gzip"},
    )
    assert status == 201
    (report,) = [r for r in lab.reports() if r.body == body]
    assert report.content_type == "application/tlsrpt+gzip"
    assert report.host == host
    assert lab.info()["tlsrpt_url"] == f"https://{host}/v1/report"


def test_sink_refuses_other_requests(lab: LabController) -> None:
    host = f"tlsrpt.{lab.lab.zone}"
    assert https_request(lab, host, "/v1/report")[0] == 405
    assert https_request(lab, host, "/elsewhere", method="POST", body=b"x")[0] == 404


def test_sink_keeps_a_bounded_number() -> None:
    sink = ReportSink("h", max_reports=2)
    for i in range(3):
        sink.handle(Request("POST", "/v1/report", (), str(i).encode()))
    assert [r.body for r in sink.reports] == [b"1", b"2"]
