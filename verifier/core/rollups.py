"""Reading the rollups that the database keeps: cases per state, and orders received and cases
ended per day (migration 0002); review times, reviewer days, waiting days and the estimate's
strata (migration 0017). They are counted by triggers in the same transaction as the change
they count, so reading them is a handful of rows, whatever the table sizes.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import BigInteger, Date, Integer, SmallInteger, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.models import Base


class DailyCount(Base):
    """Orders received and cases ended per UTC day, kept by database triggers (migration 0002).

    Orders count on the day they arrived, by sampling rate; cases on the day they ended. Each
    key is spread over 16 shards so concurrent writers seldom wait on one row: sum them.
    """

    __tablename__ = "daily_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rate_bp: Mapped[int] = mapped_column(Integer, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    received: Mapped[int] = mapped_column(Integer, server_default="0")
    flagged_random: Mapped[int] = mapped_column(Integer, server_default="0")
    flagged_rule: Mapped[int] = mapped_column(Integer, server_default="0")
    repeat_exempt: Mapped[int] = mapped_column(Integer, server_default="0")
    approved: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    declined: Mapped[int] = mapped_column(Integer, server_default="0")
    expired: Mapped[int] = mapped_column(Integer, server_default="0")
    resubmitted: Mapped[int] = mapped_column(Integer, server_default="0")  # ended after one


class RejectedLink(Base):
    """A link key of a rejected order, kept by database triggers (migration 0010): the queue's
    hints count rejected orders per key here instead of walking every order with the key.
    Both addresses count as kind "address"."""

    __tablename__ = "rejected_links"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


class CaseCount(Base):
    """Cases per state, kept by database triggers (migration 0002); sum the shards."""

    __tablename__ = "case_counts"

    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, server_default="0")


class ReviewTime(Base):
    """Approved and rejected cases per decision day by review time, kept by database triggers
    (migration 0017). Kind 0 times from the flag (case opened), kind 1 from documents in;
    bucket b holds times in [1.1^b, 1.1^(b+1)) seconds, bucket -1 those under a second."""

    __tablename__ = "review_times"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, server_default="0")


class ReviewerDay(Base):
    """Cases a reviewer decided (approved or rejected) per decision day, and the milliseconds
    from claim to decision of those with a claim time; kept by triggers (migration 0017)."""

    __tablename__ = "reviewer_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decided: Mapped[int] = mapped_column(Integer, server_default="0")
    approved: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    timed: Mapped[int] = mapped_column(Integer, server_default="0")
    claim_ms: Mapped[int] = mapped_column(BigInteger, server_default="0")


class WaitingDay(Base):
    """Cases in review by the UTC day they began to wait (documents in), kept by triggers
    (migration 0017)."""

    __tablename__ = "waiting_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, server_default="0")


STRATA = ("random_approved", "random_rejected", "random_declined", "random_expired",
          "random_open", "rule_approved", "rule_rejected", "rule_declined", "rule_expired",
          "rule_open")  # fmt: skip


class CaseStratum(Base):
    """Cases per UTC day opened and sampling rate (0: no decision), in the random sample or
    brought in by a rule alone, by state; kept by triggers (migration 0017), 16 shards."""

    __tablename__ = "case_strata"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rate_bp: Mapped[int] = mapped_column(Integer, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    random_approved: Mapped[int] = mapped_column(Integer, server_default="0")
    random_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    random_declined: Mapped[int] = mapped_column(Integer, server_default="0")
    random_expired: Mapped[int] = mapped_column(Integer, server_default="0")
    random_open: Mapped[int] = mapped_column(Integer, server_default="0")
    rule_approved: Mapped[int] = mapped_column(Integer, server_default="0")
    rule_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    rule_declined: Mapped[int] = mapped_column(Integer, server_default="0")
    rule_expired: Mapped[int] = mapped_column(Integer, server_default="0")
    rule_open: Mapped[int] = mapped_column(Integer, server_default="0")


DAY_COUNTS = ("received", "flagged_random", "flagged_rule", "repeat_exempt",
              "approved", "rejected", "declined", "expired", "resubmitted")  # fmt: skip


def case_counts(session: Session) -> Counter[str]:
    """Cases per state: one small GROUP BY over the state counters."""
    rows = session.execute(
        select(CaseCount.status, func.sum(CaseCount.n)).group_by(CaseCount.status)
    ).all()
    return Counter({status: int(n) for status, n in rows if n})


def day_counts(session: Session, first: date, last: date) -> dict[date, dict[str, int]]:
    """The counts of each day from `first` to `last` that has any, by day."""
    columns = [func.sum(getattr(DailyCount, name)) for name in DAY_COUNTS]
    rows = session.execute(
        select(DailyCount.day, *columns)
        .where(DailyCount.day >= first, DailyCount.day <= last)
        .group_by(DailyCount.day)
    ).all()
    return {row[0]: dict(zip(DAY_COUNTS, (int(v or 0) for v in row[1:]), strict=True))
            for row in rows}  # fmt: skip


def rates_in(session: Session, first: date, last: date) -> tuple[int, ...]:
    """The sampling rates (basis points) of the orders received from `first` to `last`."""
    rows = session.scalars(
        select(DailyCount.rate_bp)
        .where(DailyCount.day >= first, DailyCount.day <= last, DailyCount.received > 0)
        .distinct()
    )
    return tuple(sorted(rows))


BUCKET_RATIO = 1.1
FROM_FLAG, FROM_DOCUMENTS = 0, 1


def review_time_buckets(session: Session, first: date, last: date) -> dict[int, dict[int, int]]:
    """kind -> {bucket: cases} for the cases decided from `first` to `last`."""
    rows = session.execute(
        select(ReviewTime.kind, ReviewTime.bucket, func.sum(ReviewTime.n))
        .where(ReviewTime.day >= first, ReviewTime.day <= last)
        .group_by(ReviewTime.kind, ReviewTime.bucket)
    ).all()
    out: dict[int, dict[int, int]] = {FROM_FLAG: {}, FROM_DOCUMENTS: {}}
    for kind, bucket, n in rows:
        if n:
            out[int(kind)][int(bucket)] = int(n)
    return out


def bucket_value(bucket: int) -> float:
    """The seconds a bucket stands for: its geometric middle, within ±4.9 % of any time in it."""
    return 0.0 if bucket < 0 else BUCKET_RATIO ** (bucket + 0.5)


def bucket_percentiles(counts: dict[int, int], qs: tuple[float, ...]) -> list[float | None]:
    """Percentiles (seconds) of the times counted in `counts`, linear between ranks as
    verifier.insight.stats.percentile, each rank's time read as its bucket's middle."""
    n = sum(counts.values())
    if not n:
        return [None for _ in qs]
    ordered = sorted(counts.items())

    def at(rank: int) -> float:  # the time of the rank-th smallest (0-based)
        seen = 0
        for bucket, count in ordered:
            seen += count
            if rank < seen:
                return bucket_value(bucket)
        return bucket_value(ordered[-1][0])

    out: list[float | None] = []
    for q in qs:
        position = (n - 1) * q / 100
        below = int(position)
        low, high = at(below), at(min(below + 1, n - 1))
        out.append(low + (high - low) * (position - below))
    return out


def waiting_days(session: Session) -> list[tuple[date, int]]:
    """(day, cases in review that began waiting that day), oldest first."""
    rows = session.execute(
        select(WaitingDay.day, WaitingDay.n).where(WaitingDay.n > 0).order_by(WaitingDay.day)
    ).all()
    return [(day, int(n)) for day, n in rows]


def strata_counts(session: Session, first: date, last: date) -> list[tuple[int, dict[str, int]]]:
    """(rate, {stratum column: cases}) for the cases opened from `first` to `last`."""
    columns = [func.sum(getattr(CaseStratum, name)) for name in STRATA]
    rows = session.execute(
        select(CaseStratum.rate_bp, *columns)
        .where(CaseStratum.day >= first, CaseStratum.day <= last)
        .group_by(CaseStratum.rate_bp)
    ).all()
    return [(int(row[0]), dict(zip(STRATA, (int(v or 0) for v in row[1:]), strict=True)))
            for row in rows]  # fmt: skip
