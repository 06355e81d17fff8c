"""How an order reads to a person: the wording customer emails and staff pages share."""

from __future__ import annotations

from decimal import Decimal


def format_amount(amount_minor: int, currency: str) -> str:
    """An amount in minor units as a person reads it: `1,234.50 GBP`."""
    return f"{Decimal(amount_minor) / 100:,.2f} {currency}"
