"""What one order costs the database, and that caching the policy never serves a stale one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, select

from tests.factories import order_payload
from verifier.core.policies import create_policy_version
from verifier.db import get_engine
from verifier.models import Order

MAX_STATEMENTS_NEW_ORDER = 6


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


def test_a_new_cleared_order_costs_at_most_six_statements(app, client, auth, db_session):
    _set_rate(db_session, 0)
    warm = client.post("/api/v1/orders", json=order_payload(external_id="W-1"), headers=auth)
    assert warm.status_code == 201  # the key's use (once a minute) and the policy are read

    statements = _statements(app, lambda: client.post(
        "/api/v1/orders", json=order_payload(external_id="W-2"), headers=auth
    ))  # fmt: skip
    # The order, its decision, its audit event; the event is linked into the audit chain by
    # advancing the chain head (UPDATE ... RETURNING) and storing the new head hash.
    assert statements == ["SELECT", "INSERT", "UPDATE", "UPDATE", "INSERT", "INSERT"]
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
