"""The rollups the database keeps stay equal to counting the rows, whatever path wrote them."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from tests.stats_helpers import NOW, add_order
from verifier.core.cases import change_status
from verifier.core.rollups import case_counts, day_counts, rates_in
from verifier.core.sampling import RULE_NAMES
from verifier.insight.estimate import estimate_failure_share
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Order,
    SamplingDecision,
    VerificationCase,
)

ENDED = (APPROVED, REJECTED, DECLINED, EXPIRED)
REASONS = ["random", "not_selected", "repeat_customer_exempt", *RULE_NAMES]


def _mixed_orders(session, rng: random.Random, n: int = 120) -> None:
    for i in range(n):
        at = NOW - timedelta(days=rng.randrange(40), minutes=rng.randrange(1440))
        reason = rng.choice(REASONS)
        flagged = reason not in ("not_selected", "repeat_customer_exempt")
        status = (
            rng.choice([IN_REVIEW, AWAITING_DOCUMENTS, APPROVED, REJECTED]) if flagged else None
        )
        decided = at + timedelta(hours=rng.randrange(1, 72)) if status in ENDED else None
        add_order(session, at=at, reason=reason, draw=rng.randrange(10_000),
                  rate_bp=rng.choice([500, 1000]), status=status, decided_at=decided,
                  resubmissions=i % 3 == 0 and status in ENDED)  # fmt: skip


def _counted_directly(session) -> tuple[Counter, dict]:
    states = Counter(dict(session.execute(
        select(VerificationCase.status, func.count()).group_by(VerificationCase.status)
    ).all()))  # fmt: skip
    days: dict = {}
    for created, reason in session.execute(
        select(Order.created_at, SamplingDecision.reason).join(SamplingDecision)
    ):
        row = days.setdefault(created.astimezone(UTC).date(), Counter())
        row["received"] += 1
        row["flagged_random"] += reason == "random"
        row["flagged_rule"] += reason in RULE_NAMES
        row["repeat_exempt"] += reason == "repeat_customer_exempt"
    for case in session.scalars(select(VerificationCase).where(VerificationCase.status.in_(ENDED))):
        ended = (case.decided_at or case.updated_at).astimezone(UTC).date()
        row = days.setdefault(ended, Counter())
        row[case.status] += 1
        row["resubmitted"] += case.resubmission_count > 0
    return states, days


def _assert_rollups_match(session) -> None:
    states, days = _counted_directly(session)
    assert case_counts(session) == +states
    first, last = min(days), max(days)
    rolled = day_counts(session, first, last)
    assert {d: +Counter(c) for d, c in rolled.items()} == {d: +c for d, c in days.items()}


def test_rollups_equal_the_rows_after_inserts_and_every_kind_of_move(db_session):
    rng = random.Random(7)
    _mixed_orders(db_session, rng)
    db_session.commit()
    _assert_rollups_match(db_session)

    # Moves through the lifecycle, as the app makes them...
    open_cases = db_session.scalars(
        select(VerificationCase).where(VerificationCase.status == IN_REVIEW)
    ).all()
    for i, case in enumerate(open_cases):
        later = NOW + timedelta(hours=i)
        if i % 3 == 0:
            case.decided_at = later
            change_status(db_session, case, APPROVED, actor_type="system", actor_id=None, now=later)
        elif i % 3 == 1:
            change_status(db_session, case, RESUBMISSION_REQUESTED, actor_type="system",
                          actor_id=None, now=later)  # fmt: skip
    waiting = db_session.scalars(
        select(VerificationCase).where(VerificationCase.status == AWAITING_DOCUMENTS)
    ).all()
    for case in waiting[::2]:
        change_status(db_session, case, EXPIRED, actor_type="system", actor_id=None, now=NOW)
    db_session.commit()
    _assert_rollups_match(db_session)

    # ...and a bulk UPDATE that no application code sees: the triggers count it all the same.
    db_session.execute(
        update(VerificationCase)
        .where(VerificationCase.status == RESUBMISSION_REQUESTED)
        .values(status=DECLINED, updated_at=NOW + timedelta(days=1))
    )
    db_session.commit()
    _assert_rollups_match(db_session)


def test_a_change_that_rolls_back_leaves_the_rollups_as_they_were(db_session):
    _mixed_orders(db_session, random.Random(3), n=30)
    db_session.commit()
    before = case_counts(db_session)
    case = db_session.scalars(
        select(VerificationCase).where(VerificationCase.status == IN_REVIEW)
    ).first()
    change_status(db_session, case, REJECTED, actor_type="system", actor_id=None, now=NOW)
    db_session.flush()
    assert case_counts(db_session) != before  # counted inside the transaction...
    db_session.rollback()
    assert case_counts(db_session) == before  # ...and gone with it


def test_the_estimate_from_the_rollups_equals_the_one_counted_from_the_rows(db_session):
    _mixed_orders(db_session, random.Random(11), n=200)
    db_session.commit()
    start = datetime.combine((NOW - timedelta(days=30)).date(), datetime.min.time(), UTC)
    end = datetime.combine(NOW.date() + timedelta(days=1), datetime.min.time(), UTC)
    whole_days = estimate_failure_share(db_session, start=start, end=end, min_sample=1)
    # A period a microsecond off whole days takes the path that counts the rows.
    counted = estimate_failure_share(db_session, start=start, end=end - timedelta(microseconds=1),
                                     min_sample=1)  # fmt: skip
    assert whole_days.orders == counted.orders > 0
    assert whole_days.repeat_exempt == counted.repeat_exempt
    assert whole_days.rates_bp == counted.rates_bp == (500, 1000)
    assert whole_days.random == counted.random
    assert whole_days.rule_only == counted.rule_only
    assert rates_in(db_session, start.date(), end.date()) == (500, 1000)
