"""The dashboard's rollups (migration 0017) stay equal to what the rows say, whatever path
wrote them: review times, reviewer days, waiting days and the estimate's strata."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, select, update

from tests.review_helpers import make_staff
from tests.stats_helpers import NOW, add_order
from verifier.core.cases import change_status
from verifier.core.rollups import (
    BUCKET_RATIO,
    STRATA,
    CaseStratum,
    ReviewerDay,
    ReviewTime,
    WaitingDay,
    bucket_percentiles,
)
from verifier.db import alembic_config
from verifier.insight.stats import Period, decision_timing, percentile, queue_snapshot
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    SamplingDecision,
    VerificationCase,
)

ENDED = (APPROVED, REJECTED, DECLINED, EXPIRED)
STATES = [IN_REVIEW, AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED, *ENDED]


def _utc(value):
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _mixed_cases(session, rng: random.Random, n: int = 150) -> list[int]:
    staff = [make_staff(session, f"r{i}-{rng.random()}@example.test").id for i in range(3)]
    for _ in range(n):
        at = NOW - timedelta(days=rng.randrange(40), minutes=rng.randrange(1440))
        status = rng.choice(STATES)
        submitted = at + timedelta(minutes=rng.randrange(1, 600)) if rng.random() < 0.8 else None
        decided = at + timedelta(hours=rng.randrange(1, 90), seconds=rng.randrange(3600))
        add_order(session, at=at, reason=rng.choice(["random", "amount_threshold"]),
                  draw=rng.randrange(10_000), rate_bp=rng.choice([500, 1000]), status=status,
                  submitted_at=submitted, decided_at=decided if status in ENDED else None,
                  decided_by_id=rng.choice(staff) if status in (APPROVED, REJECTED) else None,
                  resubmissions=0)  # fmt: skip
    session.flush()
    for case in session.scalars(select(VerificationCase)):
        if case.decided_at is not None and rng.random() < 0.7:
            case.claimed_at = case.decided_at - timedelta(minutes=rng.randrange(1, 40))
    return staff


def _rows(session):
    """What the rows say, keyed as the rollups are."""
    times: dict = {}
    reviewers: dict = {}
    waiting: Counter = Counter()
    strata: dict = {}
    with_decision = SamplingDecision.order_id == VerificationCase.order_id
    cases = session.execute(
        select(VerificationCase, SamplingDecision).outerjoin(SamplingDecision, with_decision)
    ).all()
    for case, decision in cases:
        if case.status == IN_REVIEW:
            waiting[_utc(case.submitted_at or case.updated_at).date()] += 1
        sampled = case.reason == "random" or bool(decision and decision.draw < decision.rate_bp)
        state = case.status if case.status in ENDED else "open"
        key = (_utc(case.created_at).date(), decision.rate_bp if decision else 0)
        strata.setdefault(key, Counter())[f"{'random' if sampled else 'rule'}_{state}"] += 1
        if case.status not in (APPROVED, REJECTED) or case.decided_at is None:
            continue
        day = _utc(case.decided_at).date()
        for kind, since in ((0, case.created_at), (1, case.submitted_at)):
            if since is not None:
                hours = (_utc(case.decided_at) - _utc(since)).total_seconds() / 3600
                times.setdefault(day, ([], []))[kind].append(hours)
        if case.decided_by_id is not None:
            row = reviewers.setdefault((day, case.decided_by_id), Counter())
            row["decided"] += 1
            row[case.status] += 1
            if case.claimed_at is not None:
                row["timed"] += 1
                row["claim_ms"] += (_utc(case.decided_at) - _utc(case.claimed_at)) / timedelta(
                    milliseconds=1
                )
    return times, reviewers, waiting, strata


def _assert_rollups_match(session) -> None:
    times, reviewers, waiting, strata = _rows(session)
    rolled_times: dict = {}
    for row in session.scalars(select(ReviewTime).where(ReviewTime.n != 0)):
        rolled_times.setdefault((row.day, row.kind), {})[row.bucket] = row.n
    expected = {(day, kind): len(values[kind]) for day, values in times.items()
                for kind in (0, 1) if values[kind]}  # fmt: skip
    assert {key: sum(b.values()) for key, b in rolled_times.items()} == expected
    # Each case sits in the bucket of its own time: every bucket's middle is within 5 %.
    for (day, kind), buckets in rolled_times.items():
        for value in times[day][kind]:
            if value * 3600 < 1:  # under a second (or documents in after the decision)
                assert -1 in buckets
                continue
            low = min(buckets, key=lambda b: abs(BUCKET_RATIO ** (b + 0.5) / 3600 - value))
            assert BUCKET_RATIO ** (low + 0.5) / 3600 == pytest.approx(value, rel=0.05)

    rolled_reviewers = {
        (r.day, r.staff_id): Counter(decided=r.decided, approved=r.approved, rejected=r.rejected,
                                     timed=r.timed, claim_ms=r.claim_ms)
        for r in session.scalars(select(ReviewerDay).where(ReviewerDay.decided != 0))
    }  # fmt: skip
    assert rolled_reviewers.keys() == reviewers.keys()
    for key, row in reviewers.items():
        got = rolled_reviewers[key]
        assert +Counter({k: v for k, v in got.items() if k != "claim_ms"}) == +Counter(
            {k: v for k, v in row.items() if k != "claim_ms"}
        )
        assert got["claim_ms"] == pytest.approx(row["claim_ms"], abs=row["timed"] + 1)

    rolled_waiting = {w.day: w.n for w in session.scalars(select(WaitingDay)) if w.n}
    assert rolled_waiting == dict(waiting)

    rolled_strata: dict = {}
    for row in session.scalars(select(CaseStratum)):
        counts = rolled_strata.setdefault((row.day, row.rate_bp), Counter())
        counts.update({name: getattr(row, name) for name in STRATA})
    assert {k: +c for k, c in rolled_strata.items() if +c} == {k: +c for k, c in strata.items()}


def _move_through_the_lifecycle(session, staff: list[int], rng: random.Random) -> None:
    for i, case in enumerate(session.scalars(
        select(VerificationCase).where(VerificationCase.status.in_((IN_REVIEW, AWAITING_DOCUMENTS,
                                                                    RESUBMISSION_REQUESTED)))
    ).all()):  # fmt: skip
        later = NOW + timedelta(hours=i)
        if case.status == AWAITING_DOCUMENTS:
            case.submitted_at = later
            change_status(session, case, IN_REVIEW, actor_type="system", actor_id=None, now=later)
        elif case.status == IN_REVIEW and i % 3:
            case.claimed_at, case.claimed_by_id = later, rng.choice(staff)
            session.flush()
            case.decided_at, case.decided_by_id = later + timedelta(minutes=i), case.claimed_by_id
            change_status(session, case, APPROVED if i % 3 == 1 else REJECTED,
                          actor_type="system", actor_id=None, now=case.decided_at)  # fmt: skip
        elif case.status == RESUBMISSION_REQUESTED:
            change_status(session, case, EXPIRED, actor_type="system", actor_id=None, now=later)


def test_the_dashboard_rollups_equal_the_rows_after_inserts_moves_and_bulk_updates(db_session):
    rng = random.Random(5)
    staff = _mixed_cases(db_session, rng)
    db_session.commit()
    _assert_rollups_match(db_session)

    _move_through_the_lifecycle(db_session, staff, rng)
    db_session.commit()
    _assert_rollups_match(db_session)

    # Bulk UPDATEs that no application code sees: decisions moved a day, a reviewer changed,
    # waiting times restarted, a state changed for many at once; then a case deleted.
    db_session.execute(
        update(VerificationCase)
        .where(VerificationCase.status == APPROVED, VerificationCase.id % 2 == 0)
        .values(decided_at=NOW + timedelta(days=1, hours=3),
                decided_by_id=staff[0], claimed_at=None)
    )  # fmt: skip
    db_session.execute(
        update(VerificationCase)
        .where(VerificationCase.status == IN_REVIEW, VerificationCase.id % 3 == 0)
        .values(submitted_at=None, updated_at=NOW + timedelta(days=2))
    )
    db_session.execute(
        update(VerificationCase)
        .where(VerificationCase.status == REJECTED, VerificationCase.id % 2 == 1)
        .values(status=APPROVED)
    )
    db_session.execute(
        update(VerificationCase)
        .where(VerificationCase.status == IN_REVIEW, VerificationCase.id % 4 == 1)
        .values(status=DECLINED, updated_at=NOW + timedelta(days=1))
    )
    db_session.commit()
    _assert_rollups_match(db_session)
    gone = db_session.scalars(
        select(VerificationCase.id).where(VerificationCase.status == APPROVED)
    ).first()
    db_session.execute(delete(VerificationCase).where(VerificationCase.id == gone))
    db_session.commit()
    _assert_rollups_match(db_session)


def test_a_change_that_rolls_back_leaves_the_dashboard_rollups_as_they_were(db_session):
    staff = _mixed_cases(db_session, random.Random(9), n=40)
    db_session.commit()
    tables = (ReviewTime, ReviewerDay, WaitingDay, CaseStratum)

    def snapshot():
        return [sorted(tuple(getattr(r, c.key) for c in t.__table__.columns)
                       for r in db_session.scalars(select(t))) for t in tables]  # fmt: skip

    before = snapshot()
    case = db_session.scalars(
        select(VerificationCase).where(VerificationCase.status == IN_REVIEW)
    ).first()
    case.decided_at, case.decided_by_id, case.claimed_at = NOW, staff[1], NOW - timedelta(hours=1)
    change_status(db_session, case, REJECTED, actor_type="system", actor_id=None, now=NOW)
    db_session.flush()
    assert snapshot() != before  # counted inside the transaction...
    db_session.rollback()
    assert snapshot() == before  # ...and gone with it


def test_the_percentiles_from_the_buckets_are_within_five_percent_of_the_exact_ones(db_session):
    _mixed_cases(db_session, random.Random(21), n=300)
    db_session.commit()
    period = Period.ending(NOW.date(), 30)
    times, *_ = _rows(db_session)
    in_period = [v for day, values in times.items() if period.first <= day <= period.last
                 for v in (values,)]  # fmt: skip
    from_flag = [h for values in in_period for h in values[0]]
    from_docs = [h for values in in_period for h in values[1]]
    timing = decision_timing(db_session, period)
    assert timing.decided == len(from_flag) > 50
    for got, exact in (
        (timing.flag_to_decision_median_h, percentile(from_flag, 50)),
        (timing.flag_to_decision_p90_h, percentile(from_flag, 90)),
        (timing.documents_to_decision_median_h, percentile(from_docs, 50)),
        (timing.documents_to_decision_p90_h, percentile(from_docs, 90)),
    ):
        assert got == pytest.approx(exact, rel=0.05)


def test_the_median_wait_and_late_count_from_the_waiting_days_are_exact(db_session):
    _mixed_cases(db_session, random.Random(4), n=150)
    db_session.commit()
    waits = sorted(
        (NOW - _utc(c.submitted_at or c.updated_at)).total_seconds() / 3600
        for c in db_session.scalars(
            select(VerificationCase).where(VerificationCase.status == IN_REVIEW)
        )
    )
    queue = queue_snapshot(db_session, now=NOW, target_hours=72)
    assert queue.in_review == len(waits) > 10
    assert queue.median_in_review_hours == pytest.approx(percentile(waits, 50), abs=1e-6)
    assert queue.oldest_in_review_hours == pytest.approx(waits[-1], abs=1e-6)
    assert queue.over_target == sum(w > 72 for w in waits)


def test_bucket_percentiles_interpolate_between_the_middles_of_the_buckets():
    assert bucket_percentiles({}, (50,)) == [None]
    middle = BUCKET_RATIO**10.5
    assert bucket_percentiles({10: 3}, (0, 50, 100)) == [middle] * 3
    low, high = BUCKET_RATIO**0.5, BUCKET_RATIO**20.5
    assert bucket_percentiles({0: 1, 20: 1}, (50,)) == [pytest.approx((low + high) / 2)]
    assert bucket_percentiles({-1: 1, 5: 1}, (0,)) == [0.0]


def test_the_migration_backfills_the_rollups_from_the_rows_already_there(db_session, database_url):
    rng = random.Random(13)
    staff = _mixed_cases(db_session, rng, n=80)
    db_session.commit()
    _move_through_the_lifecycle(db_session, staff, rng)
    db_session.commit()
    db_session.close()
    config = alembic_config(database_url)
    try:
        command.downgrade(config, "0016_audit_chain_trigger")  # drops the rollups
        command.upgrade(config, "head")  # counts the rows that are there
    finally:
        command.upgrade(config, "head")
    _assert_rollups_match(db_session)
