"""The `verifier` commands, run through Flask's CLI runner against the test database."""

import csv
import io

from sqlalchemy import func, select

from tests.factories import order_payload
from verifier.intake.csvimport import COLUMNS
from verifier.models import ApiKey, AuditEvent, Order, SamplingPolicy, StaffUser
from verifier.staff.users import verify_password


def test_migrate_is_idempotent(runner):
    assert runner.invoke(args=["migrate"]).exit_code == 0
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0 and "up to date" in result.output


def test_create_user_stores_argon2id_hash(runner, db_session):
    result = runner.invoke(
        args=["create-user", "Rev@Example.com", "--role", "reviewer", "--password-stdin"],
        input="correct horse battery\n",
    )
    assert result.exit_code == 0, result.output
    user = db_session.scalar(select(StaffUser))
    assert user.email == "rev@example.com" and user.role == "reviewer"
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, "correct horse battery")
    assert "correct horse" not in result.output


def test_create_user_refuses_weak_password_duplicate_and_bad_role(runner):
    weak = runner.invoke(args=["create-user", "a@example.com", "--role", "admin",
                               "--password-stdin"], input="short\n")  # fmt: skip
    assert weak.exit_code != 0 and "at least 12 characters" in weak.output
    ok = ["create-user", "a@example.com", "--role", "admin", "--password-stdin"]
    assert runner.invoke(args=ok, input="a long enough password\n").exit_code == 0
    again = runner.invoke(args=ok, input="a long enough password\n")
    assert again.exit_code != 0 and "already exists" in again.output
    bad = runner.invoke(args=["create-user", "b@example.com", "--role", "boss"])
    assert bad.exit_code != 0 and "boss" in bad.output


def test_api_key_is_printed_once_and_works_until_revoked(runner, client, db_session):
    result = runner.invoke(args=["create-api-key", "Main shop"])
    assert result.exit_code == 0
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("vk_")
    row = db_session.scalar(select(ApiKey))
    assert row.key_hash != key and key not in row.key_hash
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/orders", json=order_payload(), headers=headers).status_code == 201
    listing = runner.invoke(args=["list-api-keys"]).output
    assert "Main shop" in listing and key not in listing
    assert runner.invoke(args=["revoke-api-key", "Main shop"]).exit_code == 0
    assert client.get("/api/v1/orders/A-1001", headers=headers).status_code == 401
    missing = runner.invoke(args=["revoke-api-key", "nope"])
    assert missing.exit_code != 0 and "No single active API key" in missing.output


def test_set_rate_writes_a_new_policy_version(runner, db_session):
    result = runner.invoke(args=["set-rate", "12.5", "--reason", "Holiday season"])
    assert result.exit_code == 0, result.output
    assert "12.5 %" in result.output
    rows = db_session.scalars(select(SamplingPolicy).order_by(SamplingPolicy.version)).all()
    assert [(p.version, p.rate_bp) for p in rows] == [(1, 500), (2, 1250)]
    assert rows[1].reason == "Holiday season"
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "policy.changed"))
    assert event.details["reason"] == "Holiday season"


def test_set_rate_refuses_bad_values(runner):
    for value in ("101", "-3", "abc", "1.234"):
        result = runner.invoke(args=["set-rate", value, "--reason", "x"])
        assert result.exit_code != 0 and "rate" in result.output.lower()
    assert runner.invoke(args=["set-rate", "5"]).exit_code != 0  # no reason


def _csv_row(payload: dict) -> dict:
    row = {
        "external_id": payload["external_id"], "placed_at": payload["placed_at"],
        "amount": payload["amount"], "currency": payload["currency"],
        "customer_name": payload["customer"]["name"],
        "customer_email": payload["customer"]["email"],
        "card_brand": payload["card"]["brand"], "card_last4": payload["card"]["last4"],
        "card_holder_name": payload["card"]["holder_name"],
    }  # fmt: skip
    for prefix in ("billing", "shipping"):
        for key, value in payload[f"{prefix}_address"].items():
            row[f"{prefix}_{key}"] = value
    return row


def write_csv(path, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def test_import_orders_reports_each_line(runner, tmp_path, db_session):
    rows = [_csv_row(order_payload(external_id=f"CSV-{i}")) for i in range(5)]
    rows[2]["customer_email"] = "broken"
    rows[3]["billing_country"] = "ZZ"
    rows.append(dict(rows[0]))  # exact duplicate
    conflict = dict(rows[1], amount="1.00")
    rows.append(conflict)
    path = tmp_path / "orders.csv"
    write_csv(path, rows)
    result = runner.invoke(args=["import-orders", str(path)])
    assert result.exit_code == 1
    assert "line 4: customer_email: Must be an email address." in result.output
    assert "line 5: billing_country:" in result.output
    assert "line 8: An order with external_id 'CSV-1' already exists" in result.output
    assert "Imported 3 orders" in result.output
    assert "1 skipped as duplicates, 3 with errors" in result.output
    ids = set(db_session.scalars(select(Order.external_id)))
    assert ids == {"CSV-0", "CSV-1", "CSV-4"}


def test_import_orders_refuses_a_bad_header(runner, tmp_path, db_session):
    path = tmp_path / "bad.csv"
    path.write_text("external_id,amount,card_number\nX,1.00,4111111111111111\n")
    result = runner.invoke(args=["import-orders", str(path)])
    assert result.exit_code != 0
    assert "missing columns" in result.output and "unknown columns: card_number" in result.output
    assert db_session.scalar(select(func.count(Order.id))) == 0


def test_import_orders_imports_a_large_file(runner, tmp_path, db_session):
    rows = [_csv_row(order_payload(external_id=f"BULK-{i}")) for i in range(1200)]
    path = tmp_path / "bulk.csv"
    write_csv(path, rows)
    result = runner.invoke(args=["import-orders", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 1200 orders" in result.output
    assert db_session.scalar(select(func.count(Order.id))) == 1200


def test_demo_seeds_once(runner, client, db_session):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "admin@demo.test" in first.output and "reviewer@demo.test" in first.output
    link = first.output.split("Demo customer upload link: ")[1].split()[0]
    opened = client.get(link[link.index("/u/") :])
    assert opened.status_code == 303
    assert b"Please confirm it" in client.get("/portal/").data
    count = db_session.scalar(select(func.count(Order.id)))
    assert count == 300
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0 and "(0 new orders" in second.output
    assert db_session.scalar(select(func.count(Order.id))) == count
    assert db_session.scalar(select(func.count(StaffUser.id))) == 2


def test_a_lower_rate_says_what_it_does_and_needs_confirming(runner, db_session):
    from verifier.core.policies import current_policy

    current_policy(db_session)
    db_session.commit()
    refused = runner.invoke(args=["set-rate", "1", "--reason", "Quiet month"], input="n\n")
    assert refused.exit_code != 0
    assert "The random sample falls from 5 % to 1 %" in refused.output
    assert (
        db_session.scalar(select(SamplingPolicy).order_by(SamplingPolicy.version.desc())).rate_bp
        == 500
    )
    saved = runner.invoke(args=["set-rate", "1", "--reason", "Quiet month", "--yes"])
    assert saved.exit_code == 0, saved.output
    db_session.rollback()
    assert (
        db_session.scalar(select(SamplingPolicy).order_by(SamplingPolicy.version.desc())).rate_bp
        == 100
    )
