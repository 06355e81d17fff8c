"""The settings preview: the review load of new settings, replayed on the last 30 days."""

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.stats_helpers import NOW, add_order, hours
from verifier.core.policies import create_policy_version, current_policy
from verifier.core.settings import Settings
from verifier.models import APPROVED, REJECTED, AuditEvent, StaffUser
from verifier.policy.changes import policy_values
from verifier.policy.preview import DEFAULT_REVIEW_MINUTES, measured_review_minutes, preview_policy

DEFAULTS = {"rate_bp": 500, "amount_threshold_minor": None, "rule_country_mismatch": False,
            "rule_name_mismatch": False} | asdict(Settings())  # fmt: skip


def _seed_thirty_days(session) -> None:
    """86 orders in the window, 5 before it; counts chosen so that no order matches two rules."""
    for i in range(60):
        add_order(session, at=NOW - timedelta(days=29.5) + timedelta(hours=11 * i))
    for i in range(12):
        add_order(session, at=NOW - timedelta(days=i + 1), amount_minor=150_000)
    for i in range(6):
        add_order(session, at=NOW - timedelta(days=i + 2), billing="GB", shipping="FR")
    for i in range(4):
        add_order(session, at=NOW - timedelta(days=i + 3), cardholder_name="Bob Stone")
    # A repeat customer: approved on day -24, then three more orders.
    rita = {"email": "rita@example.com", "last4": "1111"}
    add_order(session, at=NOW - timedelta(days=25), reason="random", draw=12, status=APPROVED,
              decided_at=NOW - timedelta(days=24), **rita)  # fmt: skip
    for days_ago in (20, 10, 5):
        add_order(session, at=NOW - timedelta(days=days_ago), **rita)
    # Same email, other card: not the same customer for the exemption.
    add_order(session, at=NOW - timedelta(days=4), email="rita@example.com", last4="2222")
    for i in range(5):
        add_order(session, at=NOW - timedelta(days=31 + i), amount_minor=150_000)
    session.commit()


def test_preview_counts_on_seeded_orders(db_session):
    _seed_thirty_days(db_session)
    proposed = DEFAULTS | {
        "rate_bp": 1_000,
        "amount_threshold_minor": 100_000,
        "rule_country_mismatch": True,
        "repeat_exemption_days": 30,
    }

    preview = preview_policy(db_session, current=DEFAULTS, proposed=proposed, now=NOW)

    assert preview.orders == 87
    assert preview.days == 30
    # Now: no rules, no exemption, 5 % of all 87 orders.
    assert preview.current.rule_forced == 0
    assert preview.current.repeat_exempt == 0
    assert preview.current.random_expected == pytest.approx(87 * 0.05)
    # Proposed: 12 large + 6 mismatched countries forced; Rita's 3 later orders exempt;
    # the other 66 drawn at 10 %. The name rule stays off, so its 4 orders are candidates.
    assert preview.proposed.rule_forced == 18
    assert preview.proposed.repeat_exempt == 3
    assert preview.proposed.random_expected == pytest.approx(6.6)
    assert preview.proposed.rule_per_day == pytest.approx(18 / 30)
    assert preview.proposed.random_per_day == pytest.approx(6.6 / 30)
    assert preview.proposed.per_day == pytest.approx(24.6 / 30)
    # No decision was ever timed: the stated default applies.
    assert not preview.review_time.measured
    assert preview.review_time.minutes == DEFAULT_REVIEW_MINUTES
    assert preview.proposed.reviewer_hours_per_day == pytest.approx(24.6 / 30 * 3 / 60)


def test_preview_with_the_name_rule_and_a_short_exemption(db_session):
    _seed_thirty_days(db_session)
    proposed = DEFAULTS | {"rate_bp": 0, "rule_name_mismatch": True, "repeat_exemption_days": 7}
    preview = preview_policy(db_session, current=DEFAULTS, proposed=proposed, now=NOW)
    assert preview.proposed.rule_forced == 4
    # The approval of day -24 spares only the order of day -20; days -10 and -5 are too late.
    assert preview.proposed.repeat_exempt == 1
    assert preview.proposed.random_expected == 0


def test_measured_review_time_is_the_median_from_claim_to_decision(db_session):
    staff = StaffUser(email="r@example.test", role="reviewer", password_hash="x")
    db_session.add(staff)
    db_session.flush()
    for minutes in (4, 6, 10):
        decided = NOW - timedelta(days=2, minutes=minutes)
        order = add_order(db_session, at=NOW - timedelta(days=3), reason="random", draw=1,
                          status=APPROVED if minutes != 10 else REJECTED,
                          decided_at=decided, decided_by_id=staff.id)  # fmt: skip
        case_id = order.case.id
        # An older claim by the same reviewer, then the claim that led to the decision.
        for claimed in (decided - hours(5), decided - timedelta(minutes=minutes)):
            db_session.add(AuditEvent(action="case.claimed", actor_type="staff",
                                      actor_id=str(staff.id), target_type="case",
                                      target_id=str(case_id), at=claimed, details={}))  # fmt: skip
    # A claim by someone else does not time this reviewer's decision.
    order = add_order(db_session, at=NOW - timedelta(days=3), reason="random", draw=1,
                      status=APPROVED, decided_at=NOW - hours(30),
                      decided_by_id=staff.id)  # fmt: skip
    db_session.add(AuditEvent(action="case.claimed", actor_type="staff", actor_id="999",
                              target_type="case", target_id=str(order.case.id),
                              at=NOW - hours(31), details={}))  # fmt: skip
    db_session.commit()

    measured = measured_review_minutes(db_session, start=NOW - timedelta(days=30), end=NOW)

    assert measured.measured
    assert measured.cases == 3
    assert measured.minutes == pytest.approx(6)


def test_the_preview_counts_the_rules_in_force_on_both_sides(db_session):
    now = datetime.now(UTC)
    rules = [
        {
            "name": "Everyone",
            "action": "review",
            "conditions": [{"type": "email_domain", "op": "in", "values": ["example.com"]}],
        }
    ]
    create_policy_version(db_session, changes={"rules": rules}, reason="t", actor_label="t",
                          actor_id=None, now=now)  # fmt: skip
    for n in range(3):
        add_order(db_session, at=now - timedelta(days=1, minutes=n))
    db_session.commit()
    current = policy_values(current_policy(db_session))
    proposed = {k: v for k, v in current.items() if k not in ("rules", "currency_rates")}
    preview = preview_policy(db_session, current=current, proposed=proposed | {"rate_bp": 0},
                             now=now)  # fmt: skip
    assert preview.current.rule_forced == preview.proposed.rule_forced == 3
