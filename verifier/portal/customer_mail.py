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
    "receipt": "We have your documents for order {ref} with {shop}",
    "outcome": "The check of your order {ref} with {shop} is complete",
}
# What a resubmission asks for, one line a document kind.
REQUESTED_LINES = {
    "card_front": "a new photo of the front of the card you paid with",
    "card_back": "a new photo of the back of the card you paid with",
    "photo_id": "a new photo ID (driving licence or passport)",
    "proof_of_address": "a new proof of address (a utility bill or bank statement)",
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


def requested_lines(kinds: list[str] | tuple[str, ...]) -> list[str]:
    """The documents a resubmission asks for again, and only those."""
    return [REQUESTED_LINES[kind] for kind in REQUESTED_LINES if kind in kinds]


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
        # A resubmission (and a reminder during one) asks only for the documents sent back.
        "requirements": requested_lines(case.resubmission_kinds or [])
        if case.resubmission_kinds
        and (kind == "resubmission" or case.status == "resubmission_requested")
        else requirement_lines(settings.document_requirement),
        "resubmission_message": case.resubmission_message or "",
        # A rule, not the draw, may have picked the order: only say "at random" when true.
        "at_random": case.reason == "random",
    }
    env = _environment()
    return RenderedEmail(
        subject=SUBJECTS[kind].format(ref=order.external_id, shop=portal.shop_name),
        text=env.get_template("customer.txt").render(context),
        html=env.get_template("customer.html").render(context),
    )


def render_receipt(
    kind: str, *, case: VerificationCase, order: Order, portal: PortalContext
) -> RenderedEmail:
    """Render a receipt ("receipt": documents arrived, "outcome": the check is complete).

    No link and no personal details: the shop, the order reference and what happened.
    """
    context = {
        "kind": kind,
        "shop": portal.shop_name,
        "reference": order.external_id,
        "status": case.status,
    }
    env = _environment()
    return RenderedEmail(
        subject=SUBJECTS[kind].format(ref=order.external_id, shop=portal.shop_name),
        text=env.get_template("receipt.txt").render(context),
        html=env.get_template("receipt.html").render(context),
    )
