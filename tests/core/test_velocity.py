"""Velocity facts from the stored orders' link keys, and intake deciding with them (both DBs)."""

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.factories import order_payload
from verifier.core.cases import case_event_data
from verifier.core.linkkeys import link_keys
from verifier.core.policies import create_policy_version
from verifier.core.rollups import day_counts
from verifier.core.rules import compile_rules
from verifier.core.sampling import Policy, draw_sample
from verifier.core.velocity import key_values, replay_facts, velocity_facts
from verifier.models import Order, SamplingDecision, VerificationCase

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _store(session, n, at, *, email="alice@example.com", ip="10.0.0.1"):
    address = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA",
               "country": "GB"}  # fmt: skip
    keys = link_keys(email=email, card_brand="visa", card_last4="4242",
                     cardholder_name="Alice Meyer", billing_address=address,
                     shipping_address=address, phone=None)  # fmt: skip
    order = Order(external_id=f"V-{n}", payload_hash="0" * 64, source="api", placed_at=at,
                  amount_minor=100, currency="EUR", customer_name="Alice Meyer",
                  customer_email=email, billing_address=address, shipping_address=address,
                  card_brand="visa", card_last4="4242", cardholder_name="Alice Meyer",
                  ip_address=ip, created_at=at, **keys.columns())  # fmt: skip
    session.add(order)
    session.flush()
    return order, keys


def _policy():
    rules = [
        {"name": "email day", "action": "review",
         "conditions": [{"type": "velocity", "key": "email", "hours": 24, "at_least": 3}]},
        {"name": "email hour", "action": "review",
         "conditions": [{"type": "velocity", "key": "email", "hours": 1, "at_least": 2}]},
        {"name": "phone", "action": "review",
         "conditions": [{"type": "velocity", "key": "phone", "hours": 24, "at_least": 2}]},
        {"name": "ip week", "action": "tag",
         "conditions": [{"type": "velocity", "key": "ip", "hours": 168, "at_least": 10}]},
    ]  # fmt: skip
    return Policy(1, rules=compile_rules(rules))


def test_counts_per_key_and_window_include_the_order_itself(db_session):
    # Stored oldest first, as intake stores them (ids grow with created_at).
    for n, hours_ago in enumerate((200, 30, 5)):
        _store(db_session, n, NOW - timedelta(hours=hours_ago))
    _, keys = _store(db_session, 9, NOW - timedelta(hours=2), email="bob@example.com")
    _store(db_session, 4, NOW - timedelta(minutes=30))
    db_session.commit()
    facts = velocity_facts(db_session, _policy(), key_values(keys, "10.0.0.1", None), now=NOW)
    # bob's email: only bob's order (2 h ago) is stored, so 2 in a day, 1 in the hour.
    assert facts[("email", 24)] == 2 and facts[("email", 1)] == 1
    assert facts[("phone", 24)] == 0  # this order has no phone: nothing to count
    assert facts[("ip", 168)] == 5  # four stored within the week, and this one
    alice = link_keys(email="Alice@Example.com", card_brand="visa", card_last4="4242",
                      cardholder_name="Alice Meyer", billing_address={}, shipping_address={},
                      phone=None)  # fmt: skip
    facts = velocity_facts(db_session, _policy(), key_values(alice, None, None), now=NOW)
    assert facts[("email", 24)] == 3 and facts[("email", 1)] == 2
    assert facts[("ip", 168)] == 0


def test_a_replay_counts_only_orders_before_the_one_replayed(db_session):
    orders = [_store(db_session, n, NOW - timedelta(hours=3 - n))[0] for n in range(3)]
    db_session.commit()
    last = orders[-1]
    keys = link_keys(email=last.customer_email, card_brand="visa", card_last4="4242",
                     cardholder_name="Alice Meyer", billing_address={}, shipping_address={},
                     phone=None)  # fmt: skip
    values = key_values(keys, None, None)
    facts = velocity_facts(db_session, _policy(), values, now=last.created_at, before_id=last.id)
    assert facts[("email", 24)] == 3
    first = orders[0]
    facts = velocity_facts(db_session, _policy(), values, now=first.created_at,
                           before_id=first.id)  # fmt: skip
    assert facts[("email", 24)] == 1


def test_counts_stop_at_the_largest_number_a_rule_tests(db_session):
    for n in range(6):
        _store(db_session, n, NOW - timedelta(minutes=20 - n))
    db_session.commit()
    keys = link_keys(email="alice@example.com", card_brand=None, card_last4="0000",
                     cardholder_name="x", billing_address={}, shipping_address={},
                     phone=None)  # fmt: skip
    facts = velocity_facts(db_session, _policy(), key_values(keys, None, None), now=NOW)
    assert facts[("email", 24)] == 3  # capped: "at least 3" is all any rule asks


