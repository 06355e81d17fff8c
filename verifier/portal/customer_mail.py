"""Customer emails rendered from templates/email/ without Flask, so domain code can queue them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from verifier.config import PROJECT_ROOT
from verifier.core.settings import CARD_OR_ID
from verifier.core.wording import format_amount
from verifier.vault.storage import Keyring

if TYPE_CHECKING:
    from datetime import datetime

    from verifier.core.settings import Settings
    from verifier.models import Order, VerificationCase


SUBJECTS = {
    "invitation": "Please confirm your order {ref} with {shop}",
    "reminder": "Reminder: please confirm your order {ref} with {shop}",
    "resubmission": "One more step for your order {ref} with {shop}",
}


@dataclass(frozen=True)
class PortalContext:
    """What emails and links need to know about this installation."""

    base_url: str
    shop_name: str
    # Seals the emails' bodies in the outbox: they carry the customer's upload link.
    keyring: Keyring

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PortalContext:
        """The context of an app's settings (BASE_URL, SHOP_NAME and the master keys)."""
        return cls(config["BASE_URL"], config["SHOP_NAME"], Keyring.from_config(config))


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates" / "portal" / "email"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def requirement_lines(requirement: str) -> list[str]:
    """The documents asked for, in words a customer understands."""
    if requirement == CARD_OR_ID:
        return [
            "a photo of the front and the back of the card you paid with, or",
            "a photo ID (driving licence or passport) and a recent proof of address "
            "(a utility bill or bank statement)",
        ]
    return [
        "a photo of the front and the back of the card you paid with",
        "a photo ID (driving licence or passport)",
        "a recent proof of address (a utility bill or bank statement)",
    ]


def render_customer_email(
    kind: str,
    *,
    case: VerificationCase,
    order: Order,
    url: str,
    expires_at: datetime,
    portal: PortalContext,
    settings: Settings,
) -> RenderedEmail:
    """Render the text and HTML parts of an invitation, reminder or resubmission email.

    `url` is the customer's upload link and `expires_at` its deadline.
    """
    context = {
        "kind": kind,
        "shop": portal.shop_name,
        "reference": order.external_id,
        "placed_on": f"{order.placed_at:%d %B %Y}",
        "amount": format_amount(order.amount_minor, order.currency),
        "customer_name": order.customer_name,
        "url": url,
        "deadline": f"{expires_at:%d %B %Y, %H:%M} UTC",
        "requirements": requirement_lines(settings.document_requirement),
        "resubmission_message": case.resubmission_message or "",
    }
    env = _environment()
    return RenderedEmail(
        subject=SUBJECTS[kind].format(ref=order.external_id, shop=portal.shop_name),
        text=env.get_template("customer.txt").render(context),
        html=env.get_template("customer.html").render(context),
    )
