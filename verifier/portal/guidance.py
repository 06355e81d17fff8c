"""What the upload page's script says and checks: its messages (translated here, so they reach
the customer in their language), the limits of the live camera checks, and each slot's step.

The page renders `capture_guidance(gettext)` into a `<script type="application/json">` block
(the strict CSP allows no inline script); portal.js reads it. No Flask here: the caller passes
the translating function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from verifier.core.i18n import N_

# Placeholders are `%(name)s`, as in the templates, so the catalogue check sees them; the
# script fills them in.
MESSAGES: dict[str, str] = {
    # The live checks before a photo is taken: the first that fails is shown.
    "starting": N_("Starting the camera…"),
    "too_dark": N_("Too dark: move to more light."),
    "too_bright": N_("Too bright: move out of direct light."),
    "glare": N_("Glare on the card: tilt it a little or move away from the lamp."),
    "blurry": N_("Blurred: hold still and let the camera focus."),
    "ready": N_("Looks good. Take the photo now."),
    "auto_soon": N_("Looks good. Hold still: taking the photo…"),
    "camera_refused": N_(
        "We could not use your camera here (it was refused or is busy). Use “Choose a file”, "
        "or “Take a photo” again to use your phone's camera app."
    ),
    "camera_missing": N_(
        "This browser cannot show the camera in the page. Use “Take a photo” to open your "
        "camera app, or “Choose a file”."
    ),
    "captured": N_("Photo taken."),
    # What the camera view asks for, by the frame's document.
    "frame_card_front": N_(
        "Cover all but the last four digits with a finger or paper, then fit the card in the frame."
    ),
    "frame_card_back": N_(
        "Cover the number (all but its last four digits) and the security code, then fit the "
        "card in the frame."
    ),
    "frame_photo_id": N_("Fit the whole ID in the frame, all four corners visible."),
    "frame_proof_of_address": N_("Fit the whole page in the frame, flat and straight."),
    # Upload and covering, as the page updates itself without a reload.
    "upload_covered": N_("Upload covered photo"),
    "checking": N_("Checking your file…"),
    "received": N_("Received. You can replace it below."),
    "received_pages": N_("Received (%(pages)s pages). You can replace it below."),
    "needs_cover": N_(
        "Received, but not yet covered. Paint over the numbers on the picture below, then confirm."
    ),
    "page_alt": N_("%(document)s, page %(page)s"),
    "cover_page_label": N_(
        "Page %(page)s of your card photo: drag, or use the arrow keys and Enter, to cover numbers"
    ),
    "upload_failed": N_("The upload did not work (error %(status)s). Please try again."),
    "cover_failed": N_("That did not work (error %(status)s). Please try again."),
    "interrupted": N_(
        "The connection was interrupted. Please check your connection and try again."
    ),
    "tick_covered": N_("Please tick the box to confirm the numbers are covered."),
    "choose_first": N_("Choose a file or take a photo first."),
    "complete": N_("Everything needed is here. Send it for review."),
    "cover_then_send": N_(
        "Cover the numbers on your card photo and confirm, then send it for review."
    ),
    "add_documents": N_("Add the documents above, then send them for review."),
    "elsewhere_new": N_("New uploads arrived from your other device; updating this page…"),
    "elsewhere_sent": N_("Your documents were sent from your other device."),
    # The desktop's QR page, as the phone sends.
    "handoff_sent": N_(
        "Your phone has sent the documents. Thank you: there is nothing more to do here."
    ),
    "handoff_status_link": N_("See the status of your verification"),
    "handoff_documents": N_(
        "Received from your phone so far: %(count)s document(s). Send them for review on the "
        "phone when all are in."
    ),
    "handoff_photo": N_(
        "Received from your phone so far: a photo. Send it for review on the phone when all are in."
    ),
}

# Limits of the live checks, on the framed part of a preview frame scaled to CHECK_WIDTH
# pixels wide: mean luma (0-255), the share of near-white pixels (glare), and the variance
# of a 4-neighbour Laplacian (sharpness). A photo may still be taken when a check fails;
# auto-capture waits until all pass for HOLD_MS.
CHECKS: dict[str, float] = {
    "check_width": 240,
    "min_luma": 60,
    "max_luma": 225,
    "glare_luma": 250,
    "max_glare": 0.03,
    "min_sharpness": 60,
    "hold_ms": 1000,
    "interval_ms": 200,
}

# The frame drawn over the camera view: width / height, for a card (ID-1, 85.6 x 54 mm) or a
# page (A4 portrait).
FRAMES: dict[str, float] = {"card": 85.6 / 54.0, "page": 210 / 297}
FRAME_OF_KIND = {"card_front": "card", "card_back": "card", "photo_id": "card",
                 "proof_of_address": "page"}  # fmt: skip
# The example pictures shown beside each slot (files under static/examples/).
EXAMPLES = {"card_front": "card-front-covered.svg", "card_back": "card-back-covered.svg",
            "photo_id": "photo-id.svg", "proof_of_address": "proof-of-address.svg"}  # fmt: skip


def capture_guidance(translate: Callable[[str], str]) -> dict[str, object]:
    """The JSON the upload page hands its script: messages in the customer's language, limits."""
    return {
        "messages": {key: translate(message) for key, message in MESSAGES.items()},
        "checks": CHECKS,
        "frames": {kind: FRAMES[frame] for kind, frame in FRAME_OF_KIND.items()},
    }


def slot_steps(
    kinds: Sequence[str], required_sets: Iterable[Iterable[str]]
) -> dict[str, tuple[int, int]]:
    """Each kind's (step, steps) within the set of documents it belongs to, in page order.

    With "card or ID" the card's two photos are steps 1-2 of 2 and the ID's two documents
    steps 1-2 of 2 again: the customer sends one set, not four documents.
    """
    steps: dict[str, tuple[int, int]] = {}
    for required in required_sets:
        members = [kind for kind in kinds if kind in set(required)]
        for number, kind in enumerate(members, start=1):
            steps.setdefault(kind, (number, len(members)))
    return steps


def upload_page_guidance(
    kinds: Sequence[str], required_sets: Iterable[Iterable[str]], translate: Callable[[str], str]
) -> dict[str, object]:
    """What the upload page adds to its template: the script's guidance, steps and examples."""
    return {
        "guidance": capture_guidance(translate),
        "steps": slot_steps(kinds, required_sets),
        "examples": {kind: EXAMPLES[kind] for kind in kinds},
    }
