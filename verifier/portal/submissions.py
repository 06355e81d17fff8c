"""A customer's documents for a case: store an upload, replace it, submit the set, or decline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit import record_event
from verifier.core.cases import change_status
from verifier.core.i18n import N_
from verifier.core.settings import REQUIRED_SETS, Settings, is_complete
from verifier.errors import ConflictError, UploadRejected
from verifier.models import (
    AWAITING_DOCUMENTS,
    DECLINED,
    DOCUMENT_KINDS,
    IN_REVIEW,
    RESUBMISSION_REQUESTED,
    Document,
    Order,
    VerificationCase,
    new_uuid,
)
from verifier.portal.documents import ProcessedUpload
from verifier.vault.storage import Keyring, StoredBlob, delete_blob, put_blob

OPEN_FOR_UPLOAD = (AWAITING_DOCUMENTS, RESUBMISSION_REQUESTED)
CARD_KINDS = ("card_front", "card_back")
# How a card photo's numbers were covered (Document.cover); PENDING does not count yet.
PENDING_COVER = "pending"
COVER_STATES = (PENDING_COVER, "painted", "preview", "declared")
KIND_LABELS = {
    "card_front": N_("Front of the card"),
    "card_back": N_("Back of the card"),
    "photo_id": N_("Photo ID (driving licence or passport)"),
    "proof_of_address": N_("Proof of address"),
}


COVER_REQUIRED = {
    "card_front": N_(
        "Please confirm that all but the last four digits of the card number are covered "
        "(tick the box), then upload the photo again."
    ),
    "card_back": N_(
        "Please confirm that the security code and all but the last four digits are covered "
        "(tick the box), then upload the photo again."
    ),
}


@dataclass
class PortalState:
    """What the portal page shows: which kinds are asked for and which are in."""

    case: VerificationCase
    order: Order
    requirement: str
    uploaded: dict[str, list[Document]] = field(default_factory=dict)
    requested_kinds: tuple[str, ...] = ()

    @property
    def ready_kinds(self) -> set[str]:
        """Kinds that are in and usable: a card photo counts once its numbers are covered."""
        return {
            kind
            for kind, docs in self.uploaded.items()
            if kind not in CARD_KINDS or all(d.cover not in (None, PENDING_COVER) for d in docs)
        }

    @property
    def waiting_for_cover(self) -> list[str]:
        return [kind for kind in self.uploaded if kind not in self.ready_kinds]

    @property
    def complete(self) -> bool:
        present = self.ready_kinds
        if self.requested_kinds:
            return set(self.requested_kinds) <= present
        return is_complete(self.requirement, present)

    @property
    def open_for_upload(self) -> bool:
        return self.case.status in OPEN_FOR_UPLOAD


def load_case(session: Session, case_id: int, *, for_update: bool = False) -> VerificationCase:
    """The case with its order, fresh from the database (not a copy the session read earlier,
    which a concurrent request may have changed since); `for_update` locks the row on PostgreSQL
    for the transaction."""
    query = (
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(selectinload(VerificationCase.order))
        .execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update()
    case = session.scalar(query)
    if case is None:
        raise ConflictError(N_("This verification no longer exists."))
    return case


def active_documents(session: Session, case_id: int) -> list[Document]:
    return list(
        session.scalars(
            select(Document)
            .where(Document.case_id == case_id, Document.status == "active")
            .order_by(Document.kind, Document.page)
        )
    )


def portal_state(session: Session, case_id: int, settings: Settings) -> PortalState:
    case = load_case(session, case_id)
    state = PortalState(
        case=case,
        order=case.order,
        requirement=settings.document_requirement,
        requested_kinds=tuple(case.resubmission_kinds or ())
        if case.status == RESUBMISSION_REQUESTED
        else (),
    )
    for doc in active_documents(session, case_id):
        if state.requested_kinds and (
            doc.kind not in state.requested_kinds or doc.round < case.resubmission_count
        ):
            # A resubmission shows only the documents asked for, and only new uploads of them:
            # the one that was sent back cannot answer it.
            continue
        state.uploaded.setdefault(doc.kind, []).append(doc)
    return state


def allowed_kinds(state: PortalState) -> tuple[str, ...]:
    """The kinds the customer may upload now: the requested ones during a resubmission."""
    if state.requested_kinds:
        return state.requested_kinds
    kinds = set().union(*REQUIRED_SETS[state.requirement])
    return tuple(k for k in DOCUMENT_KINDS if k in kinds)


def check_can_upload(
    session: Session, case: VerificationCase, kind: str, settings: Settings
) -> None:
    """Raise UploadRejected (status 409/429) unless the case takes this kind of document now."""
    if case.status not in OPEN_FOR_UPLOAD:
        raise UploadRejected(
            N_("Your documents have already been sent; nothing more is needed now."),
            code="case_closed",
        )
    state_kinds = allowed_kinds(portal_state(session, case.id, settings))
    if kind not in state_kinds:
        raise UploadRejected(
            N_("This document is not needed for your order."), code="kind_not_needed"
        )
    count = session.scalar(select(func.count(Document.id)).where(Document.case_id == case.id))
    assert count is not None  # COUNT with no GROUP BY returns one row
    if count >= settings.max_uploads_per_case:
        raise UploadRejected(
            N_(
                "You have uploaded the most files we accept for one order. "
                "Please contact the shop if you still need to send something."
            ),
            code="too_many_uploads",
        )


def encrypt_pages(
    processed: ProcessedUpload, *, uploads_dir: Path, keyring: Keyring
) -> list[tuple[str, StoredBlob]]:
    """Encrypt every page to its own blob before any row exists; returns (document id, blob)."""
    written: list[tuple[str, StoredBlob]] = []
    try:
        for page in processed.pages:
            doc_id = new_uuid()
            written.append((doc_id, put_blob(uploads_dir, keyring, doc_id, page.data)))
    except Exception:
        discard_blobs(uploads_dir, [blob for _, blob in written])
        raise
    return written


def discard_blobs(uploads_dir: Path, blobs: list[StoredBlob]) -> None:
    for blob in blobs:
        delete_blob(uploads_dir, blob.blob_name)


def store_upload(
    session: Session,
    case_id: int,
    kind: str,
    processed: ProcessedUpload,
    blobs: list[tuple[str, StoredBlob]],
    *,
    settings: Settings,
    now: datetime,
    cover: str | None = None,
) -> tuple[list[Document], list[str]]:
    """Record the encrypted pages as the case's `kind` document, replacing an earlier one.

    `cover` says how a card photo's numbers were covered (COVER_STATES); required for cards.
    Returns the new documents and the blob names of replaced ones, to delete after commit.
    """
    case = load_case(session, case_id, for_update=True)
    check_can_upload(session, case, kind, settings)
    if kind in CARD_KINDS and cover not in COVER_STATES:
        raise UploadRejected(COVER_REQUIRED[kind], code="cover_required")
    if kind not in CARD_KINDS:
        cover = None
    replaced = session.scalars(
        select(Document).where(
            Document.case_id == case_id, Document.kind == kind, Document.status == "active"
        )
    ).all()
    stale_blobs = []
    for old in replaced:
        old.status = "replaced"
        old.wrapped_key = None  # crypto-shred now; the blob file goes after commit
        if old.blob_name:
            stale_blobs.append(old.blob_name)
        old.blob_name = None
        old.purged_at = now
    upload_id = new_uuid()
    docs = []
    for (doc_id, blob), page_no, page in zip(
        blobs, range(1, len(blobs) + 1), processed.pages, strict=True
    ):
        doc = Document(
            id=doc_id,
            case_id=case_id,
            kind=kind,
            upload_id=upload_id,
            page=page_no,
            blob_name=blob.blob_name,
            wrapped_key=blob.wrapped_key,
            key_id=blob.key_id,
            content_type=page.content_type,
            source_type=processed.source_type,
            width=page.width,
            height=page.height,
            byte_size=len(page.data),
            cover=cover,
            round=case.resubmission_count,
            quality_warnings=[
                {"code": w.code, "message": w.message}
                for w in processed.warnings
                if getattr(w, "page", page_no) in (None, page_no)
            ],
            auto_masked=page.masked,
            created_at=now,
        )
        session.add(doc)
        docs.append(doc)
    session.flush()
    record_event(
        session, "document.uploaded", actor_type="customer", actor_id=f"case:{case_id}",
        target_type="case", target_id=case_id,
        details={"kind": kind, "pages": len(docs), "source_type": processed.source_type,
                 "replaced": len(replaced), "auto_masked": sum(d.auto_masked for d in docs),
                 "cover": cover},
        now=now,
    )  # fmt: skip
    return docs, stale_blobs


def submit_documents(session: Session, case_id: int, *, settings: Settings, now: datetime) -> bool:
    """Send the uploaded set for review; False when it was already sent (a double submit)."""
    case = load_case(session, case_id, for_update=True)
    if case.status not in OPEN_FOR_UPLOAD:
        return False
    state = portal_state(session, case_id, settings)
    if not state.complete:
        if state.waiting_for_cover:
            raise ConflictError(
                N_(
                    "Cover the numbers on your card photo first (paint over them on the preview "
                    "and confirm), then send again."
                )
            )
        raise ConflictError(N_("Some documents are still missing; add them, then send again."))
    case.submitted_at = now
    change_status(session, case, IN_REVIEW, actor_type="customer", actor_id=f"case:{case_id}",
                  now=now, details={"documents": sorted(state.uploaded)})  # fmt: skip
    return True


def decline_verification(session: Session, case_id: int, reason: str, *, now: datetime) -> bool:
    """Record that the customer would rather not verify; the shop hears it by webhook."""
    case = load_case(session, case_id, for_update=True)
    if case.status == DECLINED:
        return False
    if case.status not in OPEN_FOR_UPLOAD:
        raise ConflictError(N_("Your documents have already been sent, so this can't be changed."))
    case.declined_reason = reason.strip()[:1000] or None
    change_status(session, case, DECLINED, actor_type="customer", actor_id=f"case:{case_id}",
                  now=now)  # fmt: skip
    return True
