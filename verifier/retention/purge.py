"""Retention: what is due for purge, and the purge itself (crypto-shred, delete, sweep).

A document is destroyed in two committed steps, so a crash anywhere leaves a state the next
run finishes from:
1. *shred*: one transaction sets the wrapped data key to NULL and marks the row purged; from
   then on no copy of the blob decrypts (but a database backup taken before: see backups).
2. *delete*: the blob files are removed (each folder fsynced once a batch), then the batch's
   ``blob_name`` set to NULL and cases none of whose documents is left get
   ``documents_purged_at``.

A row with no key but a blob name is unfinished work and is picked up by every run (and by
erasure); its blob file is deleted (already gone is fine). Rows are claimed with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL and under SQLite's write lock (``BEGIN IMMEDIATE``),
and every update is conditional, so several processes purging at once each do their share.

On SQLite the purge steps aside after every commit (``_WriteLane``): SQLite's write lock has
no queue, so a loop of batch commits would take it again before a waiting order or delivery
woke up to try.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, case, event, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, ScalarSelect

from verifier.core.audit import record_event
from verifier.core.settings import Settings
from verifier.models import (
    APPROVED,
    DECLINED,
    EXPIRED,
    REJECTED,
    Document,
    PurgeRun,
    UploadLink,
    VerificationCase,
)
from verifier.retention.anonymise import anonymise_orders, orders_due_for_anonymising
from verifier.retention.purge_report import DueDocument, PurgeReport
from verifier.retention.sweep import old_temp_files, orphan_candidates, sweep_uploads
from verifier.vault.storage import delete_blobs, safe_uploads_dir

ACTIVE = "active"
REPLACED = "replaced"
ERASED = "erased"
PURGED = "purged"
DECIDED_STATES = (APPROVED, REJECTED, DECLINED)
FAULT_STEPS = ("claim", "shred", "delete", "finish", "sweep", "anonymise", "report")
# On SQLite, the pause after each commit: LANE_MIN_S (longer than the 2 ms a waiting writer
# sleeps between tries, verifier.db) or, when the purge itself had to wait for the lock (others
# are writing), as long as it held the lock times LANE_SHARE, at most LANE_MAX_S.
LANE_SHARE, LANE_MIN_S, LANE_MAX_S = 1.0, 0.003, 0.05

SessionFactory = Callable[[], Session]
Fault = Callable[[str], None]
"""Test hook: called with each name in FAULT_STEPS as the purge passes that point."""


def _no_fault(step: str) -> None:
    return None


def case_due_at(
    status: str,
    decided_at: datetime | None,
    updated_at: datetime,
    link_expiry: datetime | None,
    settings: Settings,
) -> datetime | None:
    """When a case's documents fall due, or None while the case is open.

    Decided cases: ``retention_decided_days`` after the decision. Expired cases:
    ``retention_expired_days`` after the expiry, taken as the last link's expiry (or the
    expiry transition when that is earlier or there is no link).
    """
    if status in DECIDED_STATES:
        return (decided_at or updated_at) + timedelta(days=settings.retention_decided_days)
    if status == EXPIRED:
        moment = min(link_expiry, updated_at) if link_expiry else updated_at
        return moment + timedelta(days=settings.retention_expired_days)
    return None


def _link_expiry() -> ScalarSelect[datetime]:
    return (
        select(func.max(UploadLink.expires_at))
        .where(UploadLink.case_id == VerificationCase.id)
        .correlate(VerificationCase)
        .scalar_subquery()
    )


def _case_due(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """SQL twin of ``case_due_at(...) <= now``."""
    decided_cutoff = now - timedelta(days=settings.retention_decided_days)
    expired_cutoff = now - timedelta(days=settings.retention_expired_days)
    return or_(
        and_(
            VerificationCase.status.in_(DECIDED_STATES),
            func.coalesce(VerificationCase.decided_at, VerificationCase.updated_at)
            <= decided_cutoff,
        ),
        and_(
            VerificationCase.status == EXPIRED,
            or_(
                VerificationCase.updated_at <= expired_cutoff,
                _link_expiry() <= expired_cutoff,
            ),
        ),
    )


def _stored() -> ColumnElement[bool]:
    return or_(Document.wrapped_key.is_not(None), Document.blob_name.is_not(None))


def _due_clause(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """Documents to destroy now (with _stored()).

    A legal hold keeps active and replaced documents; erased documents (a reviewer saw card
    data that must not be kept) and rows whose key is already gone are always finished.
    """
    not_held = VerificationCase.legal_hold_at.is_(None)
    return or_(
        Document.wrapped_key.is_(None),
        Document.status.in_((ERASED, PURGED)),
        and_(Document.status == REPLACED, not_held),
        and_(Document.status == ACTIVE, not_held, _case_due(now, settings)),
    )


def due_documents(
    session: Session, now: datetime, settings: Settings, *, limit: int | None = None
) -> list[DueDocument]:
    """Every document the purge would destroy at ``now`` (held cases excluded), oldest first."""
    stmt = (
        select(
            Document.id,
            Document.case_id,
            Document.kind,
            Document.status,
            Document.wrapped_key.is_(None).label("keyless"),
            VerificationCase.status,
            VerificationCase.decided_at,
            VerificationCase.updated_at,
            _link_expiry(),
        )
        .join(VerificationCase, Document.case_id == VerificationCase.id)
        .where(_stored(), _due_clause(now, settings))
        .order_by(Document.case_id, Document.id)
        .limit(limit)
    )
    due = []
    for (
        doc_id,
        case_id,
        kind,
        status,
        keyless,
        c_status,
        decided,
        updated,
        expiry,
    ) in session.execute(stmt).all():
        if keyless:
            reason, due_at = "unfinished", None
        elif status != ACTIVE:
            reason, due_at = status, None
        else:
            reason = "expired" if c_status == EXPIRED else "decided"
            due_at = case_due_at(c_status, decided, updated, expiry, settings)
        due.append(DueDocument(doc_id, case_id, kind, status, reason, due_at))
    return due


def count_newly_due(session: Session, now: datetime, settings: Settings, proposed: Settings) -> int:
    """How many stored documents `proposed` would make due at ``now`` that `settings` does not.

    One COUNT in SQL: what a shorter retention period destroys at the next purge.
    """
    due_now = case((_due_clause(now, settings), 1), else_=0)  # NULL (unknown) counts as not due
    return (
        session.scalar(
            select(func.count())
            .select_from(Document)
            .join(VerificationCase, Document.case_id == VerificationCase.id)
            .where(_stored(), _due_clause(now, proposed), due_now == 0)
        )
        or 0
    )


def held_case_ids(session: Session, now: datetime, settings: Settings) -> list[int]:
    """Cases whose stored documents would be due now but are kept by a legal hold."""
    would_be_due = exists().where(
        Document.case_id == VerificationCase.id,
        Document.wrapped_key.is_not(None),
        or_(Document.status == REPLACED, and_(Document.status == ACTIVE, _case_due(now, settings))),
    )
    return list(
        session.scalars(
            select(VerificationCase.id)
            .where(VerificationCase.legal_hold_at.is_not(None), would_be_due)
            .order_by(VerificationCase.id)
        )
    )


# --- the purge ------------------------------------------------------------------------------


def purge_due_documents(
    session_factory: SessionFactory,
    uploads_dir: Path | str,
    now: datetime,
    settings: Settings,
    *,
    dry_run: bool = False,
    batch: int = 100,
    actor: str = "cli",
    _fault: Fault | None = None,
) -> PurgeReport:
    """Destroy every due document, sweep orphans and temp files, anonymise old orders.

    Commits in batches through its own sessions; writes one PurgeRun row and one audit event
    with counts. With ``dry_run`` it only reports what would go. Raises StorageError for an
    unsafe uploads directory before touching anything.
    """
    uploads = safe_uploads_dir(uploads_dir)
    if dry_run:
        return _dry_run(session_factory, uploads, now, settings)
    fault = _fault or _no_fault
    with session_factory() as session:
        started = PurgeRun(started_at=now, actor=actor[:254])
        session.add(started)
        session.commit()
        run_id = started.id
        if _dialect(session) == "sqlite":
            session_factory = _WriteLane(session_factory)
    report = PurgeReport(run_id=run_id)
    failed: set[str] = set()
    while True:
        claimed = _shred_batch(session_factory, now, settings, run_id, batch, report, fault)
        finished = finish_shredded(session_factory, uploads, now, batch, report, failed, fault)
        if not claimed and not finished:
            break
    removed, temps = sweep_uploads(session_factory, uploads, now)
    report.orphans_removed, report.temp_files_removed = removed, temps
    fault("sweep")
    report.orders_anonymised = _anonymise_due(session_factory, now, settings, fault)
    with session_factory() as session:
        report.held_cases = len(held_case_ids(session, now, settings))
        run = session.get(PurgeRun, run_id)
        assert run is not None  # written above; purge runs are never deleted
        run.finished_at = now
        run.documents_purged = report.documents_purged
        run.orphans_removed = report.orphans_removed
        run.orders_anonymised = report.orders_anonymised
        run.details = report.counts()
        fault("report")
        record_event(
            session,
            "retention.purge_run",
            actor_type="cli" if actor == "cli" else "system",
            actor_id=actor,
            target_type="purge_run",
            target_id=run_id,
            details=report.counts(),
            now=now,
        )
        session.commit()
    return report


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


class _WriteLane:
    """A session factory whose sessions pause after each commit, so that writers waiting for
    SQLite's write lock (orders, uploads, the worker's deliveries) get it between two batches;
    longer while they keep the purge waiting in turn. See LANE_SHARE."""

    def __init__(self, factory: SessionFactory) -> None:
        self.factory = factory
        self.began, self.contended = 0.0, False

    def __call__(self) -> Session:
        session = self.factory()
        event.listen(session, "after_begin", self._begin)
        event.listen(session, "after_commit", self._commit)
        return session

    def _begin(self, _session: Session, _transaction: Any, connection: Any) -> None:
        self.began = time.monotonic()  # after BEGIN IMMEDIATE: the lock is ours from here
        self.contended = bool(connection.info.get("lock_waited"))

    def _commit(self, _session: Session) -> None:
        held = time.monotonic() - self.began
        pause = held * LANE_SHARE if self.contended else 0.0
        time.sleep(min(max(pause, LANE_MIN_S), LANE_MAX_S))


def _shred_batch(session_factory: SessionFactory, now: datetime, settings: Settings, run_id: int,
                 batch: int, report: PurgeReport, fault: Fault) -> int:  # fmt: skip
    """Step 1: claim due rows that still have a key, drop the key and mark them purged."""
    with session_factory() as session:
        stmt = (
            select(Document.id, Document.case_id, Document.blob_name)
            .join(VerificationCase, Document.case_id == VerificationCase.id)
            .where(Document.wrapped_key.is_not(None), _due_clause(now, settings))
            .order_by(Document.id)
            .limit(batch)
        )
        if _dialect(session) == "postgresql":
            # The case row too: a legal hold being set waits for this batch, or wins it.
            stmt = stmt.with_for_update(skip_locked=True, of=(Document, VerificationCase))
        rows = session.execute(stmt).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        fault("claim")
        result = session.execute(
            update(Document)
            .where(
                Document.id.in_(ids),
                Document.wrapped_key.is_not(None),
                Document.status.in_((ACTIVE, REPLACED)),
            )
            .values(wrapped_key=None, status=PURGED, purged_at=now, purge_run_id=run_id)
            .execution_options(synchronize_session=False)
        )
        purged = cast(CursorResult[Any], result).rowcount
        # Erased (or oddly purged) rows that kept a key: the key goes, the status stays.
        result = session.execute(
            update(Document)
            .where(Document.id.in_(ids), Document.wrapped_key.is_not(None))
            .values(wrapped_key=None)
            .execution_options(synchronize_session=False)
        )
        others = cast(CursorResult[Any], result).rowcount
        # A row with its blob still there keeps its case uncleared until step 2.
        mark_cases_cleared(session, {row.case_id for row in rows if row.blob_name is None}, now)
        # The run's count moves in the same commit as the rows it counts: an interrupted run
        # still says how many it purged.
        session.execute(
            update(PurgeRun)
            .where(PurgeRun.id == run_id)
            .values(documents_purged=PurgeRun.documents_purged + purged)
        )
        session.commit()
    report.documents_purged += purged
    report.keys_shredded += purged + others
    fault("shred")
    return len(rows)


def finish_shredded(
    session_factory: SessionFactory,
    uploads_dir: Path,
    now: datetime,
    batch: int,
    report: PurgeReport,
    failed: set[str],
    fault: Fault = _no_fault,
    *,
    only_ids: Sequence[str] | None = None,
) -> int:
    """Step 2: delete the blob of each keyless row, then forget its name; returns rows done.

    Rows whose blob cannot be deleted are added to ``failed`` and left for the next run.
    """
    with session_factory() as session:
        stmt = (
            select(Document.id, Document.blob_name, Document.case_id, Document.purge_run_id)
            .join(VerificationCase, Document.case_id == VerificationCase.id)
            .where(Document.wrapped_key.is_(None), Document.blob_name.is_not(None))
            .order_by(Document.id)
            .limit(batch)
        )
        if failed:
            stmt = stmt.where(Document.id.not_in(failed))
        if only_ids is not None:
            stmt = stmt.where(Document.id.in_(list(only_ids)))
        if _dialect(session) == "postgresql":
            # Locking the case serialises the "all its documents gone?" check per case: two
            # processes finishing a case's last documents at once would each see the other's
            # documents still stored, and neither would set documents_purged_at.
            stmt = stmt.with_for_update(skip_locked=True, of=(Document, VerificationCase))
        rows = session.execute(stmt).all()
        if _dialect(session) != "postgresql":
            # SQLite has one write lock for the whole database: end this (read-only)
            # transaction before the file I/O, or every order and upload would wait for the
            # unlinks and fsyncs. A rollback, not a commit: the I/O is the write lane's pause.
            session.rollback()
        removed, errors = delete_blobs(uploads_dir, [row.blob_name for row in rows])
        finished = [row for row in rows if row.blob_name not in errors]
        for row in rows:
            if row.blob_name in errors:
                failed.add(row.id)
                report.failures += 1
        if finished:
            fault("delete")
        ids = [row.id for row in finished]
        # Set-based: the whole batch forgets its blob names in one statement, and a row left
        # keyless but unmarked (not by this module) is marked in another.
        session.execute(
            update(Document)
            .where(Document.id.in_(ids), Document.blob_name.is_not(None))
            .values(blob_name=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Document)
            .where(Document.id.in_(ids), Document.status.in_((ACTIVE, REPLACED)))
            .values(status=PURGED, purged_at=now, purge_run_id=report.run_id)
            .execution_options(synchronize_session=False)
        )
        report.blobs_deleted += sum(removed[row.blob_name] for row in finished)
        report.unfinished_completed += sum(row.purge_run_id != report.run_id for row in finished)
        cases = {row.case_id for row in finished}
        done = len(finished)
        mark_cases_cleared(session, cases, now)
        session.commit()
    if rows:
        fault("finish")
    return done


def mark_cases_cleared(session: Session, case_ids: Iterable[int], now: datetime) -> int:
    """Set ``documents_purged_at`` on those cases none of whose documents is stored any more."""
    ids = set(case_ids)
    if not ids:
        return 0
    # A grouped read by the documents' case index, then one UPDATE (NOT EXISTS scanned all).
    stored = func.max(case((_stored(), 1), else_=0))
    rows = session.execute(
        select(Document.case_id, stored).where(Document.case_id.in_(ids)).group_by(Document.case_id)
    )
    cleared = [case_id for case_id, any_stored in rows if not any_stored]
    if not cleared:
        return 0
    result = session.execute(
        update(VerificationCase)
        .where(VerificationCase.id.in_(cleared), VerificationCase.documents_purged_at.is_(None))
        .values(documents_purged_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount


def _anonymise_due(session_factory: SessionFactory, now: datetime, settings: Settings,
                   fault: Fault) -> int:  # fmt: skip
    total = 0
    while True:
        with session_factory() as session:
            ids = orders_due_for_anonymising(session, now, settings.anonymise_after_days)
            if not ids:
                return total
            count = anonymise_orders(session, ids, now)
            fault("anonymise")
            session.commit()
        total += count
        if count == 0:
            # Another process took all of these; its own loop carries on with the rest.
            return total


def _dry_run(session_factory: SessionFactory, uploads: Path, now: datetime,
             settings: Settings) -> PurgeReport:  # fmt: skip
    with session_factory() as session:
        documents = due_documents(session, now, settings)
        held = held_case_ids(session, now, settings)
        anonymise = orders_due_for_anonymising(
            session, now, settings.anonymise_after_days, limit=100_000
        )
        session.rollback()
    orphans = orphan_candidates(session_factory, uploads, now)
    return PurgeReport(
        dry_run=True,
        documents_purged=sum(1 for d in documents if d.status in (ACTIVE, REPLACED)),
        held_cases=len(held),
        orphans_removed=len(orphans),
        temp_files_removed=len(old_temp_files(uploads, now)),
        orders_anonymised=len(anonymise),
        documents=documents,
        orphans=orphans,
    )
