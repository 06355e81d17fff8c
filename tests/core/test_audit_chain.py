"""The hash-chained audit log: linking at commit, concurrent writers, the PostgreSQL trigger,
`verifier audit verify` naming every edit, insertion and deletion, export, the backfill."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from verifier.core.audit import record_event
from verifier.core.audit_chain import GENESIS, event_hash, verify_chain
from verifier.core.audit_export import describe_details, details_line
from verifier.db import get_engine, make_engine, migrate, new_session
from verifier.models import AuditChainHead, AuditEvent

DAY = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def write_events(app, count: int, *, action: str = "test.event", at=DAY) -> None:
    with new_session(app) as session:
        for n in range(count):
            record_event(session, action, actor_type="system", target_type="case",
                         target_id=n, details={"n": n, "tags": ["a", "b"]}, now=at)  # fmt: skip
        session.commit()


def tamper(app, sql: str, **params) -> None:
    """Change the table behind the application's back (on PostgreSQL, as the table's owner
    with the trigger switched off for the moment: what an attacker with that power can do)."""
    engine = get_engine(app)
    with engine.begin() as conn:
        pg = engine.dialect.name == "postgresql"
        if pg:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text(sql), params)
        if pg:
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def ids(app) -> list[int]:
    with new_session(app) as session:
        return list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.seq)))


def test_events_are_linked_in_commit_order_and_verify(app):
    write_events(app, 3)
    with new_session(app) as session:
        record_event(session, "one.more", actor_type="cli", actor_id="cli")
        session.flush()  # linked at commit even when flushed before
        record_event(session, "and.another", actor_type="cli")
        session.commit()
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert rows[0].prev_hash == GENESIS
        for before, after in itertools.pairwise(rows):
            assert after.prev_hash == before.hash
        for row in rows:
            assert row.hash == event_hash(row, row.seq, row.prev_hash)
        head = session.get(AuditChainHead, 1)
        assert (head.seq, head.hash) == (5, rows[-1].hash)
        report = verify_chain(session)
    assert report.ok and report.events == 5
    assert report.lines()[0].startswith("Audit chain intact: 5 events")


def test_a_rolled_back_event_takes_no_place_in_the_chain(app):
    with new_session(app) as session:
        record_event(session, "never.kept", actor_type="system")
        session.flush()
        session.rollback()
        record_event(session, "kept", actor_type="system")
        session.commit()
        assert session.scalars(select(AuditEvent.seq)).all() == [1]
        assert verify_chain(session).ok


def test_concurrent_writers_never_fork_the_chain(app):
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with new_session(app) as session:
                    record_event(session, "race", actor_type="system", details={"w": n, "i": i})
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with new_session(app) as session:
        assert sorted(session.scalars(select(AuditEvent.seq))) == list(range(1, 61))
        report = verify_chain(session)
    assert report.ok, report.lines()


@pytest.mark.parametrize(
    ("change", "kind", "named"),
    [
        ("UPDATE audit_events SET details = '{\"n\": 99}' WHERE id = :mid", "edited", "mid"),
        ("UPDATE audit_events SET actor_id = 'someone' WHERE id = :mid", "edited", "mid"),
        ("UPDATE audit_events SET at = :later WHERE id = :mid", "edited", "mid"),
        ("DELETE FROM audit_events WHERE id = :mid", "deleted", "next"),
        ("DELETE FROM audit_events WHERE id = :last", "deleted", None),
        ("INSERT INTO audit_events (at, actor_type, action, details) "
         "VALUES (:later, 'staff', 'forged.event', '{}')", "inserted", None),
    ],
)  # fmt: skip
def test_verify_names_each_edited_deleted_or_inserted_event(app, runner, change, kind, named):
    write_events(app, 5)
    order = ids(app)
    mid, nxt, last = order[2], order[3], order[-1]
    tamper(app, change, mid=mid, last=last, later=(DAY + timedelta(hours=1)).replace(tzinfo=None))
    with new_session(app) as session:
        report = verify_chain(session)
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert kind in kinds, report.lines()
    if named == "mid":
        assert any(p.event_id == mid and p.kind == "edited" for p in report.problems)
    if named == "next":
        assert any(p.event_id == nxt and p.seq == 4 for p in report.problems)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "Audit chain BROKEN" in result.output
    if named == "mid":
        assert f"event #{mid} (seq 3" in result.output
    if kind == "inserted":
        assert "forged.event" in result.output
    if change.startswith("DELETE") and named is None:
        assert "seq 5..5, are missing" in result.output


def test_an_edit_with_a_recomputed_hash_still_breaks_the_next_link(app):
    write_events(app, 4)
    with new_session(app) as session:
        row = session.scalar(select(AuditEvent).where(AuditEvent.seq == 2))
        row_id, at = row.id, row.at
        row.details = {"n": 1000}
        forged = event_hash(row, 2, row.prev_hash)
        session.rollback()
    tamper(app, "UPDATE audit_events SET details = '{\"n\": 1000}', hash = :h WHERE id = :id",
           h=forged, id=row_id)  # fmt: skip
    with new_session(app) as session:
        report = verify_chain(session)
    assert [p.kind for p in report.problems] == ["relinked"]
    assert report.problems[0].seq == 3 and f"#{row_id}" in report.problems[0].message
    assert at is not None


def test_a_rewritten_tail_is_caught_by_an_anchor(app, runner):
    write_events(app, 3)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    with new_session(app) as session:
        head = session.get(AuditChainHead, 1)
        anchor = f"{head.seq}:{head.hash}"
    # Cut the last event off and the head with it: only the anchor can tell.
    tamper(app, "DELETE FROM audit_events WHERE seq = 3")
    tamper(app, "UPDATE audit_chain_head SET seq = 2, hash = "
                "(SELECT hash FROM audit_events WHERE seq = 2)")  # fmt: skip
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    result = runner.invoke(args=["audit", "verify", "--anchor", anchor])
    assert result.exit_code == 1 and "cut short" in result.output
    assert runner.invoke(args=["audit", "verify", "--anchor", "x"]).exit_code == 2


def test_postgresql_refuses_update_and_delete_of_audit_events(app):
    engine = get_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    write_events(app, 2)
    for sql in ("UPDATE audit_events SET action = 'x' WHERE seq = 1",
                "UPDATE audit_events SET hash = NULL, seq = NULL WHERE seq = 2",
                "DELETE FROM audit_events WHERE seq = 1"):  # fmt: skip
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with new_session(app) as session:
        assert verify_chain(session).ok


def test_export_cli_writes_a_date_range_as_csv_and_json_lines(app, runner, tmp_path):
    write_events(app, 2, at=DAY)
    write_events(app, 3, action="next.day", at=DAY + timedelta(days=1))
    out = tmp_path / "audit.csv"
    result = runner.invoke(args=["audit", "export", "--since", "2026-11-21", "--until",
                                 "2026-11-21", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["action"] for r in rows] == ["next.day"] * 3
    assert json.loads(rows[0]["details"]) == {"n": 0, "tags": ["a", "b"]}
    result = runner.invoke(args=["audit", "export", "--format", "jsonl"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines[:5]] == [1, 2, 3, 4, 5]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert runner.invoke(args=["audit", "export", "--since", "soon"]).exit_code == 2


def test_details_read_as_labelled_text():
    details = {"documents_erased": 2, "orders": ["R-1", "R-2"], "ip": "10.0.0.1",
               "changes": {"rate_bp": [500, 1000]}, "dry_run": False, "reason": None}  # fmt: skip
    assert describe_details(details) == [
        ("Changes > Rate (basis points)", "500, 1000"),
        ("Documents erased", "2"),
        ("Dry run", "no"),
        ("IP", "10.0.0.1"),
        ("Orders", "R-1, R-2"),
        ("Reason", "—"),
    ]
    assert details_line({"to": "approved"}) == "To: approved"
    assert "{" not in details_line(details)


def _schema_url(base: str) -> tuple[str, object]:
    """A fresh database for a migration test: a SQLite file, or a new PostgreSQL schema."""
    if base.startswith("sqlite"):
        return base, None
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), (admin, schema)


def test_the_migration_links_the_events_already_there(tmp_path):
    pg = os.environ.get("VERIFIER_TEST_DATABASE_URL", "").strip()
    url, cleanup = _schema_url(pg or f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate(url, "0003")
        engine = make_engine(url)
        with engine.begin() as conn:
            for n in range(5):
                conn.execute(
                    text("INSERT INTO audit_events (at, actor_type, action, details) "
                         "VALUES (:at, 'system', 'old.event', :d)"),
                    {"at": (DAY + timedelta(minutes=n)).replace(tzinfo=None),
                     "d": json.dumps({"n": n, "é": "ü"})},
                )  # fmt: skip
        migrate(url)
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            assert session.scalars(select(AuditEvent.seq).order_by(AuditEvent.id)).all() == [
                1, 2, 3, 4, 5,
            ]  # fmt: skip
            assert verify_chain(session).ok
            record_event(session, "after.migration", actor_type="system")
            session.commit()
            report = verify_chain(session)
            assert report.ok and report.last_seq == 6
        engine.dispose()
    finally:
        if cleanup is not None:
            admin, schema = cleanup
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
