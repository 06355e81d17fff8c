"""The staff review queue: filtered lists with keyset pagination, counts, and the case page data.

Keyset ("seek") pagination: each page starts after the last row of the one before, found
by an index range scan on (status, created_at, id), so page 10,000 is as fast as page 1.
OFFSET would read and discard every earlier row. Everything a template shows is loaded
here (the order with the case, staff names by id), so templates never trigger a query.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, UnaryExpression, and_, select, tuple_, union
from sqlalchemy.orm import InstrumentedAttribute, Session, contains_eager, selectinload

from verifier.core.rollups import case_counts
from verifier.core.settings import Settings
from verifier.errors import NotFoundError, ValidationError
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    DOCUMENT_KINDS,
    EXPIRED,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Document,
    Order,
    StaffUser,
    VerificationCase,
)

DECIDED = "decided"
ALL = "all"
DECIDED_STATES = (APPROVED, REJECTED, DECLINED)
# Queue tabs: name -> the case states it lists.
STATE_FILTERS: dict[str, tuple[str, ...]] = {
    IN_REVIEW: (IN_REVIEW,),
    AWAITING_DOCUMENTS: (AWAITING_DOCUMENTS,),
    RESUBMISSION_REQUESTED: (RESUBMISSION_REQUESTED,),
    DECIDED: DECIDED_STATES,
    EXPIRED: (EXPIRED,),
    ALL: (),
}
REASON_FILTERS = ("random", "rule")
MAX_LIMIT = 200
# A search term matches at most this many orders by number and as many by email.
MAX_MATCHES = 1000
# Replaced documents are crypto-shredded by the portal at once: nothing left to show.
VISIBLE_DOCUMENT_STATES = ("active", "erased")


@dataclass(frozen=True)
class QueueFilters:
    state: str = IN_REVIEW
    reason: str | None = None  # "random", "rule" (any forcing rule), or None for both
    search: str = ""


@dataclass(frozen=True)
class QueueRow:
    case: VerificationCase  # with `order` loaded
    age: timedelta
    late: bool
    holder: str | None  # email of the reviewer holding the claim, while it lasts


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None


@dataclass(frozen=True)
class CaseView:
    """Everything the case page shows, loaded up front."""

    case: VerificationCase  # with order, order.decision and documents loaded
    documents: list[Document]
    holder: str | None
    proposer: str | None
    decider: str | None
    age: timedelta
    late: bool
    staff: dict[int, str] = field(default_factory=dict)


def clean_filters(state: str | None, reason: str | None, search: str | None) -> QueueFilters:
    """Normalise raw filter values; raises ValidationError naming the bad one."""
    state = state or IN_REVIEW
    if state not in STATE_FILTERS:
        raise ValidationError("Unknown queue state.", {"state": "Unknown state."})
    if reason and reason not in REASON_FILTERS:
        raise ValidationError("Unknown sampling reason.", {"reason": "Choose random or rule."})
    return QueueFilters(state=state, reason=reason or None, search=(search or "").strip()[:254])


def _sort_column(filters: QueueFilters) -> InstrumentedAttribute[datetime]:
    # Decided cases list newest first by the time they reached their final state.
    return VerificationCase.updated_at if filters.state == DECIDED else VerificationCase.created_at


def encode_cursor(moment: datetime, case_id: int) -> str:
    raw = f"{moment.astimezone(UTC).isoformat()}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Parse a cursor made by encode_cursor; raises ValidationError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, case_id = raw.split("|")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(case_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("That page link is not valid.", {"after": "Bad cursor."}) from None


def _prefix_range(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as an index range scan (plus an exact check)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper, column.startswith(prefix, autoescape=True))


def queue_query(filters: QueueFilters) -> Select[VerificationCase]:
    """The queue's SELECT without paging: cases joined to their orders, filtered."""
    query = (
        select(VerificationCase)
        .join(VerificationCase.order)
        .options(contains_eager(VerificationCase.order))
    )
    states = STATE_FILTERS[filters.state]
    if len(states) == 1:
        query = query.where(VerificationCase.status == states[0])
    elif states:
        query = query.where(VerificationCase.status.in_(states))
    if filters.reason == "random":
        query = query.where(VerificationCase.reason == "random")
    elif filters.reason == "rule":
        query = query.where(VerificationCase.reason != "random")
    if filters.search:
        term = filters.search.lower()
        # Emails are stored lower-cased; external ids have a lower-cased column of their own.
        # The matching orders are found first, each through its own index, so the planner
        # never walks the whole queue in date order testing every row against the term.
        by_number = select(Order.id).where(_prefix_range(Order.external_id_lower, term))
        by_email = select(Order.id).where(_prefix_range(Order.customer_email, term))
        # SQLite takes a LIMIT inside a UNION only within a subquery.
        matches = union(
            *(select(q.limit(MAX_MATCHES).subquery().c.id) for q in (by_number, by_email))
        )
        query = query.where(VerificationCase.order_id.in_(select(matches.subquery().c.id)))
    return query


