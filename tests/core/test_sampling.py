"""The sampler as a pure function: rates, rules and the statistics of the draw."""

import math
import random

import pytest

from verifier.core.sampling import (
    RULE_AMOUNT,
    RULE_COUNTRY,
    RULE_NAME,
    OrderFacts,
    Policy,
    draw_sample,
    format_rate,
    parse_rate,
)
from verifier.errors import ValidationError

PLAIN = OrderFacts(
    amount_minor=5_000,
    billing_country="GB",
    shipping_country="GB",
    customer_name="Alice Meyer",
    cardholder_name="Alice Meyer",
)


def test_five_percent_over_20000_orders_is_within_4_5_sigma_of_1000():
    policy = Policy(version=1, rate_bp=500)
    rng = random.SystemRandom()  # the production source, not a seed picked to pass
    flagged = sum(draw_sample(policy, PLAIN, rng).flagged for _ in range(20_000))
    sigma = math.sqrt(20_000 * 0.05 * 0.95)
    assert abs(flagged - 1_000) <= 4.5 * sigma, flagged


def test_zero_percent_flags_none_and_hundred_flags_all():
    rng = random.Random(7)
    assert not any(draw_sample(Policy(1, rate_bp=0), PLAIN, rng).flagged for _ in range(5_000))
    decisions = [draw_sample(Policy(1, rate_bp=10_000), PLAIN, rng) for _ in range(5_000)]
    assert all(d.flagged and d.reason == "random" for d in decisions)


def test_decision_records_draw_rate_and_version():
    class Fixed(random.Random):
        def randrange(self, n):
            return 499

    decision = draw_sample(Policy(version=3, rate_bp=500), PLAIN, Fixed())
    assert (decision.flagged, decision.reason, decision.draw) == (True, "random", 499)
    assert (decision.rate_bp, decision.policy_version) == (500, 3)

    class Edge(random.Random):
        def randrange(self, n):
            return 500

    assert draw_sample(Policy(version=3, rate_bp=500), PLAIN, Edge()).reason == "not_selected"


@pytest.mark.parametrize(
    ("policy", "facts", "reason"),
    [
        (Policy(1, 0, amount_threshold_minor=100_000),
         OrderFacts(100_000, "GB", "GB", "A B", "A B"), RULE_AMOUNT),
        (Policy(1, 0, country_mismatch=True), OrderFacts(10, "GB", "fr", "A B", "A B"),
         RULE_COUNTRY),
        (Policy(1, 0, name_mismatch=True), OrderFacts(10, "GB", "GB", "Alice Meyer", "Bob Meyer"),
         RULE_NAME),
    ],
)  # fmt: skip
def test_rules_force_review_with_their_reason(policy, facts, reason):
    decisions = [draw_sample(policy, facts, random.Random(i)) for i in range(50)]
    assert all(d.flagged and d.reason == reason for d in decisions)


def test_rules_do_not_fire_below_threshold_or_on_equivalent_names():
    policy = Policy(1, 0, amount_threshold_minor=100_000, country_mismatch=True, name_mismatch=True)
    facts = OrderFacts(99_999, "gb", "GB", "Zoë  Dupont-Martin", "DUPONT MARTIN zoe")
    assert not draw_sample(policy, facts, random.Random(1)).flagged


def test_several_rules_are_all_recorded_first_is_the_reason():
    policy = Policy(1, 0, amount_threshold_minor=1, country_mismatch=True, name_mismatch=True)
    decision = draw_sample(policy, OrderFacts(5, "GB", "DE", "A", "B"), random.Random(1))
    assert decision.reason == RULE_AMOUNT
    assert decision.rules_matched == (RULE_AMOUNT, RULE_COUNTRY, RULE_NAME)


@pytest.mark.parametrize(
    ("text", "bp"),
    [("5", 500), ("0", 0), ("100", 10_000), ("2.75", 275), ("0.01", 1), (" 7 %", 700)],
)
def test_parse_rate(text, bp):
    assert parse_rate(text) == bp


@pytest.mark.parametrize("text", ["-1", "100.01", "abc", "2.755", "nan", "inf", ""])
def test_parse_rate_refuses(text):
    with pytest.raises(ValidationError) as err:
        parse_rate(text)
    assert "rate" in err.value.fields


def test_format_rate():
    assert [format_rate(x) for x in (500, 1250, 275, 0, 10_000)] == [
        "5",
        "12.5",
        "2.75",
        "0",
        "100",
    ]
