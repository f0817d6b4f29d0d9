"""`podium.core.rates`: the sliding window of the request and call limits, the WebSocket bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.rates import TokenBucket, retry_after_s

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


@pytest.mark.parametrize(
    ("times", "limit", "wait"),
    [
        ([], 3, 0),
        (ago(10, 20), 3, 0),
        (ago(10, 20, 30), 3, 30),  # the oldest (30 s ago) leaves the window in 30 s
        (ago(1, 2, 3, 59.5), 3, 57),  # the third newest, 3 s ago, frees a slot in 57 s
        (ago(10, 20, 60, 90), 3, 0),  # 60 s ago is no longer "in the last minute"
        (ago(59.9, 59.9, 59.9), 3, 1),  # at least one second
    ],
)
def test_retry_after_s(times: list[datetime], limit: int, wait: int) -> None:
    assert retry_after_s(times, limit, MINUTE, NOW) == wait


@given(
    st.lists(st.floats(min_value=0, max_value=120), max_size=40),
    st.integers(min_value=1, max_value=10),
)
def test_after_waiting_retry_after_s_one_more_action_fits(seconds: list[float], limit: int) -> None:
    times = ago(*seconds)
    wait = retry_after_s(times, limit, MINUTE, NOW)
    assert 0 <= wait <= 60
    assert retry_after_s(times, limit, MINUTE, NOW + timedelta(seconds=wait)) == 0
    in_window = sum(1 for t in times if t > NOW - MINUTE)
    assert (wait == 0) == (in_window < limit)


def test_token_bucket_takes_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 of a token
    assert bucket.take(0.5) is True
    assert bucket.take(0.5) is False
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never over burst


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_token_bucket_never_lets_more_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    bucket = TokenBucket(rate=5.0, burst=10, now=0.0)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += bucket.take(now)
    assert taken <= 10 + 5.0 * now + 1e-9
