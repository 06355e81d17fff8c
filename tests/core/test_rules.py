"""Rules in the pure sampler: each condition, each action, order, currencies, lists, velocity."""

import random
from decimal import Decimal

import pytest

from verifier.core.rules import (
    EXEMPT,
    REVIEW,
    TAG,
    Rates,
    compile_rules,
    describe_condition,
    parse_rates,
    parse_rule,
    parse_rules,
)
from verifier.core.sampling import (
    REASON_NOT_SELECTED,
    REASON_RANDOM,
    REASON_RULE_EXEMPT,
    RULE_AMOUNT,
    OrderFacts,
    Policy,
    draw_sample,
    matched_rules,
)
from verifier.errors import ValidationError

HOME = {"line1": "1 High Street", "city": "London", "postcode": "SW1A 1AA", "country": "GB"}
ELSEWHERE = {"line1": "9 Rue Neuve", "city": "Paris", "postcode": "75001", "country": "FR"}


def facts(**changes):
    values = dict(
        amount_minor=50_000, billing_country="GB", shipping_country="GB",
        customer_name="Alice Meyer", cardholder_name="Alice Meyer", currency="EUR",
        customer_email="Alice.Meyer+shop@Example.com", card_brand="Visa", card_last4="4242",
        billing_address=HOME, shipping_address=HOME,
    )  # fmt: skip
    return OrderFacts(**(values | changes))


def rule(name="r", action=REVIEW, **condition):
    return {"name": name, "action": action, "conditions": [condition]}


def policy(*rules, rates=None, **switches):
    return Policy(1, rate_bp=0, rules=compile_rules(rules, rates), **switches)


def matches(condition: dict, order: OrderFacts, rates=None) -> bool:
    return matched_rules(policy(rule(**condition), rates=rates), order) == ("r",)


@pytest.mark.parametrize(
    ("condition", "order", "expected"),
    [
        ({"type": "amount", "op": ">", "amount": "500", "currency": "EUR"}, facts(), False),
        ({"type": "amount", "op": ">=", "amount": "500", "currency": "EUR"}, facts(), True),
        # Per currency: 500 USD is not "EUR >= 500".
        ({"type": "amount", "op": ">=", "amount": "500", "currency": "EUR"},
         facts(currency="USD"), False),
        ({"type": "amount", "op": "<", "amount": "10", "currency": "EUR"},
         facts(amount_minor=999), True),
        ({"type": "billing_country", "op": "in", "values": ["gb", "IE"]}, facts(), True),
        ({"type": "billing_country", "op": "not_in", "values": ["GB"]}, facts(), False),
        ({"type": "shipping_country", "op": "not_in", "values": ["GB"]},
         facts(shipping_country="FR"), True),
        ({"type": "email_domain", "op": "in", "values": ["@example.com"]}, facts(), True),
        ({"type": "email_domain", "op": "in", "values": ["mail.example.com"]}, facts(), False),
        # Email lists compare mailboxes: case and "+tag" do not matter.
        ({"type": "email", "op": "in", "values": ["alice.meyer@example.com"]}, facts(), True),
        ({"type": "email", "op": "in", "values": ["bob@example.com"]}, facts(), False),
        ({"type": "card", "op": "in", "values": ["visa 4242"]}, facts(), True),
        ({"type": "card", "op": "in", "values": ["VISA 4242 meyer alice"]}, facts(), True),
        ({"type": "card", "op": "in", "values": ["visa 4242 Bob Stone"]}, facts(), False),
        ({"type": "card", "op": "in", "values": ["amex 4242"]}, facts(), False),
        ({"type": "address", "op": "in", "values": ["1 high street, sw1a1aa, GB"]}, facts(), True),
        ({"type": "address", "op": "in", "values": ["9 rue neuve, 75001, FR"]},
         facts(shipping_address=ELSEWHERE), True),
        ({"type": "address", "op": "in", "values": ["2 High Street, SW1A 1AA, GB"]}, facts(),
         False),
        ({"type": "card_brand", "op": "in", "values": ["Amex", "visa"]}, facts(), True),
        ({"type": "card_brand", "op": "not_in", "values": ["visa"]}, facts(), False),
        ({"type": "name_mismatch"}, facts(cardholder_name="MEYER, Alice"), False),
        ({"type": "name_mismatch"}, facts(cardholder_name="Bob Stone"), True),
        ({"type": "address_mismatch"}, facts(), False),
        ({"type": "address_mismatch"}, facts(shipping_address=ELSEWHERE), True),
        ({"type": "velocity", "key": "email", "hours": 24, "at_least": 3},
         facts(velocity={("email", 24): 3}), True),
        ({"type": "velocity", "key": "email", "hours": 24, "at_least": 3},
         facts(velocity={("email", 24): 2, ("email", 48): 5}), False),
        # A count the caller did not look up is none at all.
        ({"type": "velocity", "key": "ip", "hours": 1, "at_least": 2}, facts(), False),
    ],
)  # fmt: skip
def test_each_condition(condition, order, expected):
    assert matches(condition, order) is expected


