"""Link keys: the normalised forms under which orders of one customer find each other.

Written with the order at intake (columns of `orders`, each indexed), read by the review's
linked history. Text is folded (accents dropped, case folded) and stripped of spaces and
punctuation, so "1 High St., Flat 2" and "1 high st flat 2" are one address. Keys are a
truncated SHA-256 of the normalised text: fixed width, so every index stays small; the
orders themselves still hold what is shown.
"""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

# Phones compare on their last ten digits: "+44 20 7946 0000" and "020 7946 0000" are one
# number, and so are "+1 415 555 0100" and "(415) 555-0100".
PHONE_DIGITS = 10
KEY_LENGTH = 32  # hex characters: 128 bits


def fold(value: str | None) -> str:
    """Letters and digits only, no accents, case folded: "Ünter-Straße 5" -> "unterstrasse5"."""
    if not value:
        return ""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed.casefold() if c.isalnum())


def _digest(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}:{text}".encode()).hexdigest()[:KEY_LENGTH]


def email_key(email: str) -> str:
    """The mailbox: case folded, a "+tag" dropped, and dots ignored for Gmail addresses."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return _digest("email", f"{local}@{domain}")


def card_key(brand: str | None, last4: str, holder: str) -> str:
    return _digest("card", f"{fold(brand)}|{last4}|{fold(holder)}")


def address_key(address: Mapping[str, str]) -> str:
    """Lines 1 and 2 together (a flat number may stand on either), postcode, city, country;
    the recipient's name and the region are left out."""
    lines = fold(f"{address.get('line1', '')}{address.get('line2', '')}")
    parts = (lines, fold(address.get("postcode")), fold(address.get("city")),
             (address.get("country") or "").upper())  # fmt: skip
    return _digest("address", "|".join(parts))


def phone_digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


def phone_key(phone: str | None) -> str | None:
    digits = phone_digits(phone or "")
    return digits[-PHONE_DIGITS:] if digits else None


def normal_ip(value: str) -> str:
    """The address in its canonical text form (an IPv4-mapped IPv6 address as IPv4);
    raises ValueError for anything that is not an IP address."""
    address = ipaddress.ip_address(value.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True)
class LinkKeys:
    email_key: str
    card_key: str
    billing_key: str
    shipping_key: str
    phone_key: str | None

    def columns(self) -> dict[str, str | None]:
        return {
            "email_key": self.email_key,
            "card_key": self.card_key,
            "billing_key": self.billing_key,
            "shipping_key": self.shipping_key,
            "phone_key": self.phone_key,
        }


def link_keys(
    *,
    email: str,
    card_brand: str | None,
    card_last4: str,
    cardholder_name: str,
    billing_address: Mapping[str, str],
    shipping_address: Mapping[str, str],
    phone: str | None,
) -> LinkKeys:
    """Every key of one order (the IP address and device id are their own keys)."""
    return LinkKeys(
        email_key=email_key(email),
        card_key=card_key(card_brand, card_last4, cardholder_name),
        billing_key=address_key(billing_address),
        shipping_key=address_key(shipping_address),
        phone_key=phone_key(phone),
    )