def _age(case: VerificationCase, now: datetime) -> timedelta:
    return now - (case.submitted_at or case.created_at)


def _late(case: VerificationCase, now: datetime, settings: Settings) -> bool:
    return case.status == IN_REVIEW and _age(case, now) > timedelta(
        hours=settings.review_target_hours
    )


def staff_labels(session: Session, ids: set[int | None]) -> dict[int, str]:
    """Emails of the staff users with these ids, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(wanted)))
    return {row.id: row.email for row in rows}


def list_queue(
    session: Session,
    *,
    filters: QueueFilters,
    after: str | None = None,
    limit: int = 50,
    now: datetime,
    settings: Settings,
) -> QueuePage:
    """One page of the queue, oldest first (decided: newest first), after the `after` cursor."""
    limit = max(1, min(limit, MAX_LIMIT))
    sort = _sort_column(filters)
    newest_first = filters.state == DECIDED
    query = queue_query(filters)
    if after:
        moment, case_id = decode_cursor(after)
        key = tuple_(sort, VerificationCase.id)
        query = query.where(key < (moment, case_id) if newest_first else key > (moment, case_id))
    order: list[InstrumentedAttribute[Any] | UnaryExpression[Any]] = [sort, VerificationCase.id]
    if newest_first:
        order = [column.desc() for column in order]
    cases = session.scalars(query.order_by(*order).limit(limit + 1)).all()
    more = len(cases) > limit
    cases = cases[:limit]
    labels = staff_labels(
        session, {c.claimed_by_id for c in cases if c.lease_expires_at and c.lease_expires_at > now}
    )
    rows = [
        QueueRow(
            case=c,
            age=_age(c, now),
            late=_late(c, now, settings),
            holder=labels.get(c.claimed_by_id)
            if c.claimed_by_id is not None and c.lease_expires_at and c.lease_expires_at > now
            else None,
        )
        for c in cases
    ]
    cursor = None
    if more and cases:
        last = cases[-1]
        cursor = encode_cursor(last.updated_at if newest_first else last.created_at, last.id)
    return QueuePage(rows=rows, next_cursor=cursor)


def queue_counts(session: Session) -> dict[str, int]:
    """Cases per queue tab (decided sums its states), from the state counters."""
    per_status = case_counts(session)
    counts = {
        name: sum(per_status.get(state, 0) for state in states)
        for name, states in STATE_FILTERS.items()
        if states
    }
    counts[ALL] = sum(per_status.values())
    return counts


def get_case_view(session: Session, case_id: int, now: datetime, settings: Settings) -> CaseView:
    """Load a case with its order, sampling decision and documents; raises NotFoundError."""
    case = session.scalars(
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(
            selectinload(VerificationCase.order).selectinload(Order.decision),
            selectinload(VerificationCase.documents),
        )
        .execution_options(populate_existing=True)
    ).one_or_none()
    if case is None:
        raise NotFoundError("There is no such case.")
    holding = case.claimed_by_id if case.lease_expires_at and case.lease_expires_at > now else None
    labels = staff_labels(session, {holding, case.proposed_rejection_by_id, case.decided_by_id})
    documents = sorted(
        (d for d in case.documents if d.status in VISIBLE_DOCUMENT_STATES),
        key=lambda d: (DOCUMENT_KINDS.index(d.kind), d.status != "active", d.created_at, d.page),
    )
    return CaseView(
        case=case,
        documents=documents,
        holder=labels.get(holding) if holding else None,
        proposer=labels.get(case.proposed_rejection_by_id)
        if case.proposed_rejection_by_id is not None
        else None,
        decider=labels.get(case.decided_by_id) if case.decided_by_id is not None else None,
        age=_age(case, now),
        late=_late(case, now, settings),
        staff=labels,
    )
