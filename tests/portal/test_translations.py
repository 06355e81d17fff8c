"""The customer's language: complete catalogues, and every customer page and email rendered in
each language with no string left in English.

Two independent checks on each rendering: no English msgid of the catalogue shows through
(a string that was wrapped but not translated), and no text the English rendering shows
reappears unchanged (a string that was never wrapped at all).
"""

from __future__ import annotations

import gettext
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select, update

from tests.factories import order_payload
from tests.portal_helpers import flag_everything, jpeg_bytes, token_path, upload
from verifier.config import PROJECT_ROOT
from verifier.core.brand import Brand
from verifier.core.i18n import LOCALES, TRANSLATIONS_DIR, format_money, format_when
from verifier.core.settings import Settings
from verifier.models import Order, VerificationCase
from verifier.portal.customer_mail import (
    PortalContext,
    render_customer_email,
    render_receipt,
)
from verifier.vault.storage import Keyring

OTHERS = [locale for locale in LOCALES if locale != "en"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
KEYWORDS = {"N_": None, "_": None, "gettext": None, "ngettext": (1, 2)}
# Text that is the same in every language: names, references, addresses, formats.
SAME_EVERYWHERE = {
    "Test Shop",
    "Alice Meyer",
    "Verifier",
    "PDF",
    "JPEG",
    "Blurred.",
    "Please send it again.",
}  # the last two: the reviewer's own words


def _extracted() -> set[str]:
    """Every msgid the sources use, extracted afresh (as `make messages` does)."""
    method_map = [
        ("verifier/portal/**.py", "python"), ("verifier/core/i18n.py", "python"),
        ("templates/portal/**.html", "jinja2"), ("templates/portal/email/**.txt", "jinja2"),
    ]  # fmt: skip
    options = {"templates/**": {"trimmed": "true"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(PROJECT_ROOT), method_map, options, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _catalogue(locale: str):
    with open(TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("locale", OTHERS)
def test_every_message_the_customer_can_see_is_translated(locale):
    catalogue = _catalogue(locale)
    extracted = _extracted()
    assert len(extracted) > 150
    missing = sorted(m for m in extracted if m not in catalogue)
    assert not missing, f"{locale}: not in the catalogue (run make messages): {missing[:5]}"
    stale = sorted(str(m.id) for m in catalogue if m.id and
                   (m.id[0] if isinstance(m.id, tuple) else m.id) not in extracted)  # fmt: skip
    assert not stale, f"{locale}: no longer used (run make messages): {stale[:5]}"
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings) and not message.fuzzy, f"{locale}: untranslated {ids[0]!r}"
        wanted = sorted(PLACEHOLDER.findall(ids[0]))
        for string in strings:
            assert sorted(set(PLACEHOLDER.findall(string))) == sorted(set(wanted)), (
                f"{locale}: placeholders differ in {ids[0]!r}"
            )


@pytest.mark.parametrize("locale", OTHERS)
def test_the_compiled_catalogue_matches_its_source(locale):
    """The .mo files are committed: a .po edited without `make translations` fails here."""
    with open(TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    for message in _catalogue(locale):
        if message.id and not isinstance(message.id, tuple):
            assert compiled.gettext(message.id) == message.string, message.id


# --- rendering ---------------------------------------------------------------------------------


class _Text(HTMLParser):
    """The visible text of a page: its text runs and the attributes people read."""

    def __init__(self):
        super().__init__()
        self.runs: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("alt", "aria-label", "title", "placeholder") and value:
                self.runs.append(value)
            if name == "value" and tag == "input" and dict(attrs).get("type") == "submit":
                self.runs.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.runs.append(" ".join(data.split()))


def visible(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.runs


def _english_fragments() -> set[str]:
    """The English msgids cut at placeholders and tags: long enough to be unmistakable."""
    fragments = set()
    for message in _catalogue("de"):
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            for part in re.split(r"%\(\w+\)[sd]|\{\w+\}|<[^>]+>", text):
                if len(part.strip()) >= 16:
                    fragments.add(" ".join(part.split()))
    return fragments


def assert_translated(rendered: str, english: str, where: str, *, html: bool = True) -> None:
    runs = visible(rendered) if html else [" ".join(rendered.split())]
    text = " ".join(runs)
    leaked = sorted(f for f in _english_fragments() if f in text)
    assert not leaked, f"{where}: English left in: {leaked[:3]}"
    if html:
        same = {run for run in set(visible(english)) & set(runs)
                if " " in run and len(re.findall(r"[A-Za-z]{3,}", run)) >= 2
                and run not in SAME_EVERYWHERE
                and not any(run.startswith(s) for s in SAME_EVERYWHERE)}  # fmt: skip
        assert not same, f"{where}: shown in English: {sorted(same)[:3]}"


def _open_order(client, auth, db_session, locale: str, ref: str) -> None:
    payload = order_payload(external_id=ref, locale=locale, timezone="Europe/Berlin")
    body = client.post("/api/v1/orders", json=payload, headers=auth).get_json()
    client.get(token_path(body))


def _portal_pages(app, auth, db_session, locale: str) -> dict[str, str]:
    """Every customer page of one order in `locale` (plus the pages before any link)."""
    client = app.test_client()
    ref = f"L-{locale}"
    _open_order(client, auth, db_session, locale, ref)
    pages = {"upload": client.get("/portal/").get_data(as_text=True)}
    upload(client, "photo_id", jpeg_bytes((300, 200)))  # small: a quality warning too
    pages["uploaded"] = client.get("/portal/").get_data(as_text=True)
    pages["decline"] = client.get("/portal/decline").get_data(as_text=True)
    pages["handoff"] = client.post("/portal/handoff").get_data(as_text=True)
    big = client.post("/portal/documents/photo_id", data={
        "file": (io.BytesIO(b"x" * (app.config["UPLOAD_MAX_FILE_BYTES"] + 400_000)), "big.jpg")},
        content_type="multipart/form-data")  # fmt: skip
    pages["too_large"] = big.get_data(as_text=True)
    case_id = db_session.scalar(
        select(VerificationCase.id).join(Order).where(Order.external_id == ref)
    )
    db_session.rollback()
    db_session.execute(update(VerificationCase).where(VerificationCase.id == case_id).values(
        status="resubmission_requested", resubmission_kinds=["photo_id"],
        resubmission_message="Please send it again."))  # fmt: skip
    db_session.commit()
    pages["resubmission"] = client.get("/portal/").get_data(as_text=True)
    for status in ("in_review", "approved", "rejected", "declined", "expired"):
        db_session.execute(update(VerificationCase).where(VerificationCase.id == case_id).values(
            status=status, submitted_at=datetime.now(UTC)))  # fmt: skip
        db_session.commit()
        pages[status] = client.get("/portal/").get_data(as_text=True)
    stranger = app.test_client()
    headers = {"Accept-Language": f"{locale};q=0.9, en;q=0.1"}
    pages["invalid"] = stranger.get("/u/" + "x" * 43, headers=headers).get_data(as_text=True)
    pages["session_ended"] = stranger.get("/portal/", headers=headers).get_data(as_text=True)
    return pages


@pytest.fixture
def rendered(app, auth, db_session):
    flag_everything(db_session)
    return {locale: _portal_pages(app, auth, db_session, locale) for locale in LOCALES}


def test_every_customer_page_is_in_the_customers_language(rendered):
    english = rendered["en"]
    assert len(english) == 13
    assert 'lang="en"' in english["upload"]
    for locale in OTHERS:
        for name, page in rendered[locale].items():
            assert f'lang="{locale}"' in page, f"{locale} {name}"
            assert_translated(page, english[name], f"{locale} {name}")


def test_german_pages_read_german_with_berlin_times(rendered):
    upload_page = rendered["de"]["upload"]
    assert "Bitte bestätigen Sie, dass Sie es sind" in upload_page
    assert "129,99\u00a0€" in upload_page and "(Europe/Berlin)" in upload_page
    assert "Dieser Link ist nicht gültig" in rendered["de"]["invalid"]
    assert "Wir fragen nie per E-Mail oder Telefon" in rendered["de"]["invalid"]
    assert "Erhalten" in rendered["de"]["uploaded"]
    assert "Ce lien n\u2019est pas valide" in rendered["fr"]["invalid"]
    assert "Este enlace no es válido" in rendered["es"]["invalid"]


def _order(locale: str) -> tuple[Order, VerificationCase]:
    order = Order(external_id="M-1", placed_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                  amount_minor=12999, currency="EUR", customer_name="Alice Meyer",
                  customer_email="alice@example.com", locale=locale,
                  timezone="Europe/Paris")  # fmt: skip
    case = VerificationCase(reason="random", status="awaiting_documents")
    return order, case


def _emails(app, locale: str) -> dict[str, str]:
    keyring = Keyring.from_config(app.config)
    portal = PortalContext("https://verify.example.com", "Test Shop", keyring)
    brand = Brand("Test Shop", support_email="help@shop.test")
    order, case = _order(locale)
    out = {}
    expires = datetime(2026, 12, 8, 17, 0, tzinfo=UTC)
    for kind in ("invitation", "reminder", "resubmission"):
        if kind == "resubmission":
            case.resubmission_kinds, case.resubmission_message = ["card_back"], "Blurred."
        email = render_customer_email(kind, case=case, order=order, portal=portal, brand=brand,
                                      url="https://verify.example.com/u/T", expires_at=expires,
                                      settings=Settings())  # fmt: skip
        out |= {f"{kind}.subject": email.subject, f"{kind}.txt": email.text,
                f"{kind}.html": email.html}  # fmt: skip
    for kind, status in (("receipt", "in_review"), ("outcome", "approved"),
                         ("outcome", "rejected")):  # fmt: skip
        case.status = status
        email = render_receipt(kind, case=case, order=order, portal=portal, brand=brand)
        out |= {f"{kind}-{status}.subject": email.subject, f"{kind}-{status}.txt": email.text,
                f"{kind}-{status}.html": email.html}  # fmt: skip
    return out


def test_every_email_is_in_the_orders_language(app):
    english = _emails(app, "en")
    assert "This link goes to verify.example.com." in english["invitation.txt"]
    assert "8 December 2026, 18:00 (Europe/Paris)" in english["invitation.txt"]
    for locale in OTHERS:
        emails = _emails(app, locale)
        for name, body in emails.items():
            assert_translated(body, english[name], f"{locale} {name}",
                              html=name.endswith(".html"))  # fmt: skip
            assert body != english[name], f"{locale} {name}"
    german = _emails(app, "de")
    assert "Dieser Link führt zu verify.example.com." in german["invitation.txt"]
    assert "Wir fragen nie per E-Mail oder Telefon" in german["invitation.txt"]
    assert german["invitation.subject"] == "Bitte bestätigen Sie Ihre Bestellung M-1 bei Test Shop"
    assert "8. Dezember 2026, 18:00 (Europe/Paris)" in german["invitation.txt"]
    assert "129,99\u00a0€" in german["invitation.txt"]


def test_an_unsupported_or_missing_locale_falls_back_to_english(app):
    for locale in (None, "pt-BR"):
        assert _emails(app, locale)["invitation.txt"].startswith("Hello Alice Meyer,")


def test_times_say_their_zone():
    moment = datetime(2026, 12, 2, 14, 30, tzinfo=UTC)
    assert format_when(moment, "en") == "2 December 2026, 14:30 UTC"
    assert format_when(moment, "de", "Europe/Berlin") == "2. Dezember 2026, 15:30 (Europe/Berlin)"
    assert format_when(moment, "fr", "Not/AZone") == "2 décembre 2026, 14:30 UTC"
    assert format_money(123450, "EUR", "fr") == "1\u202f234,50\u00a0€"
    assert format_money(123450, "GBP", "en") == "£1,234.50"


def test_staff_pages_stay_english_whatever_the_browser(client, admin_user, login):
    login(client, admin_user)
    page = client.get("/admin/settings/", headers={"Accept-Language": "de"})
    assert 'lang="en"' in page.get_data(as_text=True)


def test_the_order_api_takes_a_locale_and_a_time_zone(client, auth):
    bad = client.post("/api/v1/orders", headers=auth, json=order_payload(
        external_id="Z-1", locale="not a tag", timezone="Mars/Olympus"))  # fmt: skip
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["fields"]
    assert "language tag" in fields["locale"] and "IANA" in fields["timezone"]
    payload = order_payload(external_id="Z-2", locale="de_AT", timezone="Europe/Vienna")
    assert client.post("/api/v1/orders", headers=auth, json=payload).status_code == 201
    assert client.post("/api/v1/orders", headers=auth, json=payload).status_code == 200
    # Locale and zone are part of the order: the same id with another language is a conflict.
    changed = client.post("/api/v1/orders", headers=auth, json=payload | {"locale": "fr"})
    assert changed.status_code == 409


def test_the_extraction_config_names_only_customer_files():
    config = (PROJECT_ROOT / "babel.cfg").read_text()
    assert "templates/portal/" in config
    assert not re.search(r"templates/(review|staff|policy|retention|insight)", config)
    assert Path(TRANSLATIONS_DIR / "messages.pot").exists()
