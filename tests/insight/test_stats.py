"""Dashboard numbers: percentiles, days, the queue, decision times and outcomes, CSV."""

import csv
import io
from datetime import date, timedelta

import pytest

from tests.stats_helpers import NOW, add_order, hours
from verifier.core.sampling import RULE_AMOUNT, RULE_NAME
from verifier.core.settings import Settings
from verifier.insight.stats import (
    CSV_COLUMNS,
    Period,
    build_dashboard,
    daily_csv,
    daily_numbers,
    decision_timing,
    median,
    outcome_rates,
    percentile,
    queue_snapshot,
)
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 90, 3.7),
        ([4, 1, 3, 2], 0, 1),
        ([4, 1, 3, 2], 100, 4),
        ([7], 90, 7),
        (list(range(1, 11)), 90, 9.1),  # NumPy: np.percentile(range(1, 11), 90) == 9.1
        ([15, 20, 35, 40, 50], 40, 29.0),  # PostgreSQL percentile_cont(0.4) gives 29
    ],
)
def test_percentile_interpolates_between_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_q_is_checked():
    assert median([]) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_period_covers_whole_utc_days():
    period = Period.ending(date(2026, 11, 23), 30)
    assert period.first == date(2026, 10, 25)
    assert len(period.days) == 30
    assert period.start.isoformat() == "2026-10-25T00:00:00+00:00"
    assert period.end.isoformat() == "2026-11-24T00:00:00+00:00"


def test_daily_numbers_bucket_arrivals_and_outcomes_by_day(db_session):
    day1, day2 = NOW.replace(hour=0) - timedelta(days=2), NOW.replace(hour=0) - timedelta(days=1)
    add_order(db_session, at=day1 + hours(1))
    add_order(db_session, at=day1 + hours(23.9), reason="random", draw=3, status=AWAITING_DOCUMENTS)
    add_order(db_session, at=day1 + hours(5), reason=RULE_AMOUNT, status=APPROVED,
              decided_at=day2 + hours(3))  # fmt: skip
    add_order(db_session, at=day2 + hours(2), reason=RULE_NAME, status=REJECTED,
              decided_at=day2 + hours(4))  # fmt: skip
    add_order(db_session, at=day2 + hours(2), reason="repeat_customer_exempt")
    add_order(db_session, at=day2 - timedelta(days=5), reason="random", status=EXPIRED,
              submitted_at=day2 + hours(6))  # expired today: counted by its end  # fmt: skip
    add_order(db_session, at=day2 + timedelta(days=3))  # after the period
    db_session.commit()

    rows = daily_numbers(db_session, Period(day1.date(), day2.date()))

    first, second = rows
    assert (first.received, first.flagged_random, first.flagged_rule) == (3, 1, 1)
    assert (second.received, second.flagged_rule, second.repeat_exempt) == (2, 1, 1)
    assert (first.approved, second.approved, second.rejected, second.expired) == (0, 1, 1, 1)

    text = daily_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert parsed[1] == [day1.date().isoformat(), "3", "1", "1", "0", "0", "0", "0", "0"]
    assert parsed[2] == [day2.date().isoformat(), "2", "0", "1", "1", "1", "1", "0", "1"]


def test_queue_snapshot_counts_open_cases_and_their_wait(db_session):
    for waited in (1, 5, 30):
        add_order(db_session, at=NOW - hours(waited + 10), reason="random", status=IN_REVIEW,
                  submitted_at=NOW - hours(waited))  # fmt: skip
    add_order(db_session, at=NOW - hours(3), reason="random", status=AWAITING_DOCUMENTS)
    add_order(db_session, at=NOW - hours(3), reason="random", status=RESUBMISSION_REQUESTED)
    add_order(db_session, at=NOW - hours(3), reason="random", status=APPROVED,
              decided_at=NOW - hours(1))  # fmt: skip
    db_session.commit()

    queue = queue_snapshot(db_session, now=NOW, target_hours=24)

    assert (queue.in_review, queue.awaiting_documents, queue.resubmission_requested) == (3, 1, 1)
    assert queue.oldest_in_review_hours == pytest.approx(30)
    assert queue.median_in_review_hours == pytest.approx(5)
    assert queue.over_target == 1


def test_decision_timing_median_and_90th_percentile(db_session):
    # Flag-to-decision hours 2, 4, 6, 8, 10; documents arrive one hour after the flag.
    for h in (2, 4, 6, 8, 10):
        opened = NOW - timedelta(days=2)
        add_order(db_session, at=opened, reason="random", status=APPROVED if h < 8 else REJECTED,
                  submitted_at=opened + hours(1), decided_at=opened + hours(h))  # fmt: skip
    add_order(db_session, at=NOW - timedelta(days=2), reason="random", status=EXPIRED,
              decided_at=None)  # not a decision: not timed  # fmt: skip
    db_session.commit()

    timing = decision_timing(db_session, Period.ending(NOW.date(), 7))

    # Read from buckets of ratio 1.1: each within ±5 % of the exact figure.
    assert timing.decided == 5
    assert timing.flag_to_decision_median_h == pytest.approx(6, rel=0.05)
    assert timing.flag_to_decision_p90_h == pytest.approx(9.2, rel=0.05)
    assert timing.documents_to_decision_median_h == pytest.approx(5, rel=0.05)
    assert timing.documents_to_decision_p90_h == pytest.approx(8.2, rel=0.05)


def test_outcome_rates_share_of_ended_cases(db_session):
    ended = NOW - timedelta(days=1)
    statuses = [APPROVED] * 5 + [REJECTED] * 2 + [DECLINED, EXPIRED, EXPIRED]
    for i, status in enumerate(statuses):
        decided = ended if status in (APPROVED, REJECTED) else None
        add_order(db_session, at=ended - hours(5), reason="random", status=status,
                  decided_at=decided, submitted_at=ended if decided is None else None,
                  resubmissions=1 if i < 3 else 0)  # fmt: skip
    add_order(db_session, at=ended, reason="random", status=IN_REVIEW, submitted_at=ended)
    db_session.commit()

    outcomes = outcome_rates(db_session, Period.ending(NOW.date(), 7))

    assert outcomes.ended == 10
    assert outcomes.counts == {APPROVED: 5, REJECTED: 2, DECLINED: 1, EXPIRED: 2}
    assert outcomes.share("approved") == pytest.approx(0.5)
    assert outcomes.share("expired") == pytest.approx(0.2)
    assert outcomes.share("resubmission") == pytest.approx(0.3)


def test_build_dashboard_on_an_empty_database(db_session):
    data = build_dashboard(db_session, Period.ending(NOW.date()), now=NOW, settings=Settings())
    assert len(data.rows) == 30
    assert data.totals.received == 0
    assert data.outcomes.share("approved") is None
    assert data.timing.flag_to_decision_median_h is None
    assert not data.estimate.enough
    assert data.agreement.overall.checked == 0