def test_intake_forces_review_on_velocity_and_names_the_rule(client, auth, db_session):
    rules = [
        {
            "name": "Three a day",
            "action": "review",
            "conditions": [{"type": "velocity", "key": "email", "hours": 24, "at_least": 3}],
        },
        {
            "name": "Mark example.com",
            "action": "tag",
            "conditions": [{"type": "email_domain", "op": "in", "values": ["example.com"]}],
        },
    ]
    create_policy_version(db_session, changes={"rate_bp": 0, "rules": rules}, reason="test",
                          actor_label="test", actor_id=None, now=datetime.now(UTC))  # fmt: skip
    db_session.commit()
    bodies = []
    for n in range(3):
        response = client.post("/api/v1/orders", json=order_payload(external_id=f"VEL-{n}"),
                               headers=auth)  # fmt: skip
        assert response.status_code == 201, response.get_json()
        bodies.append(response.get_json())
    assert [b["decision"]["flagged"] for b in bodies] == [False, False, True]
    assert bodies[0]["decision"]["rules_matched"] == ["Mark example.com"]
    assert bodies[2]["decision"]["reason"] == "Three a day"
    assert bodies[2]["decision"]["rules_matched"] == ["Three a day", "Mark example.com"]
    assert bodies[2]["status"] == "awaiting_documents"
    stored = db_session.scalar(
        select(SamplingDecision).join(Order).where(Order.external_id == "VEL-2")
    )
    assert stored.rules_matched == ["Three a day", "Mark example.com"]


def test_intake_exempts_by_rule_and_converts_currencies(client, auth, db_session):
    rules = [
        {
            "name": "Big in EUR",
            "action": "review",
            "conditions": [{"type": "amount", "op": ">=", "amount": "500"}],
        },
        {
            "name": "Staff",
            "action": "exempt",
            "conditions": [{"type": "email", "op": "in", "values": ["alice@example.com"]}],
        },
    ]
    create_policy_version(
        db_session, changes={"rate_bp": 10_000, "rules": rules,
                             "currency_rates": {"base": "EUR", "rates": {"USD": "0.5"}}},
        reason="test", actor_label="test", actor_id=None, now=datetime.now(UTC),
    )  # fmt: skip
    db_session.commit()
    small = client.post("/api/v1/orders", headers=auth, json=order_payload(
        external_id="EX-1", amount="900.00", currency="USD")).get_json()  # fmt: skip
    assert (small["decision"]["flagged"], small["decision"]["reason"]) == (False, "rule_exempt")
    big = client.post("/api/v1/orders", headers=auth, json=order_payload(
        external_id="EX-2", amount="1000.00", currency="USD")).get_json()  # fmt: skip
    assert (big["decision"]["flagged"], big["decision"]["reason"]) == (True, "Big in EUR")
    assert big["decision"]["rules_matched"] == ["Big in EUR", "Staff"]


def test_the_case_page_and_the_webhook_name_every_matched_rule(
    client, auth, db_session, reviewer, login
):
    rules = [
        {
            "name": "Watch example.com",
            "action": "tag",
            "conditions": [{"type": "email_domain", "op": "in", "values": ["example.com"]}],
        },
        {
            "name": "Visa over 100",
            "action": "review",
            "conditions": [
                {"type": "card_brand", "op": "in", "values": ["visa"]},
                {"type": "amount", "op": ">", "amount": "100", "currency": "EUR"},
            ],
        },
    ]
    create_policy_version(db_session, changes={"rate_bp": 0, "rules": rules}, reason="test",
                          actor_label="test", actor_id=None, now=datetime.now(UTC))  # fmt: skip
    db_session.commit()
    body = client.post("/api/v1/orders", json=order_payload(external_id="TAG-1"),
                       headers=auth).get_json()  # fmt: skip
    assert body["decision"]["reason"] == "Visa over 100"
    db_session.rollback()
    case = db_session.get(VerificationCase, body["case"]["id"])
    # What every case.status_changed webhook carries.
    assert case_event_data(case)["rules_matched"] == ["Watch example.com", "Visa over 100"]
    login(client, reviewer)
    page = client.get(f"/review/cases/{body['case']['id']}").get_data(as_text=True)
    assert "Rule: Visa over 100" in page
    assert "Rules matched as well: Watch example.com" in page


def test_the_daily_rollup_counts_an_admin_rule_as_a_rule(client, auth, db_session):
    rules = [
        {
            "name": "Visa",
            "action": "review",
            "conditions": [{"type": "card_brand", "op": "in", "values": ["visa"]}],
        },
        {
            "name": "Spare amex",
            "action": "exempt",
            "conditions": [{"type": "card_brand", "op": "in", "values": ["amex"]}],
        },
    ]
    create_policy_version(db_session, changes={"rate_bp": 10_000, "rules": rules},
                          reason="test", actor_label="test", actor_id=None,
                          now=datetime.now(UTC))  # fmt: skip
    db_session.commit()
    for n, brand in enumerate(("visa", "amex", "visa")):
        payload = order_payload(external_id=f"ROLL-{n}")
        payload["card"] = payload["card"] | {"brand": brand}
        assert client.post("/api/v1/orders", json=payload, headers=auth).status_code == 201
    db_session.rollback()
    today = datetime.now(UTC).date()
    counts = day_counts(db_session, today, today)[today]
    assert (counts["received"], counts["flagged_rule"], counts["flagged_random"]) == (3, 2, 0)


def test_a_stored_order_replays_with_the_facts_it_arrived_with(db_session):
    orders = [_store(db_session, n, NOW - timedelta(hours=5 - n))[0] for n in range(3)]
    db_session.commit()
    facts = replay_facts(db_session, _policy(), orders[2])
    assert facts.velocity[("email", 24)] == 3 and facts.velocity[("email", 1)] == 2
    assert (facts.currency, facts.card_brand, facts.billing_country) == ("EUR", "visa", "GB")
    decision = draw_sample(_policy(), facts, random.Random(1))
    assert decision.reason == "email day"
    assert decision.rules_matched == ("email day", "email hour")
