"""Order payload validation: one parser for the JSON API and the CSV import, field-level errors."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from verifier.core.checks import COUNTRIES, EMAIL_RE, EXTERNAL_ID_RE, PAN_RE
from verifier.core.i18n import valid_timezone
from verifier.core.linkkeys import normal_ip, phone_digits
from verifier.errors import ValidationError

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_AMOUNT_MINOR = 10**13
# Unicode categories refused in text fields: control characters and surrogates (Cc, Cs).
_BAD_CATEGORIES = frozenset({"Cc", "Cs"})
MAX_FUTURE = timedelta(days=1)

TOP_FIELDS = {
    "external_id",
    "placed_at",
    "amount",
    "currency",
    "customer",
    "billing_address",
    "shipping_address",
    "card",
    "ip_address",
    "device_id",
    "locale",
    "timezone",
}
ADDRESS_FIELDS = {"name": False, "line1": True, "line2": False, "city": True, "region": False,
                  "postcode": False, "country": True}  # fmt: skip
# The names shop platforms use for the same address fields (Shopify, WooCommerce, Magento):
# each is stored under the canonical name, so a resend under either name is the same order.
ADDRESS_ALIASES = {"address1": "line1", "address2": "line2", "state": "region",
                   "province": "region", "postal_code": "postcode", "zip": "postcode"}  # fmt: skip
CUSTOMER_FIELDS = {"name": True, "email": True, "phone": False}
# Optional fields added after orders were first stored: left out of the payload hash when
# not sent, so an order stored before them still matches its resend.
OPTIONAL_HASHED = ("customer_phone", "ip_address", "device_id", "locale", "timezone")
MAX_PHONE_DIGITS = 15  # E.164
MIN_PHONE_DIGITS = 5
PHONE_RE = re.compile(r"^\+?[0-9 ().\-/]+$")
DEVICE_ID_RE = re.compile(r"^[\x21-\x7e]{1,100}$")
CARD_FIELDS = {"brand": False, "last4": True, "holder_name": True}
# A BCP 47 language tag ("de", "de-AT", "pt_BR"): the customer's pages and emails use it when
# it names a supported language, else the browser's Accept-Language.
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")


@dataclass(frozen=True)
class OrderInput:
    """A validated, normalised order as the shop sent it."""

    external_id: str
    placed_at: datetime
    amount_minor: int
    currency: str
    customer_name: str
    customer_email: str
    billing_address: dict[str, str]
    shipping_address: dict[str, str]
    card_brand: str | None
    card_last4: str
    cardholder_name: str
    customer_phone: str | None = None
    ip_address: str | None = None
    device_id: str | None = None
    locale: str | None = None
    timezone: str | None = None

    def payload_hash(self) -> str:
        """SHA-256 of the canonical form: the same order sent twice hashes the same."""
        # The fields as asdict() gives them, without its deep copy: every value is a string,
        # a number, None or a flat dict of strings (the addresses), which json.dumps reads as is.
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name in OPTIONAL_HASHED:
            if data[name] is None:
                del data[name]
        data["placed_at"] = self.placed_at.astimezone(UTC).isoformat()
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


_FIELD_NAMES = tuple(f.name for f in fields(OrderInput))


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, message)


def _text(
    errors: _Errors, obj: dict[str, Any], key: str, path: str, *, required: bool, max_len: int = 200
) -> str | None:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.add(path, "This field is required.")
        return None
    if not isinstance(value, str):
        errors.add(path, "Must be a string.")
        return None
    if any(unicodedata.category(c) in _BAD_CATEGORIES and c not in "\t\n\r" for c in value):
        # NUL and other control characters (line breaks and tabs are folded into spaces
        # below), and lone surrogates, which are not text at all.
        errors.add(path, "Contains control characters or invalid text.")
        return None
    value = " ".join(value.split())
    if len(value) > max_len:
        errors.add(path, f"Must be at most {max_len} characters.")
        return None
    if PAN_RE.search(value):
        errors.add(path, "Looks like a card number; never send full card numbers.")
        return None
    return value


def _object(
    errors: _Errors, obj: dict[str, Any], key: str, spec: dict[str, bool]
) -> dict[str, Any] | None:
    """The object under `key`, or None (its error recorded) when it is missing or not one.

    An empty object is an object: its required fields are then reported one by one.
    """
    value = obj.get(key)
    if value is None:
        errors.add(key, "This field is required.")
        return None
    if not isinstance(value, dict):
        errors.add(key, "Must be an object.")
        return None
    for extra in sorted(set(value) - set(spec)):
        errors.add(f"{key}.{extra}", "Unknown field.")
    return value


def _canonical_address(errors: _Errors, raw: dict[str, Any], key: str) -> dict[str, Any]:
    """`raw` with every alias under its canonical name; two names for one field clash."""
    out = {k: v for k, v in raw.items() if k not in ADDRESS_ALIASES}
    for alias, name in ADDRESS_ALIASES.items():
        value = raw.get(alias)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        given = out.get(name)
        if given is not None and not (isinstance(given, str) and not given.strip()):
            if given != value:
                errors.add(f"{key}.{alias}", f"Give either {name} or {alias}, not both.")
            continue
        out[name] = value
    return out


def _address(errors: _Errors, obj: dict[str, Any], key: str) -> dict[str, str]:
    raw = _object(errors, obj, key, ADDRESS_FIELDS | dict.fromkeys(ADDRESS_ALIASES, False))
    out: dict[str, str] = {}
    if raw is None:
        return out
    raw = _canonical_address(errors, raw, key)
    for name, required in ADDRESS_FIELDS.items():
        if name == "country":
            continue
        value = _text(errors, raw, name, f"{key}.{name}", required=required)
        if value is not None:
            out[name] = value
    country = raw.get("country")
    if country is None or country == "":
        errors.add(f"{key}.country", "This field is required.")
    elif not isinstance(country, str) or country.strip().upper() not in COUNTRIES:
        errors.add(f"{key}.country", "Must be an ISO 3166-1 alpha-2 country code, such as GB.")
    else:
        assert isinstance(country, str)  # checked just above
        out["country"] = country.strip().upper()
    return out


def _amount(errors: _Errors, value: Any) -> int | None:
    if value is None or value == "":
        errors.add("amount", "This field is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.add("amount", 'Must be a decimal number such as "129.99".')
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        errors.add("amount", 'Must be a decimal number such as "129.99".')
        return None
    if not amount.is_finite() or amount < 0:
        errors.add("amount", "Must be zero or more.")
        return None
    if amount * 100 >= MAX_AMOUNT_MINOR:  # checked first: quantize() fails on huge numbers
        errors.add("amount", "Is too large.")
        return None
    if amount != amount.quantize(Decimal("0.01")):
        errors.add("amount", "At most two decimals.")
        return None
    minor = int(amount * 100)
    if minor >= MAX_AMOUNT_MINOR:
        errors.add("amount", "Is too large.")
        return None
    return minor


def _placed_at(errors: _Errors, value: Any, now: datetime) -> datetime | None:
    if value is None or value == "":
        errors.add("placed_at", "This field is required.")
        return None
    if not isinstance(value, str):
        errors.add("placed_at", "Must be an ISO 8601 date and time string.")
        return None
    try:
        placed = datetime.fromisoformat(value.strip())
    except ValueError:
        errors.add("placed_at", "Must be an ISO 8601 date and time, such as 2026-11-20T14:05:00Z.")
        return None
    if placed.tzinfo is None:
        errors.add("placed_at", "Include a timezone, such as Z or +01:00.")
        return None
    try:
        placed = placed.astimezone(UTC)
    except OverflowError:  # a time near year 1 or 9999 whose UTC form is out of range
        errors.add("placed_at", "Is out of range.")
        return None
    if placed > now + MAX_FUTURE:
        errors.add("placed_at", "Is in the future.")
        return None
    return placed


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _phone(errors: _Errors, customer: dict[str, Any]) -> str | None:
    # Not _text's card-number check: a phone is a run of digits. A number in international
    # form (+...) never is a card number; a 13-15 digit one without it that passes the Luhn
    # check may be, and is refused.
    path = "customer.phone"
    value = customer.get("phone")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        errors.add(path, "Must be a string.")
        return None
    value = " ".join(value.split())
    digits = phone_digits(value)
    if len(value) > 40 or not PHONE_RE.match(value):
        errors.add(
            path, "Use digits, spaces, '+', '-', '.', '/' and brackets, such as +44 20 7946 0000."
        )
        return None
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        errors.add(path, f"Must have {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits.")
        return None
    if not value.startswith("+") and len(digits) >= 13 and digits[0] != "0" and _luhn(digits):
        errors.add(path, "Looks like a card number; never send full card numbers.")
        return None
    return value


def _ip_address(errors: _Errors, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(value)
        return normal_ip(value)
    except ValueError:
        errors.add("ip_address", "Must be an IPv4 or IPv6 address, such as 203.0.113.7.")
        return None


def _device_id(errors: _Errors, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DEVICE_ID_RE.match(value.strip()):
        errors.add("device_id", "Use 1-100 visible ASCII characters, without spaces.")
        return None
    return value.strip()


def _locale(errors: _Errors, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 35 or not LOCALE_RE.match(value.strip()):
        errors.add("locale", "Use a language tag such as en, de, fr-FR or es-ES.")
        return None
    return value.strip().replace("_", "-")


def _timezone(errors: _Errors, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or valid_timezone(value.strip()) is None:
        errors.add("timezone", "Use an IANA time zone name such as Europe/Berlin.")
        return None
    return value.strip()


def parse_order(payload: Any, now: datetime) -> OrderInput:
    """Validate and normalise an order payload, raising ValidationError with every bad field."""
    if not isinstance(payload, dict):
        raise ValidationError("The order must be a JSON object.", {})
    errors = _Errors()
    for extra in sorted(set(payload) - TOP_FIELDS):
        errors.add(extra, "Unknown field.")

    external_id = payload.get("external_id")
    if external_id is None or external_id == "":
        errors.add("external_id", "This field is required.")
    elif not isinstance(external_id, str) or not EXTERNAL_ID_RE.match(external_id):
        errors.add(
            "external_id",
            "Use 1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.",
        )
    placed_at = _placed_at(errors, payload.get("placed_at"), now)
    amount_minor = _amount(errors, payload.get("amount"))
    currency = payload.get("currency")
    if currency is None or currency == "":
        errors.add("currency", "This field is required.")
    elif not isinstance(currency, str) or not CURRENCY_RE.match(currency.strip().upper()):
        errors.add("currency", "Must be a three-letter ISO 4217 code, such as EUR.")
    else:
        currency = currency.strip().upper()

    customer_given = _object(errors, payload, "customer", CUSTOMER_FIELDS)
    customer = customer_given or {}
    named = customer_given is not None
    customer_name = _text(errors, customer, "name", "customer.name", required=named)
    email = _text(errors, customer, "email", "customer.email", required=named, max_len=254)
    if email is not None and not EMAIL_RE.match(email):
        errors.add("customer.email", "Must be an email address.")
    phone = _phone(errors, customer)
    billing = _address(errors, payload, "billing_address")
    shipping = _address(errors, payload, "shipping_address")

    card_given = _object(errors, payload, "card", CARD_FIELDS)
    card = card_given or {}
    brand = _text(errors, card, "brand", "card.brand", required=False, max_len=20)
    last4 = card.get("last4")
    carded = card_given is not None
    if carded and (not isinstance(last4, str) or not re.fullmatch(r"\d{4}", last4)):
        errors.add("card.last4", "Must be exactly four digits, as a string.")
    holder = _text(errors, card, "holder_name", "card.holder_name", required=carded)
    ip_address = _ip_address(errors, payload.get("ip_address"))
    device_id = _device_id(errors, payload.get("device_id"))
    locale = _locale(errors, payload.get("locale"))
    timezone = _timezone(errors, payload.get("timezone"))

    if errors.fields:
        raise ValidationError("The order has invalid fields.", errors.fields)
    # Every check above that leaves one of these unset or of another type records an error.
    assert isinstance(external_id, str) and isinstance(currency, str)
    assert placed_at is not None and amount_minor is not None
    assert customer_name is not None and email is not None  # required once "customer" is
    assert isinstance(last4, str) and holder is not None  # required once "card" is
    return OrderInput(
        external_id=external_id,
        placed_at=placed_at,
        amount_minor=amount_minor,
        currency=currency,
        customer_name=customer_name,
        customer_email=email.lower(),
        billing_address=billing,
        shipping_address=shipping,
        card_brand=brand.lower() if brand else None,
        card_last4=last4,
        cardholder_name=holder,
        customer_phone=phone,
        ip_address=ip_address,
        device_id=device_id,
        locale=locale,
        timezone=timezone,
    )
