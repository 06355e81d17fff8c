"""The customer's language: which locales exist, and dates, times and amounts in their words.

Only the customer's side is translated (the portal and its emails); staff pages stay English.
The catalogues live in verifier/translations/<locale>/LC_MESSAGES/messages.po (compiled .mo
beside them, committed); `make messages` extracts and `make translations` compiles them.
No Flask here: emails are rendered by domain code, and the portal's views pass the locale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations

DEFAULT_LOCALE = "en"
LOCALES = ("en", "de", "fr", "es")
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
# The English wording is British ("driving licence"): so are its dates ("9 December 2026").
FORMAT_LOCALES = {"en": "en_GB"}


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; it is translated where it is shown."""
    return message


def supported_locale(tag: str | None) -> str | None:
    """The supported locale a language tag asks for ("de-AT" -> "de"), or None."""
    if not tag:
        return None
    try:
        language = Locale.parse(tag.replace("-", "_")).language
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    return language if language in LOCALES else None


def valid_timezone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone of that name ("Europe/Berlin"), or None."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of a supported locale (English: the msgids themselves)."""
    if locale == DEFAULT_LOCALE or locale not in LOCALES:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale])


def format_when(moment: datetime, locale: str, timezone: str | None = None) -> str:
    """A date and time as the customer reads it, in their time zone when known, else in UTC.

    The zone is always stated: "2 December 2026, 14:30 UTC", "2. Dezember 2026, 15:30
    (Europe/Berlin)".
    """
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    zone = valid_timezone(timezone)
    local = aware.astimezone(zone or UTC)
    date_text = format_date(local, "long", locale=FORMAT_LOCALES.get(locale, locale))
    time_text = format_time(local, "short", locale=FORMAT_LOCALES.get(locale, locale))
    label = f"({timezone})" if zone else "UTC"
    return f"{date_text}, {time_text} {label}"


def format_day(moment: datetime, locale: str, timezone: str | None = None) -> str:
    """A date alone ("2 December 2026"), on the customer's calendar when their zone is known."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    local = aware.astimezone(valid_timezone(timezone) or UTC)
    return format_date(local, "long", locale=FORMAT_LOCALES.get(locale, locale))


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """An amount in minor units as the customer's locale writes it ("1.234,50 €")."""
    return format_currency(
        Decimal(amount_minor) / 100, currency, locale=FORMAT_LOCALES.get(locale, locale)
    )
