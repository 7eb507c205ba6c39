"""Token buckets, the per-charger quota of messages kept as sent, and auto-registration."""

from __future__ import annotations

import pytest

from csms.core.quotas import Enrolment, KeptLimits, KeptQuota, TokenBucket


def test_bucket_starts_full_refills_at_its_rate_and_never_beyond_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.4) is False  # 0.8 tokens
    assert bucket.take(100.5) is True  # 1.0 token
    assert bucket.level(1_000.0) == 3.0
    # A refusal costs nothing; a time going backwards refills nothing.
    assert bucket.take(1_000.0, 4.0) is False
    assert bucket.level(999.0) == 3.0


def test_reserve_spends_always_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)
    # After the waits, the level is back at zero: the next one waits a full token.
    assert bucket.reserve(0.2) == pytest.approx(0.1)


def test_bucket_needs_a_positive_rate_and_capacity() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(1.0, 0.0, 0.0)


def test_kept_quota_counts_messages_and_bytes_per_charger() -> None:
    quota = KeptQuota(KeptLimits(messages_per_minute=6, bytes_per_minute=600, burst_minutes=1))
    # Bytes run out first for big messages, messages for small ones; chargers are separate.
    assert [quota.admit("BIG", 250, 0.0).kept for _ in range(3)] == [True, True, False]
    assert [quota.admit("SMALL", 1, 0.0).kept for _ in range(7)] == [True] * 6 + [False]
    # The refused 250 bytes were not spent: 100 left, and 10 s bring another 100.
    assert quota.admit("BIG", 100, 0.0).kept
    assert not quota.admit("BIG", 101, 10.0).kept
    assert quota.admit("BIG", 100, 10.0).kept
    # A message larger than the whole burst is never kept.
    assert not quota.admit("FRESH", 601, 0.0).kept


def test_kept_quota_reports_the_first_refusal_then_once_per_period_with_counts() -> None:
    quota = KeptQuota(
        KeptLimits(messages_per_minute=60, bytes_per_minute=0, burst_minutes=1 / 60),
        report_every=60.0,
    )
    assert quota.admit("CP", 10, 0.0).kept
    first = quota.admit("CP", 10, 0.0)
    assert (first.kept, first.report, first.refused, first.refused_bytes) == (False, True, 1, 10)
    later = [quota.admit("CP", 10, 0.0) for _ in range(5)]
    assert [d.report for d in later] == [False] * 5
    # A minute on: one token came back (kept), then the next refusal reports the five.
    assert quota.admit("CP", 10, 60.0).kept
    report = quota.admit("CP", 10, 60.0)
    assert (report.report, report.refused, report.refused_bytes) == (True, 6, 60)


def test_kept_quota_without_limits_keeps_everything_and_tracks_nobody() -> None:
    quota = KeptQuota(KeptLimits(messages_per_minute=0, bytes_per_minute=0))
    assert all(quota.admit("CP", 10**6, 0.0).kept for _ in range(1000))
    assert len(quota) == 0


def test_kept_quota_forgets_chargers_whose_buckets_are_full_again() -> None:
    quota = KeptQuota(KeptLimits(messages_per_minute=60, burst_minutes=1), max_tracked=3)
    for cp in ("A", "B", "C"):
        quota.admit(cp, 1, 0.0)
    quota.admit("D", 1, 0.5)  # a sweep: A, B and C are not full yet half a second later
    assert len(quota) == 4
    # The next sweep waits for twice the survivors (no sweep per message under a flood).
    quota.admit("E", 1, 0.6)
    quota.admit("F", 1, 0.6)
    assert len(quota) == 6
    quota.admit("G", 1, 120.0)  # two minutes on, all six are full again
    assert len(quota) == 1


def test_enrolment_limits_rate_and_waiting_total() -> None:
    enrolment = Enrolment(per_hour=2, limit=5, now=0.0)
    assert enrolment.refusal(waiting=0, now=0.0) is None
    enrolment.spend(0.0)
    enrolment.spend(0.0)
    assert enrolment.refusal(waiting=2, now=0.0) == "auto-registration rate reached"
    assert enrolment.refusal(waiting=2, now=1800.0) is None  # one back after half an hour
    assert enrolment.refusal(waiting=5, now=1800.0) == "auto-registration limit reached"
    unlimited = Enrolment(per_hour=0, limit=0, now=0.0)
    for _ in range(1000):
        unlimited.spend(0.0)
    assert unlimited.refusal(waiting=10**6, now=0.0) is None
