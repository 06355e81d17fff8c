"""Repeat-customer exemption: a recently approved customer skips the random draw, not the rules."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import order_payload
from tests.stats_helpers import add_order
from verifier.core.policies import create_policy_version
from verifier.core.sampling import (
    REASON_REPEAT_EXEMPT,
    RULE_AMOUNT,
    OrderFacts,
    Policy,
    draw_sample,
)
from verifier.models import APPROVED, REJECTED

FACTS = OrderFacts(
    amount_minor=5_000,
    billing_country="GB",
    shipping_country="GB",
    customer_name="Alice Meyer",
    cardholder_name="Alice Meyer",
)


def test_exempt_order_is_not_drawn_even_at_one_hundred_percent():
    decision = draw_sample(Policy(4, rate_bp=10_000), FACTS, random.Random(1), repeat_exempt=True)
    assert (decision.flagged, decision.reason) == (False, REASON_REPEAT_EXEMPT)
    assert 0 <= decision.draw < 10_000  # still drawn, so the record stays auditable
    assert decision.policy_version == 4


def test_rules_still_force_review_of_an_exempt_customer():
    policy = Policy(1, rate_bp=0, amount_threshold_minor=1_000)
    decision = draw_sample(policy, FACTS, random.Random(1), repeat_exempt=True)
    assert (decision.flagged, decision.reason) == (True, RULE_AMOUNT)


def _policy(db_session, days, rate_bp=10_000):
    create_policy_version(
        db_session, changes={"rate_bp": rate_bp, "settings": {"repeat_exemption_days": days}},
        reason="test", actor_label="test", actor_id=None, now=datetime.now(UTC),
    )  # fmt: skip
    db_session.commit()


def _approved(db_session, days_ago, *, email="alice@example.com", last4="4242", status=APPROVED):
    decided = datetime.now(UTC) - timedelta(days=days_ago)
    add_order(db_session, at=decided - timedelta(hours=2), reason="random", draw=1,
              status=status, decided_at=decided, email=email, last4=last4)  # fmt: skip
    db_session.commit()


def _send(client, auth, external_id, **card):
    payload = order_payload(external_id=external_id)
    payload["card"] = payload["card"] | card
    response = client.post("/api/v1/orders", json=payload, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_customer_approved_recently_is_exempt_and_the_api_says_so(client, auth, db_session):
    _policy(db_session, days=30)
    _approved(db_session, days_ago=5)
    body = _send(client, auth, "R-1")
    assert body["status"] == "cleared"
    assert body["decision"]["flagged"] is False
    assert body["decision"]["reason"] == "repeat_customer_exempt"
    assert body["decision"]["policy_version"] == 2
    openapi = client.get("/api/v1/openapi.json").get_json()
    assert "repeat_customer_exempt" in str(openapi)


@pytest.mark.parametrize(
    ("days", "approved_days_ago", "card", "status"),
    [
        (30, 40, "4242", APPROVED),  # approved too long ago
        (30, 5, "9999", APPROVED),  # same email, another card: not the same customer
        (30, 5, "4242", REJECTED),  # a rejection exempts nobody
        (None, 5, "4242", APPROVED),  # exemption switched off
    ],
)
def test_others_are_sampled_as_usual(client, auth, db_session, days, approved_days_ago, card,
                                     status):  # fmt: skip
    _policy(db_session, days=days)
    _approved(db_session, days_ago=approved_days_ago, status=status)
    body = _send(client, auth, "R-2", last4=card)
    assert body["decision"]["reason"] == "random"
    assert body["status"] == "awaiting_documents"


def test_exempt_customer_still_meets_the_rules(client, auth, db_session):
    create_policy_version(
        db_session, changes={"rate_bp": 10_000, "amount_threshold_minor": 100,
                             "settings": {"repeat_exemption_days": 30}},
        reason="test", actor_label="test", actor_id=None, now=datetime.now(UTC),
    )  # fmt: skip
    db_session.commit()
    _approved(db_session, days_ago=1)
    body = _send(client, auth, "R-3")
    assert body["decision"]["reason"] == "amount_threshold"
    assert body["decision"]["flagged"] is True
