"""The upload page's script guidance: translated messages, check limits, and slot steps."""

from __future__ import annotations

import json
import re

from tests.factories import order_payload
from tests.portal_helpers import flag_everything, token_path
from verifier.config import PROJECT_ROOT
from verifier.core.i18n import translations
from verifier.core.settings import REQUIRED_SETS
from verifier.portal.guidance import (
    CHECKS,
    EXAMPLES,
    MESSAGES,
    capture_guidance,
    slot_steps,
    upload_page_guidance,
)

GUIDANCE_BLOCK = r'<script type="application/json" id="portal-guidance">(.*?)</script>'
PLACEHOLDER = re.compile(r"%\(\w+\)s")
KINDS = ("card_front", "card_back", "photo_id", "proof_of_address")


def test_messages_come_out_in_the_customers_language():
    english = capture_guidance(lambda message: message)
    german = capture_guidance(translations("de").gettext)
    assert english["messages"]["too_dark"] == "Too dark: move to more light."
    assert german["messages"]["too_dark"] == "Zu dunkel: Gehen Sie an einen helleren Ort."
    assert set(german["messages"]) == set(MESSAGES)
    for locale in ("de", "fr", "es"):
        translated = capture_guidance(translations(locale).gettext)["messages"]
        # "%(document)s, page %(page)s" reads the same in French.
        same = [key for key, text in translated.items()
                if text == MESSAGES[key] and (locale, key) != ("fr", "page_alt")]  # fmt: skip
        assert not same, f"{locale}: untranslated {same}"
        for key, text in translated.items():  # the script fills these in
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(MESSAGES[key]))


def test_the_guidance_is_plain_json_with_sane_limits():
    guidance = capture_guidance(lambda message: message)
    assert json.loads(json.dumps(guidance)) == guidance
    assert 0 < CHECKS["min_luma"] < CHECKS["max_luma"] < CHECKS["glare_luma"] <= 255
    assert 0 < CHECKS["max_glare"] < 0.2 and CHECKS["hold_ms"] >= 500
    frames = guidance["frames"]
    assert frames["card_front"] > 1.5 and frames["proof_of_address"] < 1  # landscape card, A4 page
    for name in EXAMPLES.values():
        assert (PROJECT_ROOT / "verifier" / "static" / "examples" / name).is_file()


def test_each_document_set_counts_its_own_steps():
    either = slot_steps(KINDS, REQUIRED_SETS["card_or_id"])
    assert either == {"card_front": (1, 2), "card_back": (2, 2),
                      "photo_id": (1, 2), "proof_of_address": (2, 2)}  # fmt: skip
    everything = slot_steps(KINDS, REQUIRED_SETS["all"])
    assert [everything[k] for k in KINDS] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert slot_steps(("card_back",), [["card_back"]]) == {"card_back": (1, 1)}
    page = upload_page_guidance(("card_back",), [["card_back"]], lambda message: message)
    assert page["steps"] == {"card_back": (1, 1)}
    assert page["examples"] == {"card_back": "card-back-covered.svg"}


def test_the_upload_page_carries_the_guidance_and_the_steps_in_its_language(
    client, auth, db_session
):
    flag_everything(db_session)
    body = client.post("/api/v1/orders", json=order_payload(external_id="G-1", locale="fr"),
                       headers=auth).get_json()  # fmt: skip
    client.get(token_path(body))
    page = client.get("/portal/").get_data(as_text=True)
    found = re.search(GUIDANCE_BLOCK, page, re.S)
    assert found, "no guidance block"
    guidance = json.loads(found.group(1))
    assert guidance["messages"]["glare"].startswith("Reflet sur la carte")
    assert guidance["checks"] == CHECKS
    assert page.count("Étape 1 sur 2") == 2 and page.count("Étape 2 sur 2") == 2
    assert "examples/card-front-covered.svg" in page and 'id="camera"' in page
    # The QR page's script speaks the customer's language too.
    qr_page = client.post("/portal/handoff").get_data(as_text=True)
    found = re.search(GUIDANCE_BLOCK, qr_page, re.S)
    assert found, "no guidance block on the QR page"
    assert json.loads(found.group(1))["messages"]["handoff_sent"].startswith("Votre téléphone")
