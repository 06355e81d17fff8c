"""Reading the rollups that the database keeps (migration 0002): cases per state, and orders
received and cases ended per day. They are counted by triggers in the same transaction as
the change they count, so reading them is a handful of rows, whatever the table sizes.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.models import CaseCount, DailyCount

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
