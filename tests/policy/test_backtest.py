"""The backtest: a draft policy replayed over stored orders, their stored draws and outcomes."""

from dataclasses import asdict
from datetime import timedelta

import pytest

from tests.stats_helpers import NOW, add_order
from verifier.core.outcomes import OrderOutcome
from verifier.core.settings import Settings
from verifier.errors import ValidationError
from verifier.models import APPROVED, REJECTED
from verifier.policy.backtest import backtest_policy

DEFAULTS = {"rate_bp": 500, "amount_threshold_minor": None, "rule_country_mismatch": False,
            "rule_name_mismatch": False} | asdict(Settings())  # fmt: skip
DRAFT = DEFAULTS | {"rate_bp": 2_000, "rule_country_mismatch": True}
START, END = NOW - timedelta(days=30), NOW


def _outcome(session, order, outcome):
    session.add(OrderOutcome(order_id=order.id, outcome=outcome, recorded_at=NOW))


def _seed(session) -> None:
    """30 orders in the window, 7 of them bad (2 rejected, 5 charged back or fraud)."""
    at = NOW - timedelta(days=10)
    for i in range(10):  # drawn under 5 %: flagged at random by both
        status = REJECTED if i < 2 else APPROVED
        order = add_order(session, at=at, reason="random", draw=100, status=status,
                          decided_at=at + timedelta(hours=5))  # fmt: skip
        if i == 2:
            _outcome(session, order, "chargeback")  # a false approval
    for i in range(10):  # drawn at 10 %: cleared at 5 %, drawn at 20 %
        order = add_order(session, at=at, draw=1_000)
        if i < 3:
            _outcome(session, order, "chargeback")
    for i in range(5):  # countries differ: only the draft's rule catches them
        order = add_order(session, at=at, draw=5_000, shipping="FR")
        if i == 0:
            _outcome(session, order, "confirmed_fraud")
    for _ in range(5):
        order = add_order(session, at=at, draw=9_000)
        _outcome(session, order, "delivered_ok")
    add_order(session, at=NOW - timedelta(days=40), draw=0, reason="random", status=REJECTED)
    session.commit()


def test_backtest_replays_the_stored_draws_and_counts_what_each_policy_catches(db_session):
    _seed(db_session)
    result = backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT, start=START, end=END)
    assert result.orders == 30
    assert (result.bad, result.charged_back, result.actually_flagged) == (7, 5, 10)
    now, draft = result.current, result.proposed
    assert (now.flagged, now.random, now.rule_forced, now.caught) == (10, 10, 0, 3)
    assert (draft.flagged, draft.random, draft.rule_forced, draft.caught) == (25, 20, 5, 7)
    assert (result.only_current, result.only_proposed) == (0, 4)
    # No decision could be timed: the stated 3-minute default.
    assert not result.review_time.measured
    assert now.reviewer_hours == pytest.approx(10 * 3 / 60)
    assert draft.reviewer_hours == pytest.approx(25 * 3 / 60)


def test_a_lower_rate_misses_what_the_current_one_catches(db_session):
    _seed(db_session)
    lower = DEFAULTS | {"rate_bp": 50}
    result = backtest_policy(db_session, current=DEFAULTS, proposed=lower, start=START, end=END)
    assert (result.proposed.flagged, result.proposed.caught) == (0, 0)
    assert result.only_current == 3


def test_batches_give_the_same_answer(db_session):
    _seed(db_session)
    whole = backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT, start=START, end=END)
    batched = backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT, start=START, end=END,
                              batch=7)  # fmt: skip
    assert batched == whole


def test_the_window_is_capped_with_a_clear_message(db_session):
    _seed(db_session)
    with pytest.raises(ValidationError) as too_many:
        backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT, start=START, end=END,
                        max_orders=20)  # fmt: skip
    assert "holds 30 orders" in too_many.value.message
    assert "backtest_first" in too_many.value.fields
    with pytest.raises(ValidationError) as too_long:
        backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT,
                        start=NOW - timedelta(days=400), end=NOW)  # fmt: skip
    assert "at most 366 days" in too_long.value.message
    with pytest.raises(ValidationError):
        backtest_policy(db_session, current=DEFAULTS, proposed=DRAFT, start=END, end=START)


def test_velocity_and_card_rules_are_replayed_with_what_intake_saw(db_session):
    """Every fact goes in: a velocity rule counts only the orders stored before each one."""
    at = NOW - timedelta(days=5)
    orders = [add_order(db_session, at=at + timedelta(minutes=i), draw=9_000,
                        email="same@example.com") for i in range(4)]  # fmt: skip
    for order in orders:
        order.email_key = "same-email-key"
    add_order(db_session, at=at, draw=9_000, last4="1111")
    db_session.commit()
    rules = [
        {"name": "busy email", "action": "review",
         "conditions": [{"type": "velocity", "key": "email", "hours": 24, "at_least": 3}]},
        {"name": "euro visa", "action": "tag",
         "conditions": [{"type": "card_brand", "op": "in", "values": ["visa"]}]},
    ]  # fmt: skip
    draft = DEFAULTS | {"rules": rules}
    result = backtest_policy(db_session, current=DEFAULTS, proposed=draft, start=START, end=END)
    assert result.orders == 5
    # The third and fourth orders with that email have 2 and 3 before them: 3 and 4 in all.
    assert (result.current.rule_forced, result.proposed.rule_forced) == (0, 2)
