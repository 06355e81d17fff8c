"""Retention purge: due dates, legal holds, crypto-shredding, crash safety, concurrency, sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.retention_helpers import (
    DAY,
    NOW,
    add_document,
    blob_path,
    factory,
    jpeg_bytes,
    keyring_of,
    make_case,
    plaintext_on_disk,
    stored_files,
)
from verifier.core.settings import Settings
from verifier.db import new_session
from verifier.errors import StorageError
from verifier.models import AuditEvent, Document, Order, PurgeRun, VerificationCase
from verifier.retention.purge import FAULT_STEPS, case_due_at, due_documents, purge_due_documents
from verifier.retention.receipts import purge_receipt, purge_schedule
from verifier.vault.storage import read_blob

SETTINGS = Settings()
KINDS = ("card_front", "card_back", "photo_id", "proof_of_address")
HOUR = 3600


class Crash(Exception):
    """Stands in for the process dying at a step."""


@pytest.fixture
def uploads(app) -> Path:
    return Path(app.config["UPLOADS_DIR"])


def purge(app, now, settings=SETTINGS, **kwargs):
    return purge_due_documents(factory(app), app.config["UPLOADS_DIR"], now, settings, **kwargs)


def load(app, model, ident):
    with new_session(app) as session:
        return session.get(model, ident)


def documents(app) -> list[Document]:
    with new_session(app) as session:
        return list(session.scalars(select(Document).order_by(Document.id)))


def assert_destroyed(app, uploads: Path, docs: list[Document], backups: dict[str, bytes]):
    """No blob, no key, no plaintext: and a backup copy of a blob can no longer be read."""
    keyring = keyring_of(app)
    for before in docs:
        after = load(app, Document, before.id)
        assert after.status == "purged"
        assert after.wrapped_key is None and after.blob_name is None
        assert after.purged_at is not None and after.purge_run_id is not None
        assert not blob_path(uploads, before.blob_name).exists()
        with pytest.raises((StorageError, TypeError)):
            read_blob(uploads, keyring, after.id, before.blob_name, after.wrapped_key, after.key_id)
    # The backup still has the ciphertext, but its key is gone from the database.
    backup = uploads.parent / "backup"
    backup.mkdir(exist_ok=True)
    for name, raw in backups.items():
        path = blob_path(backup, name)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(raw)
    for before in docs:
        assert load(app, Document, before.id).wrapped_key is None
    assert not plaintext_on_disk(uploads, [jpeg_bytes(i) for i in range(40)])


def decided_case_with_docs(app, db_session, uploads, external_id="A-1", *, decided_at, kinds=2):
    case = make_case(db_session, external_id, "approved", decided_at=decided_at,
                     updated_at=decided_at)  # fmt: skip
    docs = [
        add_document(db_session, uploads, keyring_of(app), case, kind, seed=i)
        for i, kind in enumerate(
            ["card_front", "card_back", "photo_id", "proof_of_address"][:kinds]
        )
    ]
    db_session.commit()
    return case, docs


# --- due dates -------------------------------------------------------------------------------


def test_case_due_at_follows_the_settings():
    settings = Settings(retention_decided_days=30, retention_expired_days=7)
    assert case_due_at("approved", NOW, NOW + DAY, None, settings) == NOW + 30 * DAY
    assert case_due_at("declined", None, NOW, None, settings) == NOW + 30 * DAY
    # Expired: from the link's expiry, or the expiry transition when that is earlier.
    assert case_due_at("expired", None, NOW + DAY, NOW, settings) == NOW + 7 * DAY
    assert case_due_at("expired", None, NOW, None, settings) == NOW + 7 * DAY
    assert case_due_at("in_review", None, NOW, NOW, settings) is None


def test_decided_documents_are_kept_until_due_and_purged_after(app, db_session, uploads):
    decided = NOW - 30 * DAY
    case, docs = decided_case_with_docs(app, db_session, uploads, decided_at=decided)
    backups = {d.blob_name: blob_path(uploads, d.blob_name).read_bytes() for d in docs}

    early = purge(app, decided + 30 * DAY - timedelta(seconds=1))
    assert early.documents_purged == 0
    assert all(blob_path(uploads, d.blob_name).exists() for d in docs)
    assert all(d.status == "active" and d.wrapped_key for d in documents(app))

    report = purge(app, decided + 30 * DAY)
    assert report.documents_purged == 2 and report.blobs_deleted == 2
    assert_destroyed(app, uploads, docs, backups)
    assert load(app, VerificationCase, case.id).documents_purged_at == decided + 30 * DAY
    assert stored_files(uploads) == []


def test_expired_case_documents_go_retention_expired_days_after_the_link_expiry(
    app, db_session, uploads
):
    expiry = NOW - 10 * DAY
    case = make_case(db_session, "E-1", "expired", updated_at=expiry + timedelta(seconds=2 * HOUR),
                     link_expires_at=expiry)  # fmt: skip
    add_document(db_session, uploads, keyring_of(app), case)
    db_session.commit()
    settings = Settings(retention_expired_days=7)

    assert purge(app, expiry + 7 * DAY - timedelta(seconds=1), settings).documents_purged == 0
    assert purge(app, expiry + 7 * DAY, settings).documents_purged == 1


def test_open_cases_keep_their_documents_whatever_the_date(app, db_session, uploads):
    case = make_case(db_session, "O-1", "in_review", updated_at=NOW - 400 * DAY)
    add_document(db_session, uploads, keyring_of(app), case)
    db_session.commit()
    assert purge(app, NOW + 4000 * DAY).documents_purged == 0
    assert documents(app)[0].status == "active"


def test_replaced_and_keyless_leftovers_are_due_at_once(app, db_session, uploads):
    case = make_case(db_session, "O-2", "in_review")
    kept = add_document(db_session, uploads, keyring_of(app), case, seed=1)
    stale = add_document(db_session, uploads, keyring_of(app), case, status="replaced", seed=2)
    half = add_document(db_session, uploads, keyring_of(app), case, "photo_id", seed=3)
    half.wrapped_key = None  # a crash after an earlier shred
    db_session.commit()

    due = {d.document_id: d.reason for d in due_documents(db_session, NOW, SETTINGS)}
    assert due == {stale.id: "replaced", half.id: "unfinished"}
    report = purge(app, NOW)
    assert report.documents_purged == 1
    assert report.blobs_deleted == 2
    assert not blob_path(uploads, stale.blob_name).exists()
    assert not blob_path(uploads, half.blob_name).exists()
    assert blob_path(uploads, kept.blob_name).exists()
    assert load(app, VerificationCase, case.id).documents_purged_at is None


# --- legal hold ------------------------------------------------------------------------------


def test_legal_hold_skips_the_case_until_released(app, db_session, uploads):
    case, docs = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 60 * DAY)
    _other, other_docs = decided_case_with_docs(app, db_session, uploads, "A-2",
                                               decided_at=NOW - 60 * DAY, kinds=1)  # fmt: skip
    case.legal_hold_at, case.legal_hold_reason = NOW - DAY, "chargeback CB-1"
    db_session.commit()
    names = [d.blob_name for d in docs]

    report = purge(app, NOW)
    assert report.documents_purged == 1 and report.held_cases == 1
    assert all(blob_path(uploads, d.blob_name).exists() for d in docs)
    assert not blob_path(uploads, other_docs[0].blob_name).exists()
    schedule = purge_schedule(db_session, NOW, SETTINGS)
    (entry,) = schedule.entries
    assert (entry.case_id, entry.state, entry.hold_reason) == (case.id, "held", "chargeback CB-1")
    run = load(app, PurgeRun, report.run_id)
    assert run.details["held_cases"] == 1

    db_session.rollback()
    held = db_session.get(VerificationCase, case.id)
    held.legal_hold_at = held.legal_hold_reason = None
    db_session.commit()
    assert purge(app, NOW).documents_purged == 2
    assert all(not blob_path(uploads, name).exists() for name in names)


# --- the run record --------------------------------------------------------------------------


def test_each_run_writes_one_purge_run_and_one_audit_event_with_counts_only(
    app, db_session, uploads
):
    decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY)
    report = purge(app, NOW, actor="worker")
    purge(app, NOW)

    with new_session(app) as session:
        runs = session.scalars(select(PurgeRun).order_by(PurgeRun.id)).all()
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.purge_run")
        ).all()
    assert [(r.documents_purged, r.actor) for r in runs] == [(2, "worker"), (0, "cli")]
    assert all(r.finished_at == NOW for r in runs)
    assert len(events) == 2
    first = next(e for e in events if e.target_id == str(report.run_id))
    assert first.details["documents_purged"] == 2
    assert all(isinstance(v, int) for v in first.details.values())


def test_receipt_names_what_was_destroyed_when_and_by_which_run(app, db_session, uploads):
    case, _docs = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY)
    report = purge(app, NOW)
    with new_session(app) as session:
        receipt = purge_receipt(session, case.id, NOW, SETTINGS)
    (group,) = receipt.destroyed
    assert (group.how, group.at, group.run_id) == ("purged", NOW, report.run_id)
    assert dict(group.kinds) == {"front of the payment card": 1, "back of the payment card": 1}
    assert receipt.stored == 0 and receipt.documents_destroyed == 2


def test_schedule_lists_due_and_scheduled_cases(app, db_session, uploads):
    due, _ = decided_case_with_docs(app, db_session, uploads, "D-1", decided_at=NOW - 31 * DAY)
    later, _ = decided_case_with_docs(app, db_session, uploads, "D-2", decided_at=NOW - 25 * DAY,
                                      kinds=1)  # fmt: skip
    open_case = make_case(db_session, "D-3", "awaiting_documents")
    add_document(db_session, uploads, keyring_of(app), open_case)
    db_session.commit()

    schedule = purge_schedule(db_session, NOW, SETTINGS)
    states = [(e.order_external_id, e.state, e.due_at) for e in schedule.entries]
    assert states == [
        ("D-1", "due", NOW - DAY),
        ("D-2", "scheduled", NOW + 5 * DAY),
        ("D-3", "open", None),
    ]
    assert (schedule.due_now, schedule.due_this_week, schedule.open_cases) == (2, 3, 1)
    # The schedule and the purge agree on what is due.
    assert {d.case_id for d in due_documents(db_session, NOW, SETTINGS)} == {due.id}
    assert later.id != due.id


# --- dry run and sweeps ----------------------------------------------------------------------


def test_dry_run_reports_and_changes_nothing(app, db_session, uploads):
    _case, docs = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY)
    orphan = blob_path(uploads, "ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"VRFB\x01" + os.urandom(64))
    old = NOW.timestamp() - 2 * HOUR  # file times are compared with the injected clock
    os.utime(orphan, (old, old))
    files_before = {p: p.read_bytes() for p in stored_files(uploads)}

    report = purge(app, NOW, dry_run=True)
    assert report.dry_run and report.run_id is None
    assert {d.document_id for d in report.documents} == {d.id for d in docs}
    assert report.documents_purged == 2 and report.orphans == ["ab" + "0" * 30]
    assert "would go" in "\n".join(report.lines())
    assert {p: p.read_bytes() for p in stored_files(uploads)} == files_before
    assert all(d.status == "active" and d.wrapped_key for d in documents(app))
    with new_session(app) as session:
        assert session.scalar(select(func.count(PurgeRun.id))) == 0
        assert session.scalar(select(func.count(AuditEvent.id))) == 0


def test_orphan_sweep_removes_old_orphans_and_temp_files_and_keeps_fresh_ones(
    app, db_session, uploads
):
    _case, (doc,) = decided_case_with_docs(app, db_session, uploads, decided_at=NOW, kinds=1)
    now = NOW.timestamp()

    def place(relative: str, age_seconds: float) -> Path:
        path = uploads / relative
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 32)
        os.utime(path, (now - age_seconds, now - age_seconds))
        return path

    old_orphan = place("cd/" + "cd" * 16, 2 * HOUR)
    fresh_orphan = place("ce/" + "ce" * 16, 60)
    old_temp = place("cd/.tmp-abc123", 2 * HOUR)
    fresh_temp = place("cd/.tmp-def456", 60)
    os.utime(blob_path(uploads, doc.blob_name), (now - 5 * HOUR, now - 5 * HOUR))

    report = purge(app, NOW)
    assert (report.orphans_removed, report.temp_files_removed) == (1, 1)
    assert not old_orphan.exists() and not old_temp.exists()
    assert fresh_orphan.exists() and fresh_temp.exists()
    assert blob_path(uploads, doc.blob_name).exists()  # referenced by a row: never an orphan
    assert load(app, PurgeRun, report.run_id).orphans_removed == 1


def test_purge_refuses_an_unsafe_uploads_folder(app):
    for bad in ("", "/", str(Path.home())):
        with pytest.raises(StorageError):
            purge_due_documents(factory(app), bad, NOW, SETTINGS)


# --- anonymisation ---------------------------------------------------------------------------


def test_old_orders_are_anonymised_keeping_amounts_decisions_and_dates(app, db_session):
    old = make_case(db_session, "N-1", "approved", decided_at=NOW - 100 * DAY,
                    created_at=NOW - 100 * DAY)  # fmt: skip
    make_case(db_session, "N-2", None, created_at=NOW - 100 * DAY, with_case=False)
    make_case(db_session, "N-3", "in_review", created_at=NOW - 100 * DAY)
    held = make_case(db_session, "N-4", "rejected", created_at=NOW - 100 * DAY)
    held.legal_hold_at, held.legal_hold_reason = NOW, "dispute"
    make_case(db_session, "N-5", "approved", created_at=NOW - 10 * DAY)
    db_session.commit()
    settings = replace(SETTINGS, anonymise_after_days=90)

    assert purge(app, NOW).orders_anonymised == 0  # off by default
    assert purge(app, NOW, settings).orders_anonymised == 2
    with new_session(app) as session:
        orders = {o.external_id: o for o in session.scalars(select(Order))}
        case = session.get(VerificationCase, old.id)
        assert case.status == "approved" and case.decided_at == NOW - 100 * DAY
    for ref in ("N-1", "N-2"):
        order = orders[ref]
        assert order.anonymised_at == NOW
        assert "Alice" not in f"{order.customer_name}{order.cardholder_name}"
        assert order.customer_email.endswith(".invalid")
        assert order.billing_address == {"line1": "[anonymised]", "city": "[anonymised]",
                                         "country": "GB"}  # fmt: skip
        assert order.amount_minor == 12999 and order.placed_at == NOW - 100 * DAY
    for ref in ("N-3", "N-4", "N-5"):
        assert orders[ref].anonymised_at is None and orders[ref].customer_name == "Alice Meyer"


# --- crash safety ----------------------------------------------------------------------------


@pytest.mark.parametrize("step", FAULT_STEPS)
def test_a_crash_at_any_step_leaves_the_next_run_to_finish(app, db_session, uploads, step):
    _case, docs = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY,
                                         kinds=3)  # fmt: skip
    settings = replace(SETTINGS, anonymise_after_days=30)
    backups = {d.blob_name: blob_path(uploads, d.blob_name).read_bytes() for d in docs}

    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        purge(app, NOW, settings, batch=2, _fault=fault)
    second = purge(app, NOW, settings, batch=2)
    assert_destroyed(app, uploads, docs, backups)
    with new_session(app) as session:
        runs = session.scalars(select(PurgeRun).order_by(PurgeRun.id)).all()
        assert runs[0].finished_at is None  # the crashed run stays visible as unfinished
        # Each run's count moved with the batches it committed: together they count each once.
        assert sum(run.documents_purged for run in runs) == 3
        total = session.scalar(select(func.count(Document.id)).where(Document.status == "purged"))
        assert total == 3
        assert session.scalar(select(Order.anonymised_at)) == NOW
    if step in ("shred", "delete"):
        assert second.unfinished_completed >= 1


CHILD = r"""
import sys, time
from datetime import datetime
from pathlib import Path
from sqlalchemy.orm import sessionmaker
from verifier.db import make_engine
from verifier.retention.purge import purge_due_documents
from verifier.core.settings import Settings

