"""What one order costs the database, and that caching the policy never serves a stale one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import event, select

from tests.factories import order_payload
from verifier.core.audit import record_event
from verifier.core.audit_chain import verify_chain
from verifier.core.policies import create_policy_version
from verifier.db import get_engine
from verifier.intake.apikeys import revoke_api_key
from verifier.models import AuditChainHead, AuditEvent, Order

MAX_STATEMENTS_NEW_ORDER = 4


def _set_rate(db_session, rate_bp: int) -> None:
    create_policy_version(db_session, changes={"rate_bp": rate_bp}, reason="test",
                          actor_label="test", actor_id=None, now=datetime.now(UTC))  # fmt: skip
    db_session.commit()


def _statements(app, send) -> list[str]:
    """The SQL statements `send()` makes, transaction control (BEGIN, COMMIT) left out."""
    seen: list[str] = []

    def note(conn, cursor, statement, *args):
        seen.append(statement.split(None, 1)[0].upper())

    engine = get_engine(app)
    event.listen(engine, "before_cursor_execute", note)
    try:
        send()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return [s for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_a_new_cleared_order_costs_at_most_four_statements(app, client, auth, db_session):
    _set_rate(db_session, 0)
    warm = client.post("/api/v1/orders", json=order_payload(external_id="W-1"), headers=auth)
    assert warm.status_code == 201  # the key's use (once a minute) and the policy are read

    statements = _statements(app, lambda: client.post(
        "/api/v1/orders", json=order_payload(external_id="W-2"), headers=auth
    ))  # fmt: skip
    # The key, the policy version and the audit chain's head in one SELECT; then the order,
    # its decision and its audit event, which carries its chain position and hash (the head
    # row follows it by trigger).
    assert statements == ["SELECT", "INSERT", "INSERT", "INSERT"]
    assert len(statements) <= MAX_STATEMENTS_NEW_ORDER
    assert db_session.scalar(select(Order.external_id).where(Order.external_id == "W-2"))


def test_the_answer_is_built_from_what_was_written_without_loading(app, client, auth, db_session):
    _set_rate(db_session, 0)
    client.post("/api/v1/orders", json=order_payload(external_id="W-1"), headers=auth)
    answers = []
    statements = _statements(app, lambda: answers.append(client.post(
        "/api/v1/orders", json=order_payload(external_id="W-3"), headers=auth
    )))  # fmt: skip
    body = answers[0].get_json()
    assert body["decision"]["policy_version"] == 2 and body["case"] is None
    assert statements.count("SELECT") == 1  # the key and the newest policy version, together


def test_a_policy_change_takes_effect_for_the_very_next_order(app, client, auth, db_session):
    _set_rate(db_session, 0)
    first = client.post("/api/v1/orders", json=order_payload(external_id="P-1"), headers=auth)
    assert first.get_json()["decision"]["flagged"] is False  # the cache now holds 0 %
    _set_rate(db_session, 10_000)  # another process, say, raises the rate to 100 %
    second = client.post("/api/v1/orders", json=order_payload(external_id="P-2"), headers=auth)
    decision = second.get_json()["decision"]
    assert decision["flagged"] is True and decision["rate_percent"] == "100"
    assert decision["policy_version"] == first.get_json()["decision"]["policy_version"] + 1
    _set_rate(db_session, 0)
    third = client.post("/api/v1/orders", json=order_payload(external_id="P-3"), headers=auth)
    assert third.get_json()["decision"]["flagged"] is False


def test_a_resend_and_a_clash_still_answer_as_before(app, client, auth, db_session):
    payload = order_payload(external_id="R-1")
    assert client.post("/api/v1/orders", json=payload, headers=auth).status_code == 201
    again = client.post("/api/v1/orders", json=payload, headers=auth)
    assert again.status_code == 200
    changed = client.post("/api/v1/orders", json={**payload, "currency": "USD"}, headers=auth)
    assert changed.status_code == 409


def test_a_revoked_key_is_refused_on_the_very_next_order(app, client, auth, db_session):
    assert client.post("/api/v1/orders", json=order_payload(external_id="K-1"),
                       headers=auth).status_code == 201  # fmt: skip
    assert client.post("/api/v1/orders", json=order_payload(external_id="K-2"),
                       headers=auth).status_code == 201  # fmt: skip
    revoke_api_key(db_session, "test shop", datetime.now(UTC))
    db_session.commit()
    refused = client.post("/api/v1/orders", json=order_payload(external_id="K-3"), headers=auth)
    assert refused.status_code == 401
    assert db_session.scalar(select(Order.id).where(Order.external_id == "K-3")) is None


def test_orders_on_the_fast_path_keep_the_audit_chain_intact(app, client, auth, db_session):
    _set_rate(db_session, 0)
    for n in range(5):
        payload = order_payload(external_id=f"C-{n}")
        assert client.post("/api/v1/orders", json=payload, headers=auth).status_code == 201
    # Interleave an event linked through the session (the ORM path) with fast-path ones.
    record_event(db_session, "test.between", actor_type="system")
    db_session.commit()
    _set_rate(db_session, 10_000)  # a flagged order takes the ORM path and opens a case
    assert client.post("/api/v1/orders", json=order_payload(external_id="C-F"),
                       headers=auth).status_code == 201  # fmt: skip
    _set_rate(db_session, 0)
    assert client.post("/api/v1/orders", json=order_payload(external_id="C-9"),
                       headers=auth).status_code == 201  # fmt: skip
    db_session.expire_all()
    report = verify_chain(db_session)
    assert report.ok, report.lines()
    head = db_session.get(AuditChainHead, 1)
    assert (head.seq, head.hash) == (report.last_seq, report.last_hash)
    received = db_session.scalars(
        select(AuditEvent.target_id).where(AuditEvent.action == "order.received")
        .order_by(AuditEvent.seq)
    ).all()  # fmt: skip
    assert received == [f"C-{n}" for n in range(5)] + ["C-F", "C-9"]


def test_concurrent_fast_path_orders_never_fork_the_chain(app, api_key, db_session):
    _set_rate(db_session, 0)
    errors: list[BaseException] = []

    def sender(n: int) -> None:
        try:
            client = app.test_client()
            for i in range(8):
                answer = client.post(
                    "/api/v1/orders",
                    json=order_payload(external_id=f"T-{n}-{i}"),
                    headers={"Authorization": f"Bearer {api_key}"},
                )
                assert answer.status_code == 201, answer.get_json()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db_session.expire_all()
    report = verify_chain(db_session)
    assert report.ok, report.lines()