def test_conditions_of_one_rule_combine_by_and():
    both = {"name": "big foreign", "action": REVIEW, "conditions": [
        {"type": "amount", "op": ">=", "amount": "100", "currency": "EUR"},
        {"type": "shipping_country", "op": "not_in", "values": ["GB"]}]}  # fmt: skip
    p = policy(both)
    assert matched_rules(p, facts()) == ()
    assert matched_rules(p, facts(shipping_country="FR")) == ("big foreign",)
    assert matched_rules(p, facts(shipping_country="FR", amount_minor=100)) == ()


def test_amounts_convert_to_the_base_currency_with_the_admins_rates():
    rates = parse_rates({"base": "EUR", "rates": {"usd": "0.9", "GBP": "1.2"}})
    over_500 = {"type": "amount", "op": ">=", "amount": "500"}
    assert matches(over_500, facts(currency="EUR", amount_minor=50_000), rates)
    assert not matches(over_500, facts(currency="USD", amount_minor=50_000), rates)  # 450 EUR
    assert matches(over_500, facts(currency="USD", amount_minor=55_556), rates)  # 500.0004
    assert matches(over_500, facts(currency="GBP", amount_minor=41_667), rates)
    # A currency without a rate cannot be compared, so the rule does not match.
    assert not matches(over_500, facts(currency="JPY", amount_minor=10**9), rates)
    assert rates.rate("USD") == Decimal("0.9") and rates.rate("EUR") == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"base": "EURO"}, "base"), ({"rates": {"USD": "0"}}, "rates.USD"),
     ({"rates": {"US": "1"}}, "rates.US"), ({"rates": {"USD": "abc"}}, "rates.USD")],
)  # fmt: skip
def test_bad_rates_are_refused_by_field(raw, field):
    with pytest.raises(ValidationError) as caught:
        parse_rates(raw)
    assert field in caught.value.fields


def test_actions_review_exempt_and_tag():
    tag = rule("watch gmail", TAG, type="email_domain", op="in", values=["example.com"])
    exempt = rule("trusted", EXEMPT, type="email", op="in", values=["alice.meyer@example.com"])
    review = rule("big", REVIEW, type="amount", op=">=", amount="100", currency="EUR")
    everyone = Policy(1, rate_bp=10_000, rules=compile_rules([tag, exempt, review]))
    decision = draw_sample(everyone, facts(), random.Random(1))
    # The exempt rule comes first, so it decides; every matching rule is still named.
    assert (decision.flagged, decision.reason) == (False, REASON_RULE_EXEMPT)
    assert decision.rules_matched == ("watch gmail", "trusted", "big")
    reordered = Policy(1, rate_bp=10_000, rules=compile_rules([tag, review, exempt]))
    decision = draw_sample(reordered, facts(), random.Random(1))
    assert (decision.flagged, decision.reason) == (True, "big")
    tag_only = Policy(1, rate_bp=0, rules=compile_rules([tag]))
    decision = draw_sample(tag_only, facts(), random.Random(1))
    assert (decision.flagged, decision.reason, decision.rules_matched) == (
        False, REASON_NOT_SELECTED, ("watch gmail",))  # fmt: skip
    decision = draw_sample(tag_only.__class__(1, rate_bp=10_000, rules=tag_only.rules), facts(),
                           random.Random(1))  # fmt: skip
    assert (decision.flagged, decision.reason) == (True, REASON_RANDOM)


