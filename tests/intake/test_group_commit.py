"""SQLite's group commit: cleared orders sent at once share a transaction, and each still
gets its own answer (verifier.intake.group_commit)."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from tests.factories import order_payload
from verifier.core.audit_chain import verify_chain
from verifier.core.policies import create_policy_version
from verifier.db import READS_ONLY, get_engine, make_engine, new_session
from verifier.intake.orders import cleared_write, decide_order
from verifier.intake.payload import parse_order
from verifier.models import AuditChainHead, Order


@pytest.fixture
def group_commit(app):
    found = app.extensions["verifier.group_commit"]
    if found is None:
        pytest.skip("SQLite's write lock (PostgreSQL writes each order in its own transaction)")
    return found


@pytest.fixture
def cleared(db_session):
    create_policy_version(db_session, changes={"rate_bp": 0}, reason="test",
                          actor_label="test", actor_id=None, now=datetime.now(UTC))  # fmt: skip
    db_session.commit()


class WriteLockHeld:
    """SQLite's write lock held by another connection until `release()`."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.raw = self.engine.raw_connection()
        self.raw.driver_connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.raw.driver_connection.execute("ROLLBACK")
        self.raw.close()
        self.engine.dispose()


def _wait_until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _write_transactions(app) -> list[int]:
    """A counter of transactions that may write, begun on the app's engine from now on."""
    begun: list[int] = []

    def note(conn):
        if not conn.get_execution_options().get(READS_ONLY):
            begun.append(1)

    event.listen(get_engine(app), "begin", note)
    return begun


def _start_behind_a_leader(group_commit, target, args) -> list[threading.Thread]:
    """Start target(args[0]), wait until it leads a batch of its own (waiting for the lock),
    then start the rest and wait until they all queue behind it."""
    threads = [threading.Thread(target=target, args=(a,)) for a in args]
    threads[0].start()
    _wait_until(lambda: group_commit.queued() == 0)
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: group_commit.queued() == len(args) - 1)
    return threads


def _post_all(app, auth, group_commit, payloads, answers):
    def send(payload):
        answers.append(app.test_client().post("/api/v1/orders", json=payload, headers=auth))

    return _start_behind_a_leader(group_commit, send, payloads)


def test_orders_sent_at_once_share_one_transaction(app, client, auth, db_session, cleared,
                                                  group_commit):  # fmt: skip
    client.post("/api/v1/orders", json=order_payload(external_id="G-0"), headers=auth)  # warm
    begun = _write_transactions(app)
    lock = WriteLockHeld(app.config["DATABASE_URL"])
    answers: list = []
    payloads = [order_payload(external_id=f"G-{n}") for n in range(1, 7)]
    try:
        # The first order's leader waits for the lock with its own order; the rest queue.
        threads = _post_all(app, auth, group_commit, payloads, answers)
    finally:
        lock.release()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201] * 6
    ids = sorted(a.get_json()["external_id"] for a in answers)
    assert ids == [f"G-{n}" for n in range(1, 7)]
    assert len(begun) == 2  # one for the leader's order, one for the five behind it
    db_session.expire_all()
    stored = db_session.scalar(select(func.count()).select_from(Order))
    assert stored == 7
    report = verify_chain(db_session)
    assert report.ok, report.lines()
    head = db_session.get(AuditChainHead, 1)
    assert (head.seq, head.hash) == (report.last_seq, report.last_hash)


def test_a_resend_in_the_same_batch_answers_from_the_stored_order(
    app, client, auth, db_session, cleared, group_commit
):
    client.post("/api/v1/orders", json=order_payload(external_id="S-0"), headers=auth)  # warm
    lock = WriteLockHeld(app.config["DATABASE_URL"])
    answers: list = []
    same = order_payload(external_id="S-1")
    try:
        threads = _post_all(app, auth, group_commit, [same] * 4, answers)
    finally:
        lock.release()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    draws = {a.get_json()["decision"]["draw"] for a in answers}
    assert len(draws) == 1  # every answer is the stored order's one decision
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).where(Order.external_id == "S-1")) == 1


def test_an_order_that_fails_fails_alone(app, db_session, cleared, group_commit):
    """A batch that fails on one order's constraint is written again order by order."""
    now = datetime.now(UTC)
    session = new_session(app)
    head = db_session.execute(select(AuditChainHead.seq, AuditChainHead.hash)).one()
    db_session.commit()  # ends the read: it would hide what the batch writes
    writes = {}
    for name in ("F-1", "F-2", "F-3", "F-4"):
        data = parse_order(order_payload(external_id=name), now)
        decided = decide_order(session, data, rng=random.Random(1), now=now)
        if name == "F-2":  # a decision pointing at no policy breaks a foreign key
            decided = dataclasses.replace(
                decided, policy=dataclasses.replace(decided.policy, id=999_999)
            )
        writes[name] = cleared_write(data, decided, source="api", now=now, actor_id=None)
    session.close()
    results: dict[str, object] = {}

    def write(name):
        try:
            results[name] = group_commit.write(writes[name], tuple(head))
        except IntegrityError as exc:
            results[name] = exc

    lock = WriteLockHeld(app.config["DATABASE_URL"])
    try:
        threads = _start_behind_a_leader(group_commit, write, ["F-1", "F-2", "F-3", "F-4"])
    finally:
        lock.release()
    for thread in threads:
        thread.join()
    assert isinstance(results["F-2"], IntegrityError)
    assert all(isinstance(results[name], int) for name in ("F-1", "F-3", "F-4"))
    stored = db_session.scalars(select(Order.external_id).where(Order.external_id.like("F-%")))
    assert sorted(stored) == ["F-1", "F-3", "F-4"]
    report = verify_chain(db_session)
    assert report.ok, report.lines()
