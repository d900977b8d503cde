"""Rate limits' arithmetic: the token bucket (properties with hypothesis), the limiter's
memory, address keys, and `ActivityLimits` from the web settings. Pure: no server, no sleep.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floatseat.web.limits import (
    ActivityLimits,
    Rate,
    RateLimiter,
    TokenBucket,
    address_key,
    retry_after,
)
from floatseat.web.settings import WebSettings

rates = st.builds(
    Rate,
    per_s=st.floats(min_value=0.01, max_value=1000, allow_nan=False),
    burst=st.integers(min_value=1, max_value=50),
)
gaps = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0, max_value=5, allow_nan=False)), max_size=150
)


# -- the bucket ----------------------------------------------------------------------------


@given(rate=rates, gaps=gaps)
def test_a_bucket_never_admits_more_than_its_burst_plus_its_rate_over_any_window(
    rate: Rate, gaps: list[float]
) -> None:
    bucket, now, admitted = TokenBucket.full(rate, 0.0), 0.0, []
    for gap in gaps:
        now += gap
        bucket, wait = bucket.take(now)
        if wait == 0.0:
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            allowed = rate.burst + rate.per_s * (admitted[j] - start)
            assert j - i + 1 <= allowed + 1e-9 * max(1.0, allowed)


@given(rate=rates, gaps=gaps)
def test_a_refused_request_is_admitted_once_its_wait_is_over(rate: Rate, gaps: list[float]) -> None:
    bucket, now = TokenBucket.full(rate, 0.0), 0.0
    for gap in gaps:
        now += gap
        after, wait = bucket.take(now)
        assert 0.0 <= after.tokens <= rate.burst
        if wait > 0.0:
            assert after.tokens == pytest.approx(bucket.level(now))  # refusing takes nothing
            assert after.take(now + wait * (1 + 1e-9) + 1e-9)[1] == 0.0
        bucket = after


def test_a_full_bucket_admits_its_burst_at_once_then_one_per_interval() -> None:
    bucket = TokenBucket.full(Rate(per_s=4, burst=3), 100.0)
    waits = []
    for _ in range(4):
        bucket, wait = bucket.take(100.0)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, 0.25]
    assert bucket.take(100.25)[1] == 0.0


def test_a_clock_that_goes_back_mints_no_tokens() -> None:
    bucket, _ = TokenBucket.full(Rate(per_s=1, burst=1), 50.0).take(50.0)
    bucket, wait = bucket.take(10.0)
    assert wait == 1.0 and bucket.at == 50.0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.001, 0.5, 1.0, 1.01, 59.2)] == [1, 1, 1, 2, 60]


def test_a_rate_needs_a_speed_and_a_burst() -> None:
    with pytest.raises(ValueError):
        Rate(per_s=0, burst=1)
    with pytest.raises(ValueError):
        Rate(per_s=1, burst=0)


# -- the limiter ---------------------------------------------------------------------------


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(Rate(per_s=1, burst=2))
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.take("b", 0.0) == 0.0
    assert limiter.wait("a", 0.5) == 0.5
    assert limiter.wait("a", 0.5) == 0.5  # asking counts nothing
    assert limiter.take("a", 1.0) == 0.0


def test_a_bucket_idle_until_full_again_is_forgotten() -> None:
    limiter = RateLimiter(Rate(per_s=10, burst=20))  # full again 2 s after its last use
    for key in ("a", "b", "c"):
        limiter.take(key, 0.0)
    limiter.take("c", 1.5)
    assert len(limiter) == 3
    limiter.take("d", 2.0)
    assert len(limiter) == 2  # a and b; c was used at 1.5
    limiter.take("d", 10.0)
    assert len(limiter) == 1


def test_memory_stays_bounded_under_a_flood_of_keys() -> None:
    limiter = RateLimiter(Rate(per_s=1, burst=5), max_keys=100)
    for i in range(5000):
        limiter.take(f"k{i}", 0.0)
        assert len(limiter) <= 100
    assert limiter.wait("k4999", 0.0) == 0.0  # the newest are kept


def test_addresses_count_by_ipv4_address_and_ipv6_slash_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("testclient") == "testclient"
    assert address_key(None) == "?"


def test_the_defaults_are_generous_and_zero_turns_a_limit_off() -> None:
    settings = WebSettings()
    assert (settings.activity_rate_per_s, settings.activity_burst) == (200.0, 400)
    assert (settings.activity_auth_failures_per_s, settings.activity_auth_failure_burst) == (
        5.0,
        100,
    )
    limits = ActivityLimits.from_settings(settings, clock=lambda: 0.0)
    assert sum(limits.admit("token:x") == 0 for _ in range(401)) == 400
    off = ActivityLimits.from_settings(
        WebSettings(activity_rate_per_s=0, activity_auth_failures_per_s=0), clock=lambda: 0.0
    )
    for _ in range(1000):
        off.failed("192.0.2.7")
        assert off.admit("token:x") == 0
    assert off.closed_to("192.0.2.7") == 0
