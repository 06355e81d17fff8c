"""Sampling rules: named, ordered, each a set of conditions combined by AND and an action.

A policy version stores its rules as JSON (`sampling_policies.rules`) and its currency rates
(`sampling_policies.currency_rates`); `parse_rules` checks and normalises that JSON and
`compile_rules` turns it into `Rule`s whose test is a plain function of `OrderFacts`, built
once per policy version. Everything here is pure: velocity counts (orders sharing a key in a
window) are looked up by the caller (verifier.core.velocity) and passed in the facts.
"""

from __future__ import annotations

import hashlib
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from verifier.core.linkkeys import address_key, email_key, fold
from verifier.errors import ValidationError

REVIEW = "review"  # force review, whatever the random draw
EXEMPT = "exempt"  # spare the order the random draw (a review rule above it still wins)
TAG = "tag"  # only record that the rule matched
ACTIONS = {REVIEW: "Force review", EXEMPT: "Exempt from the random draw", TAG: "Tag only"}

# Velocity keys: which stored link key of `orders` two orders share (verifier.core.linkkeys).
VELOCITY_KEYS = {
    "email": "email_key",
    "card": "card_key",
    "billing_address": "billing_key",
    "shipping_address": "shipping_key",
    "phone": "phone_key",
    "ip": "ip_address",
    "device": "device_id",
}
LIST_TYPES = {
    "billing_country": "Billing country",
    "shipping_country": "Shipping country",
    "email": "Email address",
    "email_domain": "Email domain",
    "card": "Card",
    "address": "Billing or shipping address",
    "card_brand": "Card brand",
}
FLAG_TYPES = {
    "name_mismatch": "Cardholder is not the customer",
    "address_mismatch": "Shipping address differs from billing",
}
CONDITION_TYPES = ("amount", *LIST_TYPES, *FLAG_TYPES, "velocity")
AMOUNT_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# Reasons the sampler itself gives, and the built-in switches' names: no rule may take them.
RESERVED_NAMES = {"random", "not_selected", "repeat_customer_exempt", "rule_exempt", "rule",
                  "amount_threshold", "country_mismatch", "cardholder_name_mismatch"}  # fmt: skip
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,39}$")
MAX_RULES = 200
MAX_CONDITIONS = 12
MAX_LIST = 10_000
MAX_HOURS = 24 * 365
MAX_AT_LEAST = 1_000
MAX_AMOUNT_MINOR = 100_000_000_000
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
MONEY_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def name_key(name: str) -> str:
    """Compare names without case, accents, punctuation or the order of their words."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(sorted(letters.split()))


def list_address_key(lines: str, postcode: str, country: str) -> str:
    """How an address on an allow or deny list is compared: its lines, postcode and country."""
    text = f"{fold(lines)}|{fold(postcode)}|{country.strip().upper()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _order_address_key(address: Mapping[str, str]) -> str:
    lines = f"{address.get('line1', '')}{address.get('line2', '')}"
    return list_address_key(lines, address.get("postcode", ""), address.get("country", ""))


def card_entry(brand: str | None, last4: str, holder: str = "") -> str:
    """A card as an allow or deny list holds it: "visa 4242", or with the holder's name."""
    text = f"{fold(brand)} {last4}"
    return f"{text} {name_key(holder)}" if holder else text


@dataclass(frozen=True)
class OrderFacts:
    """What the sampler may look at; amounts in minor units (cents).

    `velocity` maps (key, hours) to the number of orders sharing that key (see VELOCITY_KEYS)
    in the last `hours` hours, this order included; `Policy.velocity_needs` says which.
    """

    amount_minor: int
    billing_country: str
    shipping_country: str
    customer_name: str
    cardholder_name: str
    currency: str = ""
    customer_email: str = ""
    card_brand: str | None = None
    card_last4: str = ""
    billing_address: Mapping[str, str] = field(default_factory=dict)
    shipping_address: Mapping[str, str] = field(default_factory=dict)
    velocity: Mapping[tuple[str, int], int] = field(default_factory=dict)

    # Derived once per order, and only when a rule asks (frozen dataclasses allow this).
    @cached_property
    def email_domain(self) -> str:
        return self.customer_email.rpartition("@")[2].strip().lower()

    @cached_property
    def email_key(self) -> str:
        return email_key(self.customer_email)

    @cached_property
    def names_differ(self) -> bool:
        return name_key(self.customer_name) != name_key(self.cardholder_name)

    @cached_property
    def cards(self) -> tuple[str, str]:
        return (card_entry(self.card_brand, self.card_last4),
                card_entry(self.card_brand, self.card_last4, self.cardholder_name))  # fmt: skip

    @cached_property
    def address_keys(self) -> tuple[str, str]:
        return (_order_address_key(self.billing_address),
                _order_address_key(self.shipping_address))  # fmt: skip

    @cached_property
    def addresses_differ(self) -> bool:
        if self.billing_address == self.shipping_address:
            return False  # the usual case, without normalising either
        return address_key(self.billing_address) != address_key(self.shipping_address)

    @cached_property
    def brand(self) -> str:
        return fold(self.card_brand)


