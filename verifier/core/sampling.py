"""Pure sampler: a policy, an order's facts and a random source give a review decision."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property

from verifier.core.rules import REVIEW, TAG, OrderFacts, Rule
from verifier.errors import ValidationError

__all__ = ["Decision", "OrderFacts", "Policy", "draw_sample", "matched_rules", "rule_outcome"]

DRAW_SPACE = 10_000  # draws are uniform in [0, 10000): one step per hundredth of a percent
DEFAULT_RATE_BP = 500  # 5.00 %

RULE_AMOUNT = "amount_threshold"
RULE_COUNTRY = "country_mismatch"
RULE_NAME = "cardholder_name_mismatch"
REASON_RANDOM = "random"
REASON_NOT_SELECTED = "not_selected"
# A customer approved recently (same email and card last four) is not drawn at random again.
REASON_REPEAT_EXEMPT = "repeat_customer_exempt"
# A rule with the exempt action matched before any rule that forces review.
REASON_RULE_EXEMPT = "rule_exempt"
RULE_NAMES = (RULE_AMOUNT, RULE_COUNTRY, RULE_NAME)
# An order forced by one of the admin's rules carries that rule's name as its reason.
DECISION_REASONS = (REASON_RANDOM, REASON_NOT_SELECTED, REASON_REPEAT_EXEMPT, REASON_RULE_EXEMPT,
                    *RULE_NAMES)  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """The sampling part of a policy version: rate, the three built-in switches, the rules.

    The switches act as review rules named RULE_AMOUNT, RULE_COUNTRY and RULE_NAME, checked
    before the admin's `rules` (verifier.core.rules), which follow in their own order.
    """

    version: int
    rate_bp: int = DEFAULT_RATE_BP
    amount_threshold_minor: int | None = None
    country_mismatch: bool = False
    name_mismatch: bool = False
    rules: tuple[Rule, ...] = ()

    @cached_property
    def all_rules(self) -> tuple[Rule, ...]:
        built_in = []
        threshold = self.amount_threshold_minor
        if threshold is not None:
            # The original switch: the amount in whatever currency the order is in.
            built_in.append(Rule(RULE_AMOUNT, REVIEW, (), lambda f: f.amount_minor >= threshold))
        if self.country_mismatch:
            built_in.append(Rule(RULE_COUNTRY, REVIEW, (), lambda f: (
                f.billing_country.upper() != f.shipping_country.upper())))  # fmt: skip
        if self.name_mismatch:
            built_in.append(Rule(RULE_NAME, REVIEW, (), lambda f: f.names_differ))
        return (*built_in, *self.rules)

    @cached_property
    def velocity_needs(self) -> dict[str, tuple[tuple[int, ...], int]]:
        """Velocity key -> (the windows in hours the rules read, the largest count they test).

        A caller looks these up (verifier.core.velocity) and passes them as OrderFacts.velocity.
        """
        needs: dict[str, tuple[set[int], int]] = {}
        for rule in self.rules:
            for key, hours, at_least in rule.velocity:
                windows, most = needs.get(key, (set(), 0))
                windows.add(hours)
                needs[key] = (windows, max(most, at_least))
        return {k: (tuple(sorted(w)), most) for k, (w, most) in needs.items()}


@dataclass(frozen=True)
class Decision:
    flagged: bool
    reason: str
    rules_matched: tuple[str, ...]
    draw: int
    rate_bp: int
    policy_version: int


def parse_rate(value: str | float | int | Decimal) -> int:
    """Turn a percentage such as "5", "12.5" or 0.25 into hundredths of a percent.

    Raises ValidationError for anything outside 0-100 or with more than two decimals.
    """
    try:
        rate = Decimal(str(value).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(
            "The sampling rate must be a number.", {"rate": "Give a number such as 5 or 2.5."}
        ) from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise ValidationError(
            "The sampling rate must be between 0 and 100 %.",
            {"rate": "Give a percentage between 0 and 100."},
        )
    if rate != rate.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP):
        raise ValidationError(
            "The sampling rate takes at most two decimals.",
            {"rate": "Use at most two decimals, such as 2.75."},
        )
    return int(rate * 100)


def format_rate(rate_bp: int) -> str:
    """Hundredths of a percent as a human percentage: 500 -> "5", 1250 -> "12.5"."""
    text = f"{Decimal(rate_bp) / 100:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _evaluate(policy: Policy, order: OrderFacts) -> tuple[tuple[str, ...], Rule | None]:
    """Every matching rule's name in order, and the first matching rule that decides."""
    matched: list[str] = []
    deciding = None
    for rule in policy.all_rules:
        if rule.test(order):
            matched.append(rule.name)
            if deciding is None and rule.action != TAG:
                deciding = rule
    return tuple(matched), deciding


def rule_outcome(policy: Policy, order: OrderFacts) -> tuple[tuple[str, ...], str | None]:
    """The matching rules' names, and the action that decides (REVIEW, EXEMPT, or None when
    only the random draw does): what a replay needs without drawing."""
    matched, deciding = _evaluate(policy, order)
    return matched, deciding.action if deciding is not None else None


def matched_rules(policy: Policy, order: OrderFacts) -> tuple[str, ...]:
    """The names of the policy's rules that this order triggers, whatever their action, in
    the policy's order (the built-in switches first)."""
    return _evaluate(policy, order)[0]


def draw_sample(
    policy: Policy, order: OrderFacts, rng: random.Random, *, repeat_exempt: bool = False
) -> Decision:
    """Decide whether an order goes to review; the draw is always taken, so it can be audited.

    Rules are read in order and the first matching one that forces review or exempts decides
    (tag-only rules are just recorded); every matching rule is named in `rules_matched`.
    `repeat_exempt` (the caller found a recent approval of this customer) spares the order the
    random draw only: a rule still forces review. Velocity facts must be in `order.velocity`
    (see Policy.velocity_needs). Production passes `random.SystemRandom()`;
    tests pass a seeded `random.Random`.
    """
    if not 0 <= policy.rate_bp <= DRAW_SPACE:
        raise ValueError(f"rate_bp out of range: {policy.rate_bp}")
    draw = rng.randrange(DRAW_SPACE)
    rules, deciding = _evaluate(policy, order)
    if deciding is not None and deciding.action == REVIEW:
        reason, flagged = deciding.name, True
    elif deciding is not None:
        reason, flagged = REASON_RULE_EXEMPT, False
    elif repeat_exempt:
        reason, flagged = REASON_REPEAT_EXEMPT, False
    elif draw < policy.rate_bp:
        reason, flagged = REASON_RANDOM, True
    else:
        reason, flagged = REASON_NOT_SELECTED, False
    return Decision(
        flagged=flagged,
        reason=reason,
        rules_matched=rules,
        draw=draw,
        rate_bp=policy.rate_bp,
        policy_version=policy.version,
    )
