"""The purge's write lane on SQLite: a writer waiting for the write lock gets it between two
of the purge's batches instead of waiting for the whole purge."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.retention_helpers import DAY, NOW, add_document, factory, keyring_of, make_case
from verifier.core.settings import Settings
from verifier.db import _begin_immediate, make_engine
from verifier.models import Document
from verifier.retention.purge import LANE_MIN_S, purge_due_documents


@pytest.fixture
def sqlite_only(app):
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("SQLite's write lock")


def test_begin_immediate_says_whether_it_had_to_wait(app, sqlite_only, tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    holder, waiter = engine.raw_connection(), engine.raw_connection()
    try:
        assert _begin_immediate(holder.driver_connection) is False
        releaser = threading.Timer(0.05, holder.driver_connection.execute, ("COMMIT",))
        releaser.start()
        began = time.monotonic()
        assert _begin_immediate(waiter.driver_connection) is True
        assert time.monotonic() - began >= 0.04
        waiter.driver_connection.execute("COMMIT")
        releaser.join()
    finally:
        holder.close()
        waiter.close()
        engine.dispose()


def test_a_waiting_writer_gets_the_lock_between_two_batches(app, db_session, sqlite_only):
    uploads = Path(app.config["UPLOADS_DIR"])
    case = make_case(db_session, "L-1", "approved", decided_at=NOW - 31 * DAY,
                     updated_at=NOW - 31 * DAY)  # fmt: skip
    for i, kind in enumerate(("card_front", "card_back", "photo_id")):
        add_document(db_session, uploads, keyring_of(app), case, kind, seed=i)
    db_session.commit()
    writer_engine = make_engine(app.config["DATABASE_URL"])
    wrote = threading.Event()
    claims: list[bool] = []

    def writer() -> None:
        # Starts while the purge holds the lock (its first claim) and retries in 2 ms steps.
        with writer_engine.begin() as conn:
            conn.execute(text("UPDATE verification_cases SET decision_note = 'w' WHERE id = :id"),
                         {"id": case.id})  # fmt: skip
        wrote.set()

    thread = threading.Thread(target=writer)

    def fault(step: str) -> None:
        if step != "claim":
            return
        claims.append(wrote.is_set())
        if len(claims) == 1:
            thread.start()
            time.sleep(0.05)  # the writer is waiting now, at its longest step between tries

    try:
        report = purge_due_documents(factory(app), uploads, NOW, Settings(), batch=1,
                                     _fault=fault)  # fmt: skip
        thread.join(timeout=10)
    finally:
        writer_engine.dispose()
    assert report.documents_purged == 3
    # The first claim ran before the writer started; by the second the writer had its turn.
    assert claims[0] is False and all(claims[1:]) and len(claims) == 3
    with factory(app)() as session:
        assert session.scalar(select(Document.status).limit(1)) == "purged"
        assert session.execute(text("SELECT decision_note FROM verification_cases")).scalar() == "w"
    assert LANE_MIN_S > 0.002  # longer than a waiting writer's longest sleep (verifier.db)