Test = Callable[[OrderFacts], bool]


@dataclass(frozen=True, eq=False)
class Rule:
    """One compiled rule: its name, action, normalised conditions and their combined test."""

    name: str
    action: str
    conditions: tuple[dict[str, Any], ...]
    test: Test
    velocity: tuple[tuple[str, int, int], ...] = ()  # (key, hours, at least) it reads


@dataclass(frozen=True)
class Rates:
    """Currency rates the admin maintains: one unit of each currency in the base currency."""

    base: str = "EUR"
    per_unit: Mapping[str, Decimal] = field(default_factory=dict)

    def rate(self, currency: str) -> Decimal | None:
        return Decimal(1) if currency == self.base else self.per_unit.get(currency)


# --- checking and normalising the stored JSON -----------------------------------------


def parse_rates(raw: Mapping[str, Any] | None) -> Rates:
    """Rates from their JSON form {"base": "EUR", "rates": {"USD": "0.92"}}.

    Raises ValidationError naming the bad currency.
    """
    raw = raw or {}
    base = str(raw.get("base") or "EUR").strip().upper()
    errors: dict[str, str] = {}
    if not CURRENCY_RE.match(base):
        errors["base"] = "Give the base currency as a three-letter code, such as EUR."
    per_unit: dict[str, Decimal] = {}
    for code, value in dict(raw.get("rates") or {}).items():
        code = str(code).strip().upper()
        try:
            rate = Decimal(str(value).strip())
        except InvalidOperation:
            rate = Decimal(-1)
        if not CURRENCY_RE.match(code):
            errors[f"rates.{code}"] = "Use three-letter currency codes, such as USD."
        elif not rate.is_finite() or rate <= 0 or rate > 1_000_000:
            errors[f"rates.{code}"] = f"Give the value of one {code} in {base}, above 0."
        elif code != base:
            per_unit[code] = rate
    if errors:
        raise ValidationError("Some currency rates are not valid.", errors)
    return Rates(base, per_unit)


def rates_json(rates: Rates) -> dict[str, Any]:
    return {"base": rates.base, "rates": {k: str(v) for k, v in sorted(rates.per_unit.items())}}


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError(message, {field_name: message})


def _clean_values(kind: str, values: Any) -> list[str]:
    if isinstance(values, str):
        values = [v for v in re.split(r"[\n;]", values)]
    if not isinstance(values, list | tuple):
        raise _fail(kind, "Give a list of values.")
    cleaned: list[str] = []
    for value in values:
        text = str(value).strip()
        if not text:
            continue
        if kind in ("billing_country", "shipping_country"):
            text = text.upper()
            if not COUNTRY_RE.match(text):
                raise _fail(kind, f"{text!r} is not a two-letter country code, such as GB.")
        elif kind == "email":
            if "@" not in text or len(text) > 254:
                raise _fail(kind, f"{text!r} is not an email address.")
            text = text.lower()
        elif kind == "email_domain":
            text = text.lstrip("@").lower()
            if "." not in text or "@" in text or " " in text or len(text) > 253:
                raise _fail(kind, f"{text!r} is not a domain, such as example.com.")
        elif kind == "card":
            parts = text.split()
            if len(parts) < 2 or not re.fullmatch(r"\d{4}", parts[1]):
                raise _fail(kind, f"{text!r}: write a card as brand and last four, e.g. visa 4242.")
            text = " ".join([parts[0].lower(), parts[1], *parts[2:]])
        elif kind == "address":
            parts = [p.strip() for p in text.split(",")]
            if len(parts) < 3 or not COUNTRY_RE.match(parts[-1].upper()):
                raise _fail(
                    kind, f"{text!r}: write an address as street, postcode, country (e.g. GB)."
                )
        elif kind == "card_brand":
            text = text.lower()
        if text not in cleaned:
            cleaned.append(text)
    if not cleaned:
        raise _fail(kind, "Give at least one value.")
    if len(cleaned) > MAX_LIST:
        raise _fail(kind, f"Use at most {MAX_LIST} values.")
    return cleaned


