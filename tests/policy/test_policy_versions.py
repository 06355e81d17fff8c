"""Policy versions: concurrent edits, merged edits, readable diffs, history, orders keep theirs."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.factories import order_payload
from verifier.core.policies import create_policy_version, current_policy
from verifier.db import new_session
from verifier.errors import ConflictError, ValidationError
from verifier.models import SamplingPolicy
from verifier.policy.changes import (
    describe,
    diff_values,
    edit_policy,
    parse_money,
    policy_history,
    policy_values,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _in_threads(app, work, count):
    """Run `work(session, i)` in `count` threads at once, each with its own session."""
    barrier = threading.Barrier(count)
    errors = []

    def run(i):
        session = new_session(app)
        try:
            barrier.wait()
            work(session, i)
            session.commit()
        except Exception as exc:  # the test reports every failure below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_concurrent_edits_do_not_lose_a_version(app, db_session):
    current_policy(db_session)
    db_session.commit()

    def work(session, i):
        create_policy_version(session, changes={"rate_bp": 100 + i}, reason=f"edit {i}",
                              actor_label=f"admin{i}", actor_id=None, now=NOW)  # fmt: skip

    _in_threads(app, work, 6)

    rows = db_session.scalars(select(SamplingPolicy).order_by(SamplingPolicy.version)).all()
    assert [p.version for p in rows] == list(range(1, 8))
    assert sorted(p.reason for p in rows[1:]) == [f"edit {i}" for i in range(6)]
    assert sorted(p.rate_bp for p in rows[1:]) == [100 + i for i in range(6)]


def test_concurrent_edits_of_different_settings_all_survive(app, db_session):
    current_policy(db_session)
    db_session.commit()
    edits = [{"rate_bp": 750}, {"lease_minutes": 20}, {"link_lifetime_days": 14},
             {"four_eyes_rejections": True}]  # fmt: skip

    def work(session, i):
        base = policy_values(current_policy(session)) | edits[i]
        edit_policy(session, base_version=1, proposed=base, reason=f"edit {i}",
                    actor_label="admin", actor_id=None, now=NOW)  # fmt: skip

    _in_threads(app, work, len(edits))

    newest = policy_values(current_policy(db_session))
    assert current_policy(db_session).version == 5
    for edit in edits:
        assert newest.items() >= edit.items()


def _values(db_session, **changes):
    return policy_values(current_policy(db_session)) | changes


def test_edit_that_changes_nothing_saves_nothing(db_session):
    saved = edit_policy(db_session, base_version=1, proposed=_values(db_session), reason="same",
                        actor_label="admin", actor_id=None, now=NOW)  # fmt: skip
    assert saved is None
    assert current_policy(db_session).version == 1


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_edit_needs_a_reason(db_session, reason):
    with pytest.raises(ValidationError) as caught:
        edit_policy(db_session, base_version=1, proposed=_values(db_session, rate_bp=1),
                    reason=reason, actor_label="admin", actor_id=None, now=NOW)  # fmt: skip
    assert "reason" in caught.value.fields


def test_edit_from_an_old_version_keeps_the_other_change_or_refuses_a_clash(db_session):
    stale = _values(db_session)  # what an admin's form showed at version 1
    edit_policy(db_session, base_version=1, proposed=stale | {"rate_bp": 900}, reason="theirs",
                actor_label="a", actor_id=None, now=NOW)  # fmt: skip

    with pytest.raises(ConflictError, match="random sampling rate"):
        edit_policy(db_session, base_version=1, proposed=stale | {"rate_bp": 100}, reason="mine",
                    actor_label="b", actor_id=None, now=NOW)  # fmt: skip

    saved = edit_policy(db_session, base_version=1, proposed=stale | {"lease_minutes": 30},
                        reason="mine", actor_label="b", actor_id=None, now=NOW)  # fmt: skip
    assert (saved.version, saved.rate_bp, saved.settings["lease_minutes"]) == (3, 900, 30)


def test_diff_reads_like_the_settings_page():
    old = {"rate_bp": 500, "amount_threshold_minor": None, "anonymise_after_days": None,
           "four_eyes_rejections": False, "reminder_before_hours": 48}  # fmt: skip
    new = {"rate_bp": 750, "amount_threshold_minor": 100_000, "anonymise_after_days": 90,
           "four_eyes_rejections": True, "reminder_before_hours": 0}  # fmt: skip
    changes = {c.field: (c.label, c.old, c.new) for c in diff_values(old, new)}
    assert changes == {
        "rate_bp": ("Random sampling rate", "5 %", "7.5 %"),
        "amount_threshold_minor": ("Amount rule", "off", "orders of 1,000.00 or more"),
        "anonymise_after_days": ("Anonymise customer details", "never", "after 90 days"),
        "four_eyes_rejections": ("Four-eyes rejections", "off", "on"),
        "reminder_before_hours": ("Reminder", "48 hours before the link expires", "no reminder"),
    }
    assert describe("link_lifetime_days", 1) == "1 day"


@pytest.mark.parametrize(
    ("text", "minor"), [("1000", 100_000), ("1,250.50", 125_050), (" 0.5 ", 50)]
)
def test_parse_money(text, minor):
    assert parse_money(text) == minor


@pytest.mark.parametrize("text", ["", "abc", "1.234", "1e3", "NaN", "-5", "1,2,3", "12,34"])
def test_parse_money_refuses(text):
    with pytest.raises(ValueError):
        parse_money(text)


def test_history_lists_versions_newest_first_with_their_changes(db_session):
    for i, rate in enumerate((600, 700, 700)):
        create_policy_version(db_session, changes={"rate_bp": rate}, reason=f"r{i}",
                              actor_label="admin@example.test", actor_id=None,
                              now=NOW + timedelta(minutes=i))  # fmt: skip
    page1 = policy_history(db_session, page=1, per_page=2)
    assert [e.policy.version for e in page1] == [4, 3]
    assert page1[0].changes == ()  # saved with the same rate: nothing to show
    assert [(c.old, c.new) for c in page1[1].changes] == [("6 %", "7 %")]
    page2 = policy_history(db_session, page=2, per_page=2)
    assert [e.policy.version for e in page2] == [2, 1]
    assert [(c.old, c.new) for c in page2[0].changes] == [("5 %", "6 %")]
    assert page2[1].changes == ()


def test_an_order_keeps_the_version_that_sampled_it(app, client, auth, runner, db_session):
    first = client.post("/api/v1/orders", json=order_payload(external_id="V-1"), headers=auth)
    assert first.get_json()["decision"]["policy_version"] == 1
    result = runner.invoke(args=["set-rate", "50", "--reason", "more checks"])
    assert result.exit_code == 0, result.output

    again = client.get("/api/v1/orders/V-1", headers=auth).get_json()
    assert again["decision"]["policy_version"] == 1
    assert again["decision"]["rate_percent"] == "5"
    second = client.post("/api/v1/orders", json=order_payload(external_id="V-2"), headers=auth)
    assert second.get_json()["decision"]["policy_version"] == 2
    assert second.get_json()["decision"]["rate_percent"] == "50"
    entry = policy_history(db_session)[0]
    assert (entry.policy.created_by_label, entry.policy.reason) == ("cli", "more checks")
