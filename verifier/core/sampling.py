"""Pure sampler: a policy, an order's facts and a random source give a review decision."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from verifier.errors import ValidationError

DRAW_SPACE = 10_000  # draws are uniform in [0, 10000): one step per hundredth of a percent
DEFAULT_RATE_BP = 500  # 5.00 %

RULE_AMOUNT = "amount_threshold"
RULE_COUNTRY = "country_mismatch"
RULE_NAME = "cardholder_name_mismatch"
REASON_RANDOM = "random"
REASON_NOT_SELECTED = "not_selected"
# A customer approved recently (same email and card last four) is not drawn at random again.
REASON_REPEAT_EXEMPT = "repeat_customer_exempt"
RULE_NAMES = (RULE_AMOUNT, RULE_COUNTRY, RULE_NAME)
DECISION_REASONS = (REASON_RANDOM, REASON_NOT_SELECTED, REASON_REPEAT_EXEMPT, *RULE_NAMES)


@dataclass(frozen=True)
class Policy:
    """The sampling part of a policy version: rate and the rules that force review."""

    version: int
    rate_bp: int = DEFAULT_RATE_BP
    amount_threshold_minor: int | None = None
    country_mismatch: bool = False
    name_mismatch: bool = False


@dataclass(frozen=True)
class OrderFacts:
    """What the sampler may look at; amounts in minor units (cents)."""

    amount_minor: int
    billing_country: str
    shipping_country: str
    customer_name: str
    cardholder_name: str


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


def _name_key(name: str) -> str:
    """Compare names without case, accents, punctuation or the order of their words."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(sorted(letters.split()))


def matched_rules(policy: Policy, order: OrderFacts) -> tuple[str, ...]:
    """The names of the policy's rules that this order triggers, in a fixed order."""
    matched = []
    if policy.amount_threshold_minor is not None and order.amount_minor >= (
        policy.amount_threshold_minor
    ):
        matched.append(RULE_AMOUNT)
    if policy.country_mismatch and (
        order.billing_country.upper() != order.shipping_country.upper()
    ):
        matched.append(RULE_COUNTRY)
    if policy.name_mismatch and _name_key(order.customer_name) != _name_key(order.cardholder_name):
        matched.append(RULE_NAME)
    return tuple(matched)


def draw_sample(
    policy: Policy, order: OrderFacts, rng: random.Random, *, repeat_exempt: bool = False
) -> Decision:
    """Decide whether an order goes to review; the draw is always taken, so it can be audited.

    `repeat_exempt` (the caller found a recent approval of this customer) spares the order the
    random draw only: a rule still forces review. Production passes `random.SystemRandom()`;
    tests pass a seeded `random.Random`.
    """
    if not 0 <= policy.rate_bp <= DRAW_SPACE:
        raise ValueError(f"rate_bp out of range: {policy.rate_bp}")
    draw = rng.randrange(DRAW_SPACE)
    rules = matched_rules(policy, order)
    if rules:
        reason, flagged = rules[0], True
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