url, uploads, now, ready = sys.argv[1:5]
engine = make_engine(url)
factory = sessionmaker(engine, expire_on_commit=False)

def fault(step):
    if step == "delete":  # one blob deleted, its row not yet committed
        Path(ready).write_text("ready")
        time.sleep(120)

purge_due_documents(factory, uploads, datetime.fromisoformat(now), Settings(), batch=2,
                    _fault=fault)
"""


def test_a_purge_process_killed_mid_run_is_finished_by_the_next(app, db_session, uploads):
    _case, docs = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY,
                                         kinds=4)  # fmt: skip
    backups = {d.blob_name: blob_path(uploads, d.blob_name).read_bytes() for d in docs}
    ready = uploads.parent / "child-ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, app.config["DATABASE_URL"], str(uploads), NOW.isoformat(),
         str(ready)],
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the child purge exited early"
            assert time.monotonic() < deadline, "the child purge never reached the delete step"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    # Killed between deleting a blob and committing: some rows have no key but a blob name.
    assert any(d.wrapped_key is None for d in documents(app))

    report = purge(app, NOW)
    assert report.unfinished_completed >= 1
    assert_destroyed(app, uploads, docs, backups)


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_purges_do_the_work_once_without_errors(app, db_session, uploads):
    keyring = keyring_of(app)
    all_docs = []
    for n in range(6):
        case = make_case(db_session, f"C-{n}", "rejected", decided_at=NOW - 40 * DAY)
        all_docs += [add_document(db_session, uploads, keyring, case, kind, seed=n * 4 + i)
                     for i, kind in enumerate(("card_front", "card_back", "photo_id"))]  # fmt: skip
    db_session.commit()
    backups = {d.blob_name: blob_path(uploads, d.blob_name).read_bytes() for d in all_docs}
    barrier = threading.Barrier(3)
    reports, errors = [], []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(purge(app, NOW, batch=2))
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(reports) == 3
    assert sum(r.documents_purged for r in reports) == len(all_docs)
    assert sum(r.blobs_deleted for r in reports) == len(all_docs)
    assert_destroyed(app, uploads, all_docs, backups)
    with new_session(app) as session:
        assert session.scalar(select(func.count(PurgeRun.id))) == 3
        cleared = session.scalars(select(VerificationCase.documents_purged_at)).all()
        assert all(at == NOW for at in cleared)


def test_a_blob_that_cannot_be_deleted_is_left_for_the_next_run(app, db_session, uploads):
    _case, (doc,) = decided_case_with_docs(app, db_session, uploads, decided_at=NOW - 31 * DAY,
                                           kinds=1)  # fmt: skip
    # A real undeletable entry (the tests run as root, so permissions would not stop unlink):
    # a directory, with something in it, where the blob file should be.
    path = blob_path(uploads, doc.blob_name)
    content = path.read_bytes()
    path.unlink()
    path.mkdir()
    (path / "in-the-way").write_bytes(b"x")
    report = purge(app, NOW)
    assert (report.documents_purged, report.failures, report.blobs_deleted) == (1, 1, 0)
    row = load(app, Document, doc.id)
    assert row.wrapped_key is None and row.blob_name == doc.blob_name  # shredded, file pending
    assert load(app, VerificationCase, row.case_id).documents_purged_at is None

    (path / "in-the-way").unlink()
    path.rmdir()
    path.write_bytes(content)
    again = purge(app, NOW)
    assert (again.blobs_deleted, again.unfinished_completed, again.failures) == (1, 1, 0)
    assert load(app, Document, doc.id).blob_name is None
    assert not blob_path(uploads, doc.blob_name).exists()
