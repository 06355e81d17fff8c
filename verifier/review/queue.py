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
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, contains_eager, selectinload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.sqltypes import NullType

from verifier.core.rollups import case_counts
from verifier.core.sampling import RULE_NAMES
from verifier.core.settings import Settings
from verifier.errors import NotFoundError, ValidationError
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    DECLINED,
    DOCUMENT_KINDS,
    EXPIRED,
    FOUR_EYES,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    Document,
    Order,
    StaffUser,
    VerificationCase,
)
from verifier.review.history import History, linked_history, rejection_hints
from verifier.review.search import match_orders

DECIDED = "decided"
ALL = "all"
SECOND_REVIEW = "four_eyes"  # rejections proposed, waiting for a second reviewer
DECIDED_STATES = (APPROVED, REJECTED, DECLINED)
# Queue tabs: name -> the case states it lists.
STATE_FILTERS: dict[str, tuple[str, ...]] = {
    IN_REVIEW: (IN_REVIEW,),
    SECOND_REVIEW: (IN_REVIEW,),
    AWAITING_DOCUMENTS: (AWAITING_DOCUMENTS,),
    RESUBMISSION_REQUESTED: (RESUBMISSION_REQUESTED,),
    DECIDED: DECIDED_STATES,
    EXPIRED: (EXPIRED,),
    ALL: (),
}
REASON_FILTERS = ("random", "rule", *RULE_NAMES)
# Sorts: name -> newest/largest first? The default lists the oldest flagged first (decided:
# the most recently decided first).
SORTS = {"flagged": False, "newest": True, "waiting": False, "amount": True}
MAX_LIMIT = 200
MAX_AMOUNT_MINOR = 10**13
# Replaced documents are crypto-shredded by the portal at once: nothing left to show.
VISIBLE_DOCUMENT_STATES = ("active", "erased")


@dataclass(frozen=True)
class QueueFilters:
    state: str = IN_REVIEW
    reason: str | None = None  # "random", "rule" (any forcing rule), a rule's name, or None
    search: str = ""
    sort: str = "flagged"
    late: bool = False  # in review for longer than the review target
    mine: bool = False  # claimed by the reviewer looking
    amount_min: int | None = None  # minor units, any currency
    amount_max: int | None = None

    @property
    def narrowed(self) -> bool:
        """Whether anything beyond the state tab and the sort narrows the list."""
        return bool(self.reason or self.search or self.late or self.mine
                    or self.amount_min is not None or self.amount_max is not None)  # fmt: skip


@dataclass(frozen=True)
class QueueRow:
    case: VerificationCase  # with `order` loaded
    age: timedelta
    late: bool
    holder: str | None  # email of the reviewer holding the claim, while it lasts
    hint: str | None = None  # "2 earlier rejections with this card"

    @property
    def state(self) -> str:
        """The state shown: a rejection awaiting its second reviewer is one of its own."""
        if self.case.status == IN_REVIEW and self.case.proposed_rejection_by_id is not None:
            return SECOND_REVIEW
        return self.case.status


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None
    more_matches: bool = False  # the search term matched more orders than were searched


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
    history: History | None = None


class _FourEyes(ColumnElement[bool]):
    """The case awaits its second reviewer (FOUR_EYES), read through its partial index.

    SQLite's planner never picks the partial index for FOUR_EYES: it reads every in-review
    case through a (status, …) index instead (25 ms at 50,000 open cases, growing with the
    queue). On SQLite the cases are therefore taken from the partial index by name, then
    looked up by id; PostgreSQL plans the plain condition onto the partial index itself.
    """

    inherit_cache = True
    type = NullType()  # type: ignore[assignment]  # Boolean: SQLite would add "= 1"