def parse_amount(text: Any) -> int:
    """An amount such as "500" or "1250.50" in minor units; ValueError when not one."""
    cleaned = str(text).strip().replace(",", "")
    if not MONEY_RE.match(cleaned):
        raise ValueError("not an amount")
    return int(Decimal(cleaned) * 100)


def parse_condition(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One condition checked and normalised; raises ValidationError keyed by its type."""
    kind = raw.get("type")
    if kind not in CONDITION_TYPES:
        raise _fail("type", f"Unknown condition {kind!r}.")
    if kind == "amount":
        op = raw.get("op", ">=")
        if op not in AMOUNT_OPS:
            raise _fail("amount", "Compare amounts with >, >=, < or <=.")
        try:
            minor = parse_amount(raw.get("amount", ""))
        except ValueError:
            raise _fail("amount", "Give an amount such as 500 or 1250.50.") from None
        if minor > MAX_AMOUNT_MINOR:
            raise _fail("amount", "That amount is too large.")
        currency = str(raw.get("currency") or "").strip().upper() or None
        if currency is not None and not CURRENCY_RE.match(currency):
            raise _fail("amount", "Give the currency as a three-letter code, or leave it empty.")
        return {"type": kind, "op": op, "amount": f"{Decimal(minor) / 100:.2f}",
                "currency": currency}  # fmt: skip
    if kind in LIST_TYPES:
        op = raw.get("op", "in")
        if op not in ("in", "not_in"):
            raise _fail(kind, "Choose in or not in the list.")
        return {"type": kind, "op": op, "values": _clean_values(kind, raw.get("values", []))}
    if kind in FLAG_TYPES:
        return {"type": kind}
    key = raw.get("key")
    if key not in VELOCITY_KEYS:
        raise _fail("velocity", f"Count orders by one of: {', '.join(VELOCITY_KEYS)}.")
    try:
        hours, at_least = int(raw.get("hours", 0)), int(raw.get("at_least", 0))
    except (TypeError, ValueError):
        raise _fail("velocity", "Give whole numbers of hours and orders.") from None
    if not 1 <= hours <= MAX_HOURS:
        raise _fail("velocity", f"Give a window from 1 to {MAX_HOURS} hours.")
    if not 2 <= at_least <= MAX_AT_LEAST:
        raise _fail("velocity", f"Give a number of orders from 2 to {MAX_AT_LEAST}.")
    return {"type": kind, "key": key, "hours": hours, "at_least": at_least}


def parse_rule(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One rule checked and normalised: {"name", "action", "conditions": [...]}."""
    name = str(raw.get("name") or "").strip()
    if not NAME_RE.match(name):
        raise _fail(
            "name", "Name the rule with up to 40 letters, digits, spaces, dots, dashes or _."
        )
    if name.lower() in RESERVED_NAMES:
        raise _fail("name", f"{name!r} is a name Verifier uses itself; choose another.")
    action = raw.get("action")
    if action not in ACTIONS:
        raise _fail("action", "Choose force review, exempt or tag only.")
    conditions = raw.get("conditions") or []
    if not isinstance(conditions, list) or not conditions:
        raise _fail("conditions", "Give the rule at least one condition.")
    if len(conditions) > MAX_CONDITIONS:
        raise _fail("conditions", f"Use at most {MAX_CONDITIONS} conditions in one rule.")
    parsed = [parse_condition(c if isinstance(c, Mapping) else {}) for c in conditions]
    return {"name": name, "action": action, "conditions": parsed}


def parse_rules(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A whole rule list checked: each rule valid, names unique (case-insensitive)."""
    rules = [parse_rule(r) for r in raw]
    if len(rules) > MAX_RULES:
        raise _fail("rules", f"A policy holds at most {MAX_RULES} rules.")
    seen: set[str] = set()
    for rule in rules:
        if rule["name"].lower() in seen:
            raise _fail("name", f"Another rule is already named {rule['name']!r}.")
        seen.add(rule["name"].lower())
    return rules


# --- compiling ------------------------------------------------------------------------


def _amount_test(condition: Mapping[str, Any], rates: Rates) -> Test:
    compare = AMOUNT_OPS[condition["op"]]
    minor = parse_amount(condition["amount"])
    currency = condition["currency"]
    if currency is not None:
        return lambda f: f.currency == currency and compare(f.amount_minor, minor)
    # Converted to the base currency; an order in a currency without a rate never matches.
    # amount x p/q against minor is amount x p against minor x q: whole numbers, exact, fast.
    scaled = {rates.base: (1, minor)}
    for code, rate in rates.per_unit.items():
        p, q = rate.as_integer_ratio()
        scaled[code] = (p, minor * q)

    def converted(f: OrderFacts) -> bool:
        found = scaled.get(f.currency)
        return found is not None and compare(f.amount_minor * found[0], found[1])

    return converted


def _list_test(condition: Mapping[str, Any]) -> Test:
    kind, values = condition["type"], condition["values"]
    test: Test
    if kind in ("billing_country", "shipping_country"):
        countries = frozenset(values)
        test = (lambda f: f.billing_country.upper() in countries) if kind == "billing_country" \
            else (lambda f: f.shipping_country.upper() in countries)  # fmt: skip
    elif kind == "email":
        emails = frozenset(email_key(v) for v in values)
        test = lambda f: f.email_key in emails  # noqa: E731
    elif kind == "email_domain":
        domains = frozenset(values)
        test = lambda f: f.email_domain in domains  # noqa: E731
    elif kind == "card":
        cards = frozenset(
            card_entry(p[0], p[1], " ".join(p[2:])) for p in (v.split() for v in values)
        )
        test = lambda f: f.cards[0] in cards or f.cards[1] in cards  # noqa: E731
    elif kind == "address":
        keys = set()
        for value in values:
            parts = [p.strip() for p in value.split(",")]
            keys.add(list_address_key("".join(parts[:-2]), parts[-2], parts[-1]))
        frozen = frozenset(keys)
        test = lambda f: not frozen.isdisjoint(f.address_keys)  # noqa: E731
    else:
        brands = frozenset(values)
        test = lambda f: f.brand in brands  # noqa: E731
    if condition["op"] == "not_in":
        inner = test
        return lambda f: not inner(f)
    return test


def _condition_test(condition: Mapping[str, Any], rates: Rates) -> Test:
    kind = condition["type"]
    if kind == "amount":
        return _amount_test(condition, rates)
    if kind in LIST_TYPES:
        return _list_test(condition)
    if kind == "name_mismatch":
        return lambda f: f.names_differ
    if kind == "address_mismatch":
        return lambda f: f.addresses_differ
    window, at_least = (condition["key"], condition["hours"]), condition["at_least"]
    return lambda f: f.velocity.get(window, 0) >= at_least


def _all(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda f: first(f) and second(f)
    return lambda f: all(t(f) for t in tests)


def compile_rule(raw: Mapping[str, Any], rates: Rates) -> Rule:
    """A normalised rule (parse_rule) as a `Rule` whose test runs on OrderFacts."""
    conditions = tuple(raw["conditions"])
    # Cheap conditions first: a velocity count or a hash is only read when the rest matched.
    order = {"amount": 0, "velocity": 3, "email": 2, "card": 2, "address": 2}
    ordered = sorted(conditions, key=lambda c: order.get(c["type"], 1))
    velocity = tuple(
        (c["key"], c["hours"], c["at_least"]) for c in conditions if c["type"] == "velocity"
    )
    return Rule(
        name=raw["name"],
        action=raw["action"],
        conditions=conditions,
        test=_all([_condition_test(c, rates) for c in ordered]),
        velocity=velocity,
    )


def compile_rules(raw: Iterable[Mapping[str, Any]], rates: Rates | None = None) -> tuple[Rule, ...]:
    """Stored rules (already normalised, or checked here) compiled in their order."""
    rates = rates or Rates()
    return tuple(compile_rule(r, rates) for r in parse_rules(raw))


# --- words ----------------------------------------------------------------------------


def describe_condition(condition: Mapping[str, Any]) -> str:
    """A condition as a line of text: "amount >= 500.00 EUR", "email domain in a.com, b.com"."""
    kind = condition["type"]
    if kind == "amount":
        currency = condition["currency"] or "(converted to the base currency)"
        return f"amount {condition['op']} {condition['amount']} {currency}"
    if kind in LIST_TYPES:
        values = condition["values"]
        shown = ", ".join(values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")
        op = "in" if condition["op"] == "in" else "not in"
        return f"{LIST_TYPES[kind].lower()} {op} {shown}"
    if kind in FLAG_TYPES:
        return FLAG_TYPES[kind].lower()
    key, hours = condition["key"].replace("_", " "), condition["hours"]
    return f"at least {condition['at_least']} orders with the same {key} in {hours} hours"
