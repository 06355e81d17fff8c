"""What the retention pages show: the purge schedule, recent runs and each case's receipt."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session, selectinload

from verifier.core.settings import Settings
from verifier.errors import NotFoundError
from verifier.models import OPEN_CASE_STATES, Document, PurgeRun, UploadLink, VerificationCase
from verifier.retention.purge import ACTIVE, ERASED, PURGED, REPLACED, case_due_at

KIND_LABELS = {
    "card_front": "front of the payment card",
    "card_back": "back of the payment card",
    "photo_id": "photo ID",
    "proof_of_address": "proof of address",
}


@dataclass(frozen=True)
class ScheduleEntry:
    """One case that still stores documents, and when they go."""

    case_id: int
    order_external_id: str
    case_status: str
    documents: int
    kinds: tuple[str, ...]
    due_at: datetime | None  # None: the case is open, nothing is scheduled yet
    state: str  # due | scheduled | open | held
    hold_reason: str | None
    held_since: datetime | None


@dataclass(frozen=True)
class PurgeSchedule:
    entries: list[ScheduleEntry]
    due_now: int  # documents the next run destroys
    due_this_week: int
    held_cases: int
    open_cases: int
    total_cases: int


def _stored_documents(
    session: Session, case_ids: list[int] | None = None
) -> Sequence[Row[int, str, str, bool]]:
    stmt = select(
        Document.case_id, Document.kind, Document.status, Document.wrapped_key.is_(None)
    ).where(Document.wrapped_key.is_not(None) | Document.blob_name.is_not(None))
    if case_ids is not None:
        stmt = stmt.where(Document.case_id.in_(case_ids))
    return session.execute(stmt).all()


def _link_expiries(session: Session, case_ids: list[int]) -> dict[int, datetime]:
    rows = session.execute(
        select(UploadLink.case_id, func.max(UploadLink.expires_at))
        .where(UploadLink.case_id.in_(case_ids))
        .group_by(UploadLink.case_id)
    ).all()
    return dict(rows)


def _entry(
    case: VerificationCase,
    docs: list[tuple[str, str, bool]],
    expiry: datetime | None,
    settings: Settings,
    now: datetime,
) -> ScheduleEntry:
    kinds = tuple(sorted({kind for kind, _status, _keyless in docs}))
    leftovers = any(keyless or status != ACTIVE for _kind, status, keyless in docs)
    due_at = case_due_at(case.status, case.decided_at, case.updated_at, expiry, settings)
    held = case.legal_hold_at is not None
    if leftovers and not held:
        due_at, state = now, "due"
    elif held:
        state = "held"
    elif due_at is None:
        state = "open"
    else:
        state = "due" if due_at <= now else "scheduled"
    return ScheduleEntry(
        case_id=case.id,
        order_external_id=case.order.external_id,
        case_status=case.status,
        documents=len(docs),
        kinds=kinds,
        due_at=due_at,
        state=state,
        hold_reason=case.legal_hold_reason,
        held_since=case.legal_hold_at,
    )


def purge_schedule(
    session: Session, now: datetime, settings: Settings, *, limit: int = 200
) -> PurgeSchedule:
    """Every case still storing documents: due first, then by due date, open cases last."""
    by_case: dict[int, list[tuple[str, str, bool]]] = defaultdict(list)
    for case_id, kind, status, keyless in _stored_documents(session):
        by_case[case_id].append((kind, status, bool(keyless)))
    ids = list(by_case)
    cases = session.scalars(
        select(VerificationCase)
        .where(VerificationCase.id.in_(ids))
        .options(selectinload(VerificationCase.order))
    ).all()
    expiries = _link_expiries(session, ids)
    entries = [_entry(c, by_case[c.id], expiries.get(c.id), settings, now) for c in cases]
    order = {"due": 0, "held": 1, "scheduled": 2, "open": 3}
    far = now + timedelta(days=365 * 100)
    entries.sort(key=lambda e: (order[e.state], e.due_at or far, e.case_id))
    week = now + timedelta(days=7)
    return PurgeSchedule(
        entries=entries[:limit],
        due_now=sum(e.documents for e in entries if e.state == "due"),
        due_this_week=sum(
            e.documents
            for e in entries
            # A due or scheduled entry always has a due_at.
            if e.state in ("due", "scheduled") and e.due_at is not None and e.due_at <= week
        ),
        held_cases=sum(1 for e in entries if e.state == "held"),
        open_cases=sum(1 for e in entries if e.state == "open"),
        total_cases=len(entries),
    )


def recent_purge_runs(session: Session, limit: int = 20) -> list[PurgeRun]:
    """The newest purge runs first (an unfinished one was interrupted or is still running)."""
    return list(
        session.scalars(
            select(PurgeRun).order_by(PurgeRun.started_at.desc(), PurgeRun.id.desc()).limit(limit)
        )
    )


@dataclass(frozen=True)
class Destroyed:
    """Documents destroyed together: same way, same moment, same run."""

    how: str  # purged | erased | replaced
    at: datetime | None
    run_id: int | None
    kinds: tuple[tuple[str, int], ...]  # (kind label, count), pages counted one by one
    # Erased only: customer_request, or what a reviewer saw (review.documents.ERASE_REASONS).
    erase_reason: str | None = None


@dataclass(frozen=True)
class PurgeReceipt:
    case: VerificationCase
    destroyed: list[Destroyed]
    stored: int
    stored_kinds: tuple[str, ...]
    due_at: datetime | None
    held: bool
    runs: dict[int, PurgeRun] = field(default_factory=dict)

    @property
    def documents_destroyed(self) -> int:
        return sum(n for group in self.destroyed for _k, n in group.kinds)


def purge_receipt(
    session: Session, case_id: int, now: datetime, settings: Settings
) -> PurgeReceipt:
    """What was destroyed of a case's documents, when and by which run; and what remains."""
    case = session.scalar(
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(selectinload(VerificationCase.order), selectinload(VerificationCase.documents))
    )
    if case is None:
        raise NotFoundError("There is no such case.")
    groups: dict[tuple[str, datetime | None, int | None, str | None], Counter[str]] = defaultdict(
        Counter
    )
    stored = []
    for doc in case.documents:
        if doc.wrapped_key is not None or doc.blob_name is not None:
            stored.append(doc)
        elif doc.status in (PURGED, ERASED, REPLACED):
            at = doc.erased_at if doc.status == ERASED else doc.purged_at
            run = doc.purge_run_id if doc.status == PURGED else None
            key = (doc.status, at, run, doc.erase_reason if doc.status == ERASED else None)
            groups[key][KIND_LABELS.get(doc.kind, doc.kind)] += 1
    destroyed = [
        Destroyed(how, at, run_id, tuple(sorted(counts.items())), reason)
        for (how, at, run_id, reason), counts in groups.items()
    ]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    destroyed.sort(key=lambda d: (d.at or far, d.how))
    run_ids = {d.run_id for d in destroyed if d.run_id is not None}
    runs: dict[int, PurgeRun] = {}
    if run_ids:
        runs = {r.id: r for r in session.scalars(select(PurgeRun).where(PurgeRun.id.in_(run_ids)))}
    expiry = _link_expiries(session, [case.id]).get(case.id)
    due_at = None
    if stored and case.status not in OPEN_CASE_STATES:
        due_at = case_due_at(case.status, case.decided_at, case.updated_at, expiry, settings)
    return PurgeReceipt(
        case=case,
        destroyed=destroyed,
        stored=len(stored),
        stored_kinds=tuple(sorted({KIND_LABELS.get(d.kind, d.kind) for d in stored})),
        due_at=due_at,
        held=case.legal_hold_at is not None,
        runs=runs,
    )


def case_purge_due_at(
    session: Session, case: VerificationCase, settings: Settings
) -> datetime | None:
    """When the case's stored documents are due (None while open or when none is stored)."""
    if case.status in OPEN_CASE_STATES or case.documents_purged_at is not None:
        return None
    expiry = _link_expiries(session, [case.id]).get(case.id)
    return case_due_at(case.status, case.decided_at, case.updated_at, expiry, settings)