def test_an_exempt_rule_spares_the_draw_but_not_a_built_in_switch():
    exempt = rule("trusted", EXEMPT, type="email_domain", op="in", values=["example.com"])
    p = Policy(1, rate_bp=10_000, amount_threshold_minor=100, rules=compile_rules([exempt]))
    decision = draw_sample(p, facts(), random.Random(3))
    assert (decision.flagged, decision.reason) == (True, RULE_AMOUNT)
    assert decision.rules_matched == (RULE_AMOUNT, "trusted")


def test_the_policy_says_which_velocity_counts_it_needs():
    p = policy(
        rule("a", type="velocity", key="email", hours=24, at_least=3),
        rule("b", type="velocity", key="email", hours=1, at_least=5),
        rule("c", type="velocity", key="ip", hours=48, at_least=2),
    )
    assert p.velocity_needs == {"email": ((1, 24), 5), "ip": ((48,), 2)}
    assert policy().velocity_needs == {}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"name": "", "action": REVIEW, "conditions": [{"type": "name_mismatch"}]}, "name"),
        ({"name": "random", "action": REVIEW, "conditions": [{"type": "name_mismatch"}]}, "name"),
        ({"name": "ok", "action": "block", "conditions": [{"type": "name_mismatch"}]}, "action"),
        ({"name": "ok", "action": REVIEW, "conditions": []}, "conditions"),
        ({"name": "ok", "action": REVIEW, "conditions": [{"type": "shoe_size"}]}, "type"),
        (rule("ok", type="amount", op="=", amount="5"), "amount"),
        (rule("ok", type="amount", op=">", amount="5.555"), "amount"),
        (rule("ok", type="amount", op=">", amount="5", currency="EURO"), "amount"),
        (rule("ok", type="billing_country", op="in", values=["GBR"]), "billing_country"),
        (rule("ok", type="email", op="in", values=["nobody"]), "email"),
        (rule("ok", type="email_domain", op="in", values=["localhost"]), "email_domain"),
        (rule("ok", type="card", op="in", values=["visa 42"]), "card"),
        (rule("ok", type="address", op="in", values=["1 High Street"]), "address"),
        (rule("ok", type="card_brand", op="in", values=[]), "card_brand"),
        (rule("ok", type="velocity", key="shoe", hours=1, at_least=2), "velocity"),
        (rule("ok", type="velocity", key="email", hours=0, at_least=2), "velocity"),
        (rule("ok", type="velocity", key="email", hours=1, at_least=1), "velocity"),
    ],
)
def test_bad_rules_are_refused_with_the_field_named(raw, field):
    with pytest.raises(ValidationError) as caught:
        parse_rule(raw)
    assert field in caught.value.fields


def test_rule_names_are_unique_and_lists_are_normalised():
    with pytest.raises(ValidationError):
        parse_rules([rule("Big", type="name_mismatch"), rule("big", type="name_mismatch")])
    parsed = parse_rule(rule("x", type="billing_country", op="in", values="gb; fr\nGB"))
    assert parsed["conditions"][0]["values"] == ["GB", "FR"]
    amount = parse_rule(rule("y", type="amount", op=">", amount="1,250.5", currency="usd"))
    assert amount["conditions"][0] == {"type": "amount", "op": ">", "amount": "1250.50",
                                       "currency": "USD"}  # fmt: skip
    assert describe_condition(amount["conditions"][0]) == "amount > 1250.50 USD"


def test_the_built_in_switches_still_decide_as_before():
    p = Policy(1, rate_bp=0, amount_threshold_minor=10_000, country_mismatch=True,
               name_mismatch=True)  # fmt: skip
    order = facts(shipping_country="FR", cardholder_name="Bob", currency="JPY")
    assert matched_rules(p, order) == ("amount_threshold", "country_mismatch",
                                       "cardholder_name_mismatch")  # fmt: skip
    assert Rates().base == "EUR"
