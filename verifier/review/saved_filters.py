"""Saved queue filters: a reviewer's named queue views, kept as the queue's query string."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from verifier.errors import ValidationError
from verifier.models import Base, utcnow

# The queue's own arguments; anything else in a saved query string is dropped.
FILTER_ARGS = ("state", "reason", "q", "sort", "late", "mine", "amount_min", "amount_max")
MAX_PER_REVIEWER = 20
MAX_NAME = 60


class SavedFilter(Base):
    """A reviewer's named queue filter: the queue's query string, replayed as a link."""

    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("staff_user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    name: Mapped[str] = mapped_column(String(60))
    query: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def filter_query(args: Mapping[str, str]) -> str:
    """The queue's query string for `args`: only its own arguments, empty ones left out."""
    return urlencode([(k, args[k]) for k in FILTER_ARGS if args.get(k)])


def list_filters(session: Session, user_id: int) -> list[SavedFilter]:
    return list(
        session.scalars(
            select(SavedFilter)
            .where(SavedFilter.staff_user_id == user_id)
            .order_by(SavedFilter.name)
        )
    )


def save_filter(
    session: Session, user_id: int, name: str, args: Mapping[str, str], now: datetime
) -> SavedFilter:
    """Save (or replace, by name) a reviewer's filter; raises ValidationError naming the field."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Name the filter.", {"name": "Give the filter a name."})
    if len(name) > MAX_NAME:
        raise ValidationError("That name is too long.", {"name": f"At most {MAX_NAME} characters."})
    query = filter_query(args)
    if len(query) > 1000:
        raise ValidationError("That filter is too long to save.", {"name": "Shorten the search."})
    found = session.scalar(
        select(SavedFilter).where(SavedFilter.staff_user_id == user_id, SavedFilter.name == name)
    )
    if found is not None:
        found.query = query
        session.flush()
        return found
    count = session.scalar(
        select(func.count()).select_from(SavedFilter).where(SavedFilter.staff_user_id == user_id)
    )
    if (count or 0) >= MAX_PER_REVIEWER:
        raise ValidationError(
            f"You have {MAX_PER_REVIEWER} saved filters: delete one first.", {"name": "Too many."}
        )
    saved = SavedFilter(staff_user_id=user_id, name=name, query=query, created_at=now)
    session.add(saved)
    session.flush()
    return saved


def delete_filters(session: Session, user_id: int, filter_ids: Iterable[int]) -> int:
    """Delete the reviewer's own filters among `filter_ids` (never another's); how many."""
    result = session.execute(
        delete(SavedFilter).where(
            SavedFilter.staff_user_id == user_id, SavedFilter.id.in_(list(filter_ids))
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
