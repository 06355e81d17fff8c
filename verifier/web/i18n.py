"""Flask-Babel for the customer's side: the portal speaks the customer's language, staff English.

Customer pages also get the shop's brand (verifier.core.brand) in their template context.

The portal's views put the order's own locale and time zone on `g` (portal_locale,
portal_timezone) once they know the case; before that (an invalid link, a file too large)
the browser's Accept-Language decides. Every other blueprint is English.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale
from sqlalchemy.exc import SQLAlchemyError

from verifier.core.brand import Brand, load_brand
from verifier.core.i18n import DEFAULT_LOCALE, LOCALES, TRANSLATIONS_DIR, supported_locale
from verifier.db import get_session

CUSTOMER_BLUEPRINTS = frozenset({"portal"})


def customer_locale() -> str:
    """The locale of this request: the order's, the browser's, or English."""
    if not has_request_context() or request.blueprint not in CUSTOMER_BLUEPRINTS:
        return DEFAULT_LOCALE
    return (
        supported_locale(g.get("portal_locale"))
        or request.accept_languages.best_match(LOCALES)
        or DEFAULT_LOCALE
    )


def customer_timezone() -> str:
    """The time zone Flask-Babel converts to; the portal formats times itself (core.i18n)."""
    if not has_request_context():
        return "UTC"
    return g.get("portal_timezone") or "UTC"


def init_i18n(app: Flask) -> None:
    """Install Flask-Babel with the catalogues in verifier/translations."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    Babel(app, locale_selector=customer_locale, timezone_selector=customer_timezone)
    # A msgid is the text with its line breaks and indentation folded (babel.cfg says the same).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.context_processor(customer_context)


def customer_context() -> dict[str, Any]:
    """The page's language, and on customer pages the shop's brand (header, footer, wording)."""
    context: dict[str, Any] = {"html_lang": str(get_locale() or DEFAULT_LOCALE)}
    if has_request_context() and request.blueprint in CUSTOMER_BLUEPRINTS:
        default = current_app.config["SHOP_NAME"]
        try:
            brand = load_brand(get_session(), default)
        except SQLAlchemyError:
            # The "briefly unavailable" page still renders while the database is down.
            get_session().rollback()
            brand = Brand(shop_name=default)
        context |= {"brand": brand, "shop": brand.shop_name}
    return context
