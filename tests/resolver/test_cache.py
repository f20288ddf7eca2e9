"""The cache rules, driven with hand-made results and plain numbers for the clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mtasts.core.policy import Mode, Policy
from mtasts.resolver.cache import (
    CacheEntry,
    CacheEvent,
    CacheRules,
    FetchResult,
    Next,
    QueryPlan,
    TxtResult,
    TxtStatus,
    after_fetch,
    after_mx,
    after_txt,
    on_query,
    refresh_at,
)

D = "example.com"
T0 = 1_800_000_000.0
POLICY = Policy(Mode.ENFORCE, 86400, ("mx1.example.com",))
BODY = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n"
NEW_POLICY = Policy(Mode.ENFORCE, 86400, ("mx2.example.com",))
NEW_BODY = b"version: STSv1\r\nmode: enforce\r\nmx: mx2.example.com\r\nmax_age: 86400\r\n"
FOUND = TxtResult(TxtStatus.FOUND, "id1", 300.0)
FOUND_NEW = TxtResult(TxtStatus.FOUND, "id2", 300.0)
ABSENT = TxtResult(TxtStatus.ABSENT, ttl=120.0, detail="NXDOMAIN")
FAILED = TxtResult(TxtStatus.FAILED, detail="timeout")


def cached(now: float = T0) -> CacheEntry:
    """A freshly fetched policy, id1, TXT TTL 300."""
    entry, _ = after_fetch(CacheEntry(D), "id1", 300.0, FetchResult(POLICY, BODY), now)
    return entry


# --- answering -------------------------------------------------------------------------------


def test_unknown_domain_is_discovered() -> None:
    assert on_query(None, T0).plan is QueryPlan.DISCOVER


def test_valid_policy_is_answered_at_once_without_recheck_within_ttl() -> None:
    decision = on_query(cached(), T0 + 299)
    assert decision.plan is QueryPlan.CACHED
    assert not decision.recheck


def test_recheck_in_the_background_once_the_ttl_has_passed() -> None:
    decision = on_query(cached(), T0 + 300)
    assert decision.plan is QueryPlan.CACHED  # still answered from the cache at once
    assert decision.recheck


def test_expired_policy_is_never_answered() -> None:
    assert on_query(cached(), T0 + 86400).plan is QueryPlan.DISCOVER


# --- the TXT re-check --------------------------------------------------------------------------


def test_unchanged_id_moves_the_next_check_but_never_the_expiry() -> None:
    entry, step, events = after_txt(cached(), FOUND, T0 + 400)
    assert step is Next.DONE
    assert events == ()
    assert entry.txt_next_check == T0 + 700
    assert entry.expires_at == T0 + 86400


def test_unchanged_id_does_not_revive_an_expired_policy() -> None:
    """postfix-mta-sts-resolver 1.5.1 revives an expired policy when the id is unchanged."""
    entry, step, _ = after_txt(cached(), FOUND, T0 + 86400 + 1)
    assert step is Next.FETCH
    assert not entry.valid(T0 + 86400 + 1)


def test_changed_id_fetches_then_the_new_policy_is_used() -> None:
    entry, step, _ = after_txt(cached(), FOUND_NEW, T0 + 400)
    assert step is Next.FETCH
    entry, events = after_fetch(entry, "id2", 300.0, FetchResult(NEW_POLICY, NEW_BODY), T0 + 401)
    assert entry.policy == NEW_POLICY
    assert entry.policy_id == "id2"
    assert entry.expires_at == T0 + 401 + 86400
    assert CacheEvent.POLICY_CHANGED in events


def test_txt_failure_keeps_the_valid_policy_and_retries_later() -> None:
    entry, step, events = after_txt(cached(), FAILED, T0 + 400)
    assert step is Next.DONE
    assert events == (CacheEvent.TXT_FAILED,)
    assert entry.policy == POLICY
    assert entry.last_error == "timeout"
    assert entry.txt_next_check == T0 + 460
    assert on_query(entry, T0 + 401).plan is QueryPlan.CACHED


def test_vanished_record_keeps_the_valid_policy() -> None:
    entry, step, events = after_txt(cached(), ABSENT, T0 + 400)
    assert (step, events) == (Next.DONE, (CacheEvent.RECORD_GONE,))
    assert on_query(entry, T0 + 401).plan is QueryPlan.CACHED


def test_vanished_record_after_expiry_drops_the_policy() -> None:
    entry, _, events = after_txt(cached(), ABSENT, T0 + 90000)
    assert events == (CacheEvent.EXPIRED_DROPPED, CacheEvent.NEGATIVE)
    assert entry.policy is None
    assert on_query(entry, T0 + 90001).plan is QueryPlan.NEGATIVE


# --- fetch failures ----------------------------------------------------------------------------


def test_fetch_failure_never_replaces_a_valid_policy() -> None:
    entry, _, _ = after_txt(cached(), FOUND_NEW, T0 + 400)
    entry, events = after_fetch(entry, "id2", 300.0, FetchResult(None, detail="HTTP 500"), T0 + 401)
    assert events == (CacheEvent.FETCH_FAILED,)
    assert entry.policy == POLICY
    assert entry.policy_id == "id1"
    assert entry.last_error == "HTTP 500"
    assert on_query(entry, T0 + 402).plan is QueryPlan.CACHED


def test_at_least_five_minutes_between_fetches_of_one_failed_id() -> None:
    entry, _, _ = after_txt(cached(), FOUND_NEW, T0 + 400)
    entry, _ = after_fetch(entry, "id2", 300.0, FetchResult(None, detail="HTTP 500"), T0 + 400)
    for now in (T0 + 401, T0 + 699.9):  # within the backoff, whatever the TXT TTL
        _, step, events = after_txt(entry, FOUND_NEW, now)
        assert step is Next.DONE
        assert events == (CacheEvent.FETCH_BACKOFF,)
    _, step, _ = after_txt(entry, FOUND_NEW, T0 + 700)
    assert step is Next.FETCH


def test_another_new_id_is_fetched_at_once_despite_the_backoff() -> None:
    entry, _, _ = after_txt(cached(), FOUND_NEW, T0 + 400)
    entry, _ = after_fetch(entry, "id2", 300.0, FetchResult(None, detail="HTTP 500"), T0 + 400)
    _, step, _ = after_txt(entry, TxtResult(TxtStatus.FOUND, "id3", 300.0), T0 + 401)
    assert step is Next.FETCH


def test_rules_refuse_a_backoff_under_five_minutes() -> None:
    with pytest.raises(ValueError, match="300"):
        CacheRules(fetch_backoff=299)


# --- nothing cached ------------------------------------------------------------------------------


def test_uncached_and_dns_failing_fails_open_and_holds_it() -> None:
    entry, step, _ = after_txt(CacheEntry(D), FAILED, T0)
    assert step is Next.DONE
    assert on_query(entry, T0 + 59).plan is QueryPlan.FAIL_OPEN  # no lookup per query meanwhile
    assert on_query(entry, T0 + 60).plan is QueryPlan.DISCOVER


def test_uncached_and_https_failing_fails_open_then_waits_for_the_backoff() -> None:
    entry, step, _ = after_txt(CacheEntry(D), FOUND, T0)
    assert step is Next.FETCH
    entry, _ = after_fetch(entry, "id1", 300.0, FetchResult(None, detail="refused"), T0)
    assert on_query(entry, T0 + 1).plan is QueryPlan.FAIL_OPEN
    assert on_query(entry, T0 + 60).plan is QueryPlan.DISCOVER
    entry, step, _ = after_txt(entry, FOUND, T0 + 60)
    assert step is Next.DONE  # same id within 5 minutes: no fetch
    assert on_query(entry, T0 + 61).plan is QueryPlan.FAIL_OPEN


def test_expired_and_unreachable_is_not_extended_and_fails_open() -> None:
    expired_at = T0 + 86400
    entry, _, events = after_txt(cached(), FAILED, expired_at + 1)
    assert events == (CacheEvent.TXT_FAILED,)
    assert not entry.valid(expired_at + 1)
    assert on_query(entry, expired_at + 2).plan is QueryPlan.FAIL_OPEN
    entry, step, _ = after_txt(entry, FOUND, expired_at + 61)
    assert step is Next.FETCH
    entry, _ = after_fetch(entry, "id1", 300.0, FetchResult(None, detail="refused"), expired_at + 61)
    assert entry.expires_at == expired_at  # never extended without a successful fetch
    assert on_query(entry, expired_at + 62).plan is QueryPlan.FAIL_OPEN


@pytest.mark.parametrize(("ttl", "until"), [(120.0, 120.0), (3600.0, 300.0), (None, 300.0), (0.0, 30.0)])
def test_negative_cache_lasts_the_ttl_capped(ttl: float | None, until: float) -> None:
    entry, _, events = after_txt(CacheEntry(D), TxtResult(TxtStatus.ABSENT, ttl=ttl), T0)
    assert events == (CacheEvent.NEGATIVE,)
    assert on_query(entry, T0 + until - 0.1).plan is QueryPlan.NEGATIVE
    assert on_query(entry, T0 + until).plan is QueryPlan.DISCOVER


# --- drift -------------------------------------------------------------------------------------


def test_same_id_different_body_is_drift() -> None:
    _, events = after_fetch(cached(), "id1", 300.0, FetchResult(NEW_POLICY, NEW_BODY), T0 + 80000)
    assert CacheEvent.DRIFT_SAME_ID in events


def test_new_id_same_body_is_drift() -> None:
    _, events = after_fetch(cached(), "id2", 300.0, FetchResult(POLICY, BODY.replace(b"\r\n", b"\n")), T0 + 400)
    assert CacheEvent.DRIFT_SAME_BODY in events
    assert CacheEvent.POLICY_CHANGED not in events


def test_same_id_same_body_is_no_drift() -> None:
    _, events = after_fetch(cached(), "id1", 300.0, FetchResult(POLICY, BODY), T0 + 80000)
    assert events == (CacheEvent.FETCHED,)


# --- refresh and MX ----------------------------------------------------------------------------


def test_refresh_before_expiry_with_a_jitter_per_domain() -> None:
    entry = cached()
    when = refresh_at(entry)
    assert when is not None
    assert T0 + 86400 - 3600 * 1.5 <= when <= T0 + 86400 - 3600
    other = refresh_at(replace(entry, domain="example.net"))
    assert other != when
    assert refresh_at(entry) == when  # deterministic


def test_refresh_fetches_even_when_the_id_is_unchanged() -> None:
    _, step, _ = after_txt(cached(), FOUND, T0 + 83000, refresh=True)
    assert step is Next.FETCH


def test_none_policies_and_negative_entries_are_not_refreshed() -> None:
    none, _ = after_fetch(CacheEntry(D), "id1", 300.0, FetchResult(Policy(Mode.NONE, 86400), b"x"), T0)
    assert refresh_at(none) is None
    assert refresh_at(CacheEntry(D, negative_until=T0 + 10)) is None


def test_short_max_age_refresh_margin_is_a_quarter() -> None:
    short, _ = after_fetch(CacheEntry(D), "id1", 300.0, FetchResult(Policy(Mode.ENFORCE, 400, ("a.b",)), b"x"), T0)
    when = refresh_at(short)
    assert when is not None
    assert T0 + 400 - 150 <= when <= T0 + 300


def test_mx_set_cached_by_ttl_and_kept_when_the_lookup_fails() -> None:
    entry = replace(cached(), policy=Policy(Mode.ENFORCE, 86400, ("*.example.com",)))
    assert on_query(entry, T0).refresh_mx
    entry = after_mx(entry, ("mx1.example.com",), 600.0, T0)
    assert not on_query(entry, T0 + 599).refresh_mx
    assert on_query(entry, T0 + 600).refresh_mx
    entry = after_mx(entry, None, None, T0 + 600)
    assert entry.mx_hosts == ("mx1.example.com",)
    assert entry.mx_expires_at == T0 + 660
