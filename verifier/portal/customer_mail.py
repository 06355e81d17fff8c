"""Customer emails rendered from templates/email/ without Flask, so domain code can queue them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from verifier.config import PROJECT_ROOT
from verifier.core.brand import Brand
from verifier.core.i18n import (
    DEFAULT_LOCALE,
    N_,
    format_day,
    format_money,
    format_when,
    supported_locale,
    translations,
)
from verifier.core.settings import CARD_OR_ID
from verifier.vault.storage import Keyring

if TYPE_CHECKING:
    from datetime import datetime

    from verifier.core.settings import Settings
    from verifier.models import Order, VerificationCase


SUBJECTS = {
    "invitation": N_("Please confirm your order {ref} with {shop}"),
    "reminder": N_("Reminder: please confirm your order {ref} with {shop}"),
    "resubmission": N_("One more step for your order {ref} with {shop}"),
    "receipt": N_("We have your documents for order {ref} with {shop}"),
    "outcome": N_("The check of your order {ref} with {shop} is complete"),
}
# What a resubmission asks for, one line a document kind.
REQUESTED_LINES = {
    "card_front": N_("a new photo of the front of the card you paid with"),
    "card_back": N_("a new photo of the back of the card you paid with"),
    "photo_id": N_("a new photo ID (driving licence or passport)"),
    "proof_of_address": N_("a new proof of address (a utility bill or bank statement)"),
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
def _environment(locale: str) -> Environment:
    """The email templates with the gettext callables of one locale installed."""
    env = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates" / "portal" / "email"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True  # as the portal's pages and babel.cfg
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


def email_locale(order: Order) -> str:
    """The language of an order's emails: the order's own locale when supported, else English.

    (An email has no browser to ask; the portal pages also follow Accept-Language.)
    """
    return supported_locale(order.locale) or DEFAULT_LOCALE


def _brand_context(brand: Brand, locale: str) -> dict[str, Any]:
    return {"shop": brand.shop_name, "brand": brand, "html_lang": locale}


def requirement_lines(requirement: str) -> list[str]:
    """The documents asked for, in words a customer understands (msgids: translate to show)."""
    if requirement == CARD_OR_ID:
        return [
            N_("a photo of the front and the back of the card you paid with, or"),
            N_(
                "a photo ID (driving licence or passport) and a recent proof of address "
                "(a utility bill or bank statement)"
            ),
        ]
    return [
        N_("a photo of the front and the back of the card you paid with"),
        N_("a photo ID (driving licence or passport)"),
        N_("a recent proof of address (a utility bill or bank statement)"),
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
    brand: Brand | None = None,
) -> RenderedEmail:
    """Render the text and HTML parts of an invitation, reminder or resubmission email.

    `url` is the customer's upload link and `expires_at` its deadline; the email is in the
    order's language, with its times in the order's time zone (else UTC, said so).
    """
    brand = brand or Brand(shop_name=portal.shop_name)
    locale = email_locale(order)
    env = _environment(locale)
    gettext = translations(locale).gettext
    context = {
        **_brand_context(brand, locale),
        "kind": kind,
        "reference": order.external_id,
        "placed_on": format_day(order.placed_at, locale, order.timezone),
        "amount": format_money(order.amount_minor, order.currency, locale),
        "customer_name": order.customer_name,
        "url": url,
        # Said in the email, so a careful customer can check where the button leads.
        "link_host": urlsplit(url).hostname or url,
        "deadline": format_when(expires_at, locale, order.timezone),
        # A resubmission (and a reminder during one) asks only for the documents sent back.
        "requirements": [
            gettext(line)
            for line in (
                requested_lines(case.resubmission_kinds or [])
                if case.resubmission_kinds
                and (kind == "resubmission" or case.status == "resubmission_requested")
                else requirement_lines(settings.document_requirement)
            )
        ],
        "resubmission_message": case.resubmission_message or "",
        # A rule, not the draw, may have picked the order: only say "at random" when true.
        "at_random": case.reason == "random",
    }
    return RenderedEmail(
        subject=gettext(SUBJECTS[kind]).format(ref=order.external_id, shop=brand.shop_name),
        text=env.get_template("customer.txt").render(context),
        html=env.get_template("customer.html").render(context),
    )


def render_receipt(
    kind: str,
    *,
    case: VerificationCase,
    order: Order,
    portal: PortalContext,
    brand: Brand | None = None,
) -> RenderedEmail:
    """Render a receipt ("receipt": documents arrived, "outcome": the check is complete).

    No link and no personal details: the shop, the order reference and what happened.
    """
    brand = brand or Brand(shop_name=portal.shop_name)
    locale = email_locale(order)
    env = _environment(locale)
    context = {
        **_brand_context(brand, locale),
        "kind": kind,
        "reference": order.external_id,
        "status": case.status,
    }
    subject = translations(locale).gettext(SUBJECTS[kind])
    return RenderedEmail(
        subject=subject.format(ref=order.external_id, shop=brand.shop_name),
        text=env.get_template("receipt.txt").render(context),
        html=env.get_template("receipt.html").render(context),
    )
