"""Forms of the rules pages: one rule's conditions field by field, the rates table, actions."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from verifier.core.rules import (
    ACTIONS,
    AMOUNT_OPS,
    VELOCITY_KEYS,
    parse_condition,
    parse_rates,
    parse_rule,
    rates_json,
)
from verifier.errors import ValidationError as DomainValidationError
from verifier.policy.changes import MAX_REASON_LENGTH

LIST_OPS = [SelectChoice("in", "is one of"), SelectChoice("not_in", "is none of")]
# List conditions on the form: field name -> (condition type, one per line rather than commas).
LIST_FIELDS = {
    "billing_country": ("billing_country", False),
    "shipping_country": ("shipping_country", False),
    "email_domain": ("email_domain", False),
    "card_brand": ("card_brand", False),
    "email": ("email", True),
    "card": ("card", True),
    "address": ("address", True),
}
VELOCITY_LABELS = {
    "email": "email address",
    "card": "card",
    "billing_address": "billing address",
    "shipping_address": "shipping address",
    "phone": "phone number",
    "ip": "IP address",
    "device": "device",
}


def _split(text: str | None, per_line: bool) -> list[str]:
    parts = (text or "").splitlines() if per_line else re.split(r"[,\n]", text or "")
    return [p.strip() for p in parts if p.strip()]


class RuleForm(FlaskForm):
    base_version = HiddenField()
    name = StringField("Name")
    action = RadioField(
        "What the rule does",
        choices=[SelectChoice(value, label) for value, label in ACTIONS.items()],
        validate_choice=False,
    )
    amount_op = SelectField(
        "Amount is", choices=[SelectChoice(op, op) for op in AMOUNT_OPS], validate_choice=False
    )
    amount = StringField("Amount")
    amount_currency = StringField("Currency")
    billing_country_op = SelectField("Billing country", choices=LIST_OPS, validate_choice=False)
    billing_country = StringField("Billing countries")
    shipping_country_op = SelectField("Shipping country", choices=LIST_OPS, validate_choice=False)
    shipping_country = StringField("Shipping countries")
    email_domain_op = SelectField("Email domain", choices=LIST_OPS, validate_choice=False)
    email_domain = StringField("Email domains")
    card_brand_op = SelectField("Card brand", choices=LIST_OPS, validate_choice=False)
    card_brand = StringField("Card brands")
    email_op = SelectField("Email address", choices=LIST_OPS, validate_choice=False)
    email = TextAreaField("Email addresses")
    card_op = SelectField("Card", choices=LIST_OPS, validate_choice=False)
    card = TextAreaField("Cards")
    address_op = SelectField("Billing or shipping address", choices=LIST_OPS, validate_choice=False)
    address = TextAreaField("Addresses")
    name_mismatch = BooleanField("The cardholder is not the customer")
    address_mismatch = BooleanField("The shipping address differs from the billing address")
    velocity_key = SelectField(
        "Orders with the same",
        choices=[
            SelectChoice("", "(no velocity condition)"),
            *(SelectChoice(k, VELOCITY_LABELS[k]) for k in VELOCITY_KEYS),
        ],
        validate_choice=False,
    )
    velocity_hours = StringField("Within the last (hours)")
    velocity_at_least = StringField("At least this many orders, this one included")
    reason = TextAreaField("Reason for this change")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule: dict[str, Any] | None = None
        self.general_errors: list[str] = []

    def validate(self, extra_validators=None) -> bool:
        """Check every condition the form holds, each error on its own field."""
        super().validate(extra_validators)
        conditions: list[dict[str, Any]] = []

        def check(raw: dict[str, Any], field: Any) -> None:
            try:
                conditions.append(parse_condition(raw))
            except DomainValidationError as exc:
                field.errors.append(exc.message)

        if (self.amount.data or "").strip() or (self.amount_currency.data or "").strip():
            amount = {
                "type": "amount",
                "op": self.amount_op.data or ">=",
                "amount": self.amount.data or "",
                "currency": self.amount_currency.data,
            }
            check(amount, self.amount)
        for name, (kind, per_line) in LIST_FIELDS.items():
            values = _split(self[name].data, per_line)
            if values:
                op = self[f"{name}_op"].data or "in"
                check({"type": kind, "op": op, "values": values}, self[name])
        if self.name_mismatch.data:
            conditions.append({"type": "name_mismatch"})
        if self.address_mismatch.data:
            conditions.append({"type": "address_mismatch"})
        if self.velocity_key.data:
            hours, at_least = self.velocity_hours, self.velocity_at_least
            if not (hours.data or "").strip().isdigit():
                hours.errors.append("Give a whole number of hours, such as 24.")
            if not (at_least.data or "").strip().isdigit():
                at_least.errors.append("Give a whole number of orders, such as 3.")
            if not hours.errors and not at_least.errors:
                check({"type": "velocity", "key": self.velocity_key.data,
                       "hours": int(hours.data), "at_least": int(at_least.data)},
                      self.velocity_hours)  # fmt: skip
        if len(self.reason.data or "") > MAX_REASON_LENGTH:
            self.reason.errors.append(f"Use at most {MAX_REASON_LENGTH} characters.")
        field_errors = any(f.errors for f in self)
        if not conditions and not field_errors:
            self.general_errors.append(
                "Give the rule at least one condition: fill in any of the fields below."
            )
            return False
        try:
            self.rule = parse_rule(
                {"name": self.name.data, "action": self.action.data, "conditions": conditions}
            )
        except DomainValidationError as exc:
            for name, message in exc.fields.items():
                if name in ("name", "action"):
                    self[name].errors.append(message)
        return not any(f.errors for f in self) and self.rule is not None

    def fill(self, rule: dict[str, Any], version: int) -> bool:
        """Show a stored rule; False when it holds conditions this form cannot show
        (two of one kind, from an imported file)."""
        self.base_version.data = str(version)
        self.name.data = rule["name"]
        self.action.data = rule["action"]
        kinds = [c["type"] for c in rule["conditions"]]
        if len(kinds) != len(set(kinds)):
            return False
        for condition in rule["conditions"]:
            kind = condition["type"]
            if kind == "amount":
                self.amount_op.data = condition["op"]
                self.amount.data = condition["amount"]
                self.amount_currency.data = condition["currency"] or ""
            elif kind in LIST_FIELDS:
                self[f"{kind}_op"].data = condition["op"]
                joiner = "\n" if LIST_FIELDS[kind][1] else ", "
                self[kind].data = joiner.join(condition["values"])
            elif kind in ("name_mismatch", "address_mismatch"):
                self[kind].data = True
            else:
                self.velocity_key.data = condition["key"]
                self.velocity_hours.data = str(condition["hours"])
                self.velocity_at_least.data = str(condition["at_least"])
        return True


class RuleActionForm(FlaskForm):
    """Delete or move one rule: only the version the page showed, and CSRF."""

    base_version = HiddenField()
    direction = HiddenField()

    def base(self) -> int | None:
        text = (self.base_version.data or "").strip()
        return int(text) if text.isdigit() else None


class RatesForm(FlaskForm):
    base_version = HiddenField()
    base = StringField("Base currency")
    rates = TextAreaField("Rates, one a line: CODE = value of one unit in the base currency")
    reason = TextAreaField("Reason for this change")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parsed: dict[str, Any] | None = None

    def validate(self, extra_validators=None) -> bool:
        super().validate(extra_validators)
        rates: dict[str, str] = {}
        for n, line in enumerate((self.rates.data or "").splitlines(), 1):
            if not line.strip():
                continue
            code, sep, value = line.partition("=")
            if not sep:
                self.rates.errors.append(f"Line {n}: write it as USD = 0.92.")
                continue
            rates[code.strip().upper()] = value.strip()
        if not self.rates.errors:
            try:
                self.parsed = rates_json(parse_rates({"base": self.base.data, "rates": rates}))
            except DomainValidationError as exc:
                for name, message in exc.fields.items():
                    target = self.base if name == "base" else self.rates
                    target.errors.append(message)
        if len(self.reason.data or "") > MAX_REASON_LENGTH:
            self.reason.errors.append(f"Use at most {MAX_REASON_LENGTH} characters.")
        return not any(f.errors for f in self)

    def fill(self, rates: dict[str, Any], version: int) -> None:
        self.base_version.data = str(version)
        self.base.data = rates.get("base", "EUR")
        self.rates.data = "\n".join(f"{k} = {v}" for k, v in (rates.get("rates") or {}).items())
