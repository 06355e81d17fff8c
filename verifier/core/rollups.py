"""Reading the rollups that the database keeps (migration 0002): cases per state, and orders
received and cases ended per day. They are counted by triggers in the same transaction as
the change they count, so reading them is a handful of rows, whatever the table sizes.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import Date, Integer, SmallInteger, String, func, select
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
