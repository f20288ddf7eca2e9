"""The pure deployment planner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mtasts import Mode
from mtasts.publish.plan import PlanError, plan_deployment, policy_id_for

NOW = datetime(2026, 11, 29, 8, 15, 0, tzinfo=UTC)


def test_policy_id_is_utc() -> None:
    assert policy_id_for(NOW) == "20261129T081500"
    assert policy_id_for(NOW.astimezone(timezone(timedelta(hours=5)))) == "20261129T081500"


def test_same_inputs_same_plan() -> None:
    first = plan_deployment("example.com", ["mx.example.com"], Mode.TESTING, 604800, now=NOW)
    assert first == plan_deployment("example.com", ["mx.example.com"], "testing", 604800, now=NOW)
    assert first.sts_record.value == "v=STSv1; id=20261129T081500"
    assert first.tlsrpt_record is None


def test_every_invalid_input_is_listed() -> None:
    with pytest.raises(PlanError) as caught:
        plan_deployment("exa mple.com", ["mx..example.com"], Mode.ENFORCE, 86400, ["http://x.example"], now=NOW)
    codes = [p.code for p in caught.value.problems]
    assert codes == ["generate.domain", "policy.mx.syntax", "tlsrpt.rua.scheme"]