@compiles(_FourEyes)
def _four_eyes(element: _FourEyes, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(FOUR_EYES, **kw)


@compiles(_FourEyes, "sqlite")
def _four_eyes_sqlite(element: _FourEyes, compiler: SQLCompiler, **kw: Any) -> str:
    # Constant SQL: the condition is FOUR_EYES itself, no value is spliced in.
    return (
        "verification_cases.id IN (SELECT id FROM verification_cases"  # noqa: S608
        f" INDEXED BY ix_verification_cases_four_eyes WHERE {compiler.process(FOUR_EYES, **kw)})"
    )


AWAITING_SECOND_REVIEW = _FourEyes()


def _amount(raw: str | None, name: str) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValidationError(
            "Amounts are numbers.", {name: "Enter an amount such as 100 or 99.50."}
        ) from None
    if not value.is_finite() or value < 0 or value * 100 >= MAX_AMOUNT_MINOR:
        raise ValidationError("That amount is out of range.", {name: "Enter zero or more."})
    return int(value * 100)


def clean_filters(
    state: str | None = None,
    reason: str | None = None,
    search: str | None = None,
    *,
    sort: str | None = None,
    late: bool = False,
    mine: bool = False,
    amount_min: str | None = None,
    amount_max: str | None = None,
) -> QueueFilters:
    """Normalise raw filter values; raises ValidationError naming the bad one."""
    state = state or IN_REVIEW
    if state not in STATE_FILTERS:
        raise ValidationError("Unknown queue state.", {"state": "Unknown state."})
    if reason and reason not in REASON_FILTERS:
        raise ValidationError("Unknown sampling reason.", {"reason": "Choose random or a rule."})
    if sort and sort not in SORTS:
        raise ValidationError("Unknown sort.", {"sort": "Unknown sort."})
    low, high = _amount(amount_min, "amount_min"), _amount(amount_max, "amount_max")
    if low is not None and high is not None and low > high:
        raise ValidationError("The amount range is empty.", {"amount_max": "Below the minimum."})
    return QueueFilters(state=state, reason=reason or None, search=(search or "").strip()[:254],
                        sort=sort or "flagged", late=late, mine=mine, amount_min=low,
                        amount_max=high)  # fmt: skip


def _waiting_since() -> ColumnElement[datetime]:
    return func.coalesce(VerificationCase.submitted_at, VerificationCase.created_at)


def _sort_key(filters: QueueFilters) -> tuple[Any, bool]:
    """The column the queue pages on, and whether it runs newest (largest) first."""
    if filters.sort == "amount":
        return VerificationCase.amount_minor, True
    if filters.sort == "waiting":
        return _waiting_since(), False
    if filters.state == DECIDED and filters.sort == "flagged":
        # Decided cases list newest first by the time they reached their final state.
        return VerificationCase.updated_at, True
    return VerificationCase.created_at, SORTS[filters.sort]


def encode_cursor(moment: datetime | int, case_id: int) -> str:
    value = moment if isinstance(moment, int) else moment.astimezone(UTC).isoformat()
    raw = f"{value}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, numeric: bool = False) -> tuple[datetime | int, int]:
    """Parse a cursor made by encode_cursor; raises ValidationError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value, case_id = raw.split("|")
        if numeric:
            return int(value), int(case_id)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(case_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("That page link is not valid.", {"after": "Bad cursor."}) from None


def queue_query(
    filters: QueueFilters,
    *,
    now: datetime,
    settings: Settings,
    me: int | None = None,
    matches: list[int] | None = None,
) -> Select[VerificationCase]:
    """The queue's SELECT without paging: cases joined to their orders, filtered.

    `matches` are the ids of the orders a search found (match_orders): found first, each
    through the search index, so the planner never walks the whole queue testing the term.
    """  # fmt: skip
    query = (
        select(VerificationCase)
        .join(VerificationCase.order)
        .options(contains_eager(VerificationCase.order))
    )
    states = STATE_FILTERS[filters.state]
    if filters.state == SECOND_REVIEW:
        # Implies the state: a status term of its own would lead SQLite's planner to walk
        # every in-review case through (status, …) instead of the few awaiting a second review.
        query = query.where(AWAITING_SECOND_REVIEW)
    elif len(states) == 1:
        query = query.where(VerificationCase.status == states[0])
    elif states:
        query = query.where(VerificationCase.status.in_(states))
    if filters.reason == "random":
        query = query.where(VerificationCase.reason == "random")
    elif filters.reason == "rule":
        # Any forcing rule: the built-in switches and the admin's rules, which name the reason.
        query = query.where(VerificationCase.reason != "random")
    elif filters.reason:
        query = query.where(VerificationCase.reason == filters.reason)
    if filters.late:
        cutoff = now - timedelta(hours=settings.review_target_hours)
        if filters.state != SECOND_REVIEW:
            query = query.where(VerificationCase.status == IN_REVIEW)
        query = query.where(_waiting_since() < cutoff)
    if filters.mine:
        query = query.where(
            VerificationCase.claimed_by_id == me, VerificationCase.lease_expires_at > now
        )
    if filters.amount_min is not None:
        query = query.where(VerificationCase.amount_minor >= filters.amount_min)
    if filters.amount_max is not None:
        query = query.where(VerificationCase.amount_minor <= filters.amount_max)
    if matches is not None:
        query = query.where(VerificationCase.order_id.in_(matches))
    return query


def _age(case: VerificationCase, now: datetime) -> timedelta:
    return now - (case.submitted_at or case.created_at)


def _late(case: VerificationCase, now: datetime, settings: Settings) -> bool:
    # The queue's "late" filter says the same in SQL (queue_query).
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
    me: int | None = None,
) -> QueuePage:
    """One page of the queue in the filters' sort, after the `after` cursor, with each row's
    linked-history hint."""
    limit = max(1, min(limit, MAX_LIMIT))
    sort, descending = _sort_key(filters)
    matches = match_orders(session, filters.search) if filters.search else None
    if matches is not None and not matches.order_ids:
        return QueuePage(rows=[], next_cursor=None)
    query = queue_query(filters, now=now, settings=settings, me=me,
                        matches=matches.order_ids if matches else None)  # fmt: skip
    if after:
        value, case_id = decode_cursor(after, numeric=filters.sort == "amount")
        key = tuple_(sort, VerificationCase.id)
        query = query.where(key < (value, case_id) if descending else key > (value, case_id))
    order = [sort, VerificationCase.id]
    if descending:
        order = [column.desc() for column in order]
    cases = session.scalars(query.order_by(*order).limit(limit + 1)).all()
    more = len(cases) > limit
    cases = cases[:limit]
    labels = staff_labels(
        session, {c.claimed_by_id for c in cases if c.lease_expires_at and c.lease_expires_at > now}
    )
    hints = rejection_hints(session, [c.order_id for c in cases])
    rows = [
        QueueRow(
            case=c,
            age=_age(c, now),
            late=_late(c, now, settings),
            holder=labels.get(c.claimed_by_id)
            if c.claimed_by_id is not None and c.lease_expires_at and c.lease_expires_at > now
            else None,
            hint=hints.get(c.order_id),
        )
        for c in cases
    ]
    cursor = None
    if more and cases:
        cursor = encode_cursor(_sort_value(cases[-1], filters), cases[-1].id)
    return QueuePage(rows=rows, next_cursor=cursor,
                     more_matches=bool(matches and matches.more))  # fmt: skip


def _sort_value(case: VerificationCase, filters: QueueFilters) -> datetime | int:
    if filters.sort == "amount":
        return case.amount_minor
    if filters.sort == "waiting":
        return case.submitted_at or case.created_at
    if filters.state == DECIDED and filters.sort == "flagged":
        return case.updated_at
    return case.created_at


def queue_counts(session: Session) -> dict[str, int]:
    """Cases per queue tab (decided sums its states), from the state counters."""
    per_status = case_counts(session)
    counts = {
        name: sum(per_status.get(state, 0) for state in states)
        for name, states in STATE_FILTERS.items()
        if states
    }
    counts[ALL] = sum(per_status.values())
    # Few at any time, counted through their partial index.
    counts[SECOND_REVIEW] = (
        session.scalar(
            select(func.count()).select_from(VerificationCase).where(AWAITING_SECOND_REVIEW)
        )
        or 0
    )
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
        history=linked_history(session, case.order),
    )
