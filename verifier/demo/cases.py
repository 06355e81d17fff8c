"""Demo cases at every stage: documents uploaded (synthetic, already masked card images),
some waiting for review, some decided, so a fresh `make run` shows a working queue."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from verifier.core.checklist import CHECKS
from verifier.core.policies import current_settings
from verifier.models import AWAITING_DOCUMENTS, Order, VerificationCase
from verifier.portal.documents import process_upload
from verifier.portal.submissions import encrypt_pages, store_upload, submit_documents
from verifier.review.claims import claim_case
from verifier.review.decisions import approve_case, reject_case
from verifier.vault.storage import Keyring

CARD_COLOURS = [(40, 70, 140), (120, 30, 60), (30, 100, 80)]


@cache
def _card_base(side: str, colour: tuple[int, int, int]) -> Image.Image:
    """The card without its printed details; built once per side and colour."""
    w, h = 1400, 900
    grain = Image.effect_noise((w // 4, h // 4), 18).convert("RGB").resize((w, h))
    img = Image.blend(grain, Image.new("RGB", (w, h), colour), 0.75)
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((40, 40, w - 40, h - 40), radius=50, outline=(230, 230, 230), width=6)
    if side == "front":
        draw.rectangle((120, 420, 1000, 500), fill=(0, 0, 0))  # covered digits
        draw.rounded_rectangle((120, 200, 260, 300), radius=14, fill=(212, 175, 55))
    else:
        draw.rectangle((40, 120, w - 40, 240), fill=(20, 20, 20))  # magnetic stripe
        draw.rectangle((120, 330, 900, 420), fill=(245, 245, 235))  # signature strip
        draw.rectangle((920, 330, 1080, 420), fill=(0, 0, 0))  # covered security code
    return img.filter(ImageFilter.GaussianBlur(0.6))


def demo_card_image(side: str, holder: str, last4: str, rng: random.Random) -> bytes:
    """A photo-like card, number already covered as the portal asks (only the last four show)."""
    img = _card_base(side, rng.choice(CARD_COLOURS)).copy()
    if side == "front":
        draw = ImageDraw.Draw(img)
        draw.text((1030, 440), last4, fill=(255, 255, 255), font_size=56)
        draw.text((120, 700), holder.upper(), fill=(255, 255, 255), font_size=48)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def seed_demo_cases(
    session: Session,
    *,
    uploads_dir: Path,
    keyring: Keyring,
    reviewer_id: int,
    rng: random.Random,
    now: datetime,
) -> int:
    """Move older demo cases on: documents in, then decided by the demo reviewer. Commits."""
    settings = current_settings(session)
    cases = session.scalars(
        select(VerificationCase)
        .join(VerificationCase.order)
        .where(VerificationCase.status == AWAITING_DOCUMENTS, Order.source == "demo")
        .where(VerificationCase.created_at < now - timedelta(days=2))
        .options(selectinload(VerificationCase.order))
        .order_by(VerificationCase.created_at)
    ).all()
    moved = 0
    for case in cases:
        if rng.random() < 0.25:
            continue  # this customer never answered: the link will expire
        order = case.order
        uploaded_at = case.created_at + timedelta(hours=rng.randint(2, 30))
        for kind, side in (("card_front", "front"), ("card_back", "back")):
            processed = process_upload(
                demo_card_image(side, order.cardholder_name, order.card_last4, rng)
            )
            blobs = encrypt_pages(processed, uploads_dir=uploads_dir, keyring=keyring)
            # The demo's card images show only the last four digits: covered, as if painted.
            store_upload(session, case.id, kind, processed, blobs, settings=settings,
                         now=uploaded_at, cover="painted")  # fmt: skip
        submit_documents(session, case.id, settings=settings, now=uploaded_at)
        moved += 1
        if case.created_at > now - timedelta(days=9):
            continue  # recent ones wait in the queue
        decided_at = uploaded_at + timedelta(minutes=rng.randint(20, 600))
        claim_case(session, case.id, reviewer_id, decided_at - timedelta(minutes=4), settings)
        answers = dict.fromkeys(CHECKS, "yes")
        answers["id_name_matches"] = answers["id_not_expired"] = "not_applicable"
        answers["address_matches_and_recent"] = "not_applicable"
        if rng.random() < 0.15:
            answers["card_name_matches"] = "no"
            reject_case(session, case.id, reviewer_id, decided_at, settings,
                        reason_code="documents_do_not_match",
                        note="Name on the card differs from the order.",
                        failed_checks=["card_name_matches"], rng=rng,
                        checklist=answers)  # fmt: skip
        else:
            approve_case(session, case.id, reviewer_id, decided_at, settings,
                         checklist=answers, rng=rng)  # fmt: skip
    session.commit()
    return moved
