"""Documents as staff meet them: decrypting one for viewing, and the PCI erase of a card image.

PCI DSS forbids keeping a card's security code after authorisation, even encrypted, and a
full card number must be unreadable. A reviewer who sees either erases the image at once:
the blob goes from disk before the transaction even commits, the wrapped data key goes from
the row (crypto-shredding), and the customer is asked for a masked photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.core.settings import Settings
from verifier.errors import ConflictError, NotFoundError, ValidationError, VerifierError
from verifier.models import IN_REVIEW, RESUBMISSION_REQUESTED, Document, VerificationCase
from verifier.review.decisions import Reopen, check_resubmission_allowed, send_back
from verifier.vault.storage import Keyring, delete_blob, open_document

ERASE_REASONS: dict[str, str] = {
    "security_code_visible": "The security code (CVV) is visible",
    "full_card_number_visible": "More than the last four digits of the card number are visible",
}
# What the case page says caused an early erasure (documents.erase_reason): a reviewer's
# PCI erase names what was visible; "customer_request" is set by retention.erasure.
ERASED_BECAUSE: dict[str, str] = {
    "security_code_visible": "a reviewer erased it because the card's security code was visible",
    "full_card_number_visible": "a reviewer erased it because more than the last four digits "
    "of the card number were visible",
    "customer_request": "erased at the customer's request (right to erasure), with their "
    "other documents and personal details",
}
CARD_KINDS = ("card_front", "card_back")
VIEWABLE = ("active", "replaced")
# Sent to the customer with the new link; fixed, so it can never carry what the image showed.
MASKED_PHOTO_MESSAGE = (
    "For your security we deleted the photo of your card that you sent: it showed more than "
    "we may keep. Please send a new photo with every digit covered except the last four, and "
    "with the three- or four-digit security code covered too. The upload page's masking tool "
    "lets you paint over them before the photo leaves your device."
)


@dataclass(frozen=True)
class ErasedResult:
    case: VerificationCase
    pages: int
    resubmission_requested: bool  # False when the case could not be sent back (see message)
    message: str


def view_document(
    session: Session,
    document_id: str,
    staff_id: int,
    now: datetime,
    *,
    uploads_dir: Path,
    keyring: Keyring,
) -> tuple[Document, bytes]:
    """Decrypt a document for a reviewer and audit the view; raises NotFoundError if gone."""
    document = session.get(Document, document_id)
    if document is None or document.status not in VIEWABLE or not document.blob_name:
        raise NotFoundError("There is no such document.")
    # A viewable document keeps its key until its blob is gone (shred, then delete).
    assert document.wrapped_key is not None and document.key_id is not None
    data = open_document(
        uploads_dir, keyring, document.id, document.blob_name, document.wrapped_key,
        document.key_id,
    )  # fmt: skip
    record_event(
        session, "document.viewed", actor_type="staff", actor_id=staff_id,
        target_type="document", target_id=document.id,
        details={"case": document.case_id, "kind": document.kind, "page": document.page},
        now=now,
    )  # fmt: skip
    return document, data


def erase_document(
    session: Session,
    document_id: str,
    staff_id: int,
    now: datetime,
    uploads_dir: Path,
    reason_kind: str,
    *,
    settings: Settings,
    reopen: Reopen,
) -> ErasedResult:
    """Erase a card image (every page of its upload) at once and ask for a masked one.

    Deletes the blobs and the wrapped keys; the audit event names the reason only, never
    digits. Raises ValidationError for an unknown reason, NotFoundError, ConflictError for a
    document that is not a card image.
    """
    if reason_kind not in ERASE_REASONS:
        raise ValidationError("Choose what is visible.", {"reason_kind": "Choose a reason."})
    document = session.get(Document, document_id)
    if document is None or document.status in ("erased", "purged"):
        raise NotFoundError("There is no such document.")
    if document.kind not in CARD_KINDS:
        raise ConflictError("Only card images are erased this way.")
    case = session.scalars(
        select(VerificationCase)
        .where(VerificationCase.id == document.case_id)
        .options(selectinload(VerificationCase.order))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    # Another reviewer may have erased it while this one waited for the case lock.
    session.refresh(document)
    if document.status in ("erased", "purged"):
        raise NotFoundError("There is no such document.")
    pages = session.scalars(
        select(Document).where(
            Document.upload_id == document.upload_id, Document.status.not_in(("erased", "purged"))
        )
    ).all()
    # An image the customer has since replaced needs no new upload, only the erase.
    was_active = document.status == "active"
    for page in pages:
        if page.blob_name:
            delete_blob(uploads_dir, page.blob_name)
        page.blob_name = None
        page.wrapped_key = None
        page.key_id = None
        page.status = "erased"
        page.erased_at = now
        page.erase_reason = reason_kind
    session.flush()
    record_event(
        session, "document.erased", actor_type="staff", actor_id=staff_id,
        target_type="document", target_id=document.id,
        details={"case": case.id, "kind": document.kind, "reason": reason_kind,
                 "pages": len(pages)},
        now=now,
    )  # fmt: skip
    if not was_active:
        return ErasedResult(case, len(pages), False, "The earlier image was erased.")
    # The erase stands even if asking the customer again fails (say, the email cannot be
    # rendered): the savepoint undoes only the request.
    try:
        with session.begin_nested():
            requested, message = _ask_again(
                session, case, document.kind, staff_id, now, settings, reopen
            )
    except VerifierError as exc:
        requested, message = False, f"The image was erased, but: {exc.message}"
    return ErasedResult(case, len(pages), requested, message)


def _ask_again(
    session: Session,
    case: VerificationCase,
    kind: str,
    staff_id: int,
    now: datetime,
    settings: Settings,
    reopen: Reopen,
) -> tuple[bool, str]:
    """Ask the customer for a masked photo of `kind`, when the case can still go back."""
    if case.status == RESUBMISSION_REQUESTED:
        # Already waiting for the customer (another image was erased): add this one.
        kinds = list(case.resubmission_kinds or [])
        if kind not in kinds:
            case.resubmission_kinds = [*kinds, kind]
        case.resubmission_message = MASKED_PHOTO_MESSAGE
        reopen(case)
        return True, "The image was erased; the customer was asked for a masked photo."
    if case.status != IN_REVIEW:
        return False, "The image was erased. The case is not in review, so nothing was requested."
    if case.proposed_rejection_by_id is not None:
        return False, "The image was erased. A rejection is proposed, so nothing was requested."
    try:
        check_resubmission_allowed(case, settings)
    except ConflictError as exc:
        return False, f"The image was erased. {exc.message}"
    send_back(
        session, case, [kind], MASKED_PHOTO_MESSAGE, actor_id=staff_id, now=now, reopen=reopen,
        details={"erased": True},
    )  # fmt: skip
    return True, "The image was erased; the customer was asked for a masked photo."
