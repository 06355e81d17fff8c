"""A case's evidence bundle for a chargeback dispute, as one PDF built in memory.

Document images are decrypted into memory and embedded from BytesIO: no plaintext ever
reaches the disk. The caller audits the export.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from verifier.core.audit_export import details_line
from verifier.core.checklist import CHECKS, REJECTION_REASONS
from verifier.errors import NotFoundError, StorageError
from verifier.models import AuditEvent, Order, StaffUser, VerificationCase
from verifier.retention.receipts import KIND_LABELS
from verifier.vault.storage import Keyring, read_blob

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
PAGE_WIDTH_MM = 180
MAX_IMAGE_HEIGHT_MM = 120
MAX_AUDIT_EVENTS = 500


def _load_case(session: Session, case_id: int) -> VerificationCase:
    case = session.scalar(
        select(VerificationCase)
        .where(VerificationCase.id == case_id)
        .options(
            selectinload(VerificationCase.order).selectinload(Order.decision),
            selectinload(VerificationCase.documents),
        )
    )
    if case is None:
        raise NotFoundError("There is no such case.")
    return case


def case_audit_trail(session: Session, case: VerificationCase) -> list[AuditEvent]:
    """Audit events about the case, its order and its documents, oldest first."""
    doc_ids = [d.id for d in case.documents]
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                or_(
                    and_(AuditEvent.target_type == "case", AuditEvent.target_id == str(case.id)),
                    and_(
                        AuditEvent.target_type == "order",
                        AuditEvent.target_id == case.order.external_id,
                    ),
                    and_(AuditEvent.target_type == "document", AuditEvent.target_id.in_(doc_ids)),
                )
            )
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(MAX_AUDIT_EVENTS)
        )
    )


class _Pdf:
    """A thin writer over FPDF: a Unicode font when one is installed, Latin-1 otherwise."""

    def __init__(self, title: str, now: datetime):
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_title(title)
        self.pdf.set_creator("Verifier")
        self.pdf.set_creation_date(now)
        self.family = "helvetica"
        self.unicode = False
        for folder in FONT_DIRS:
            regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
            if regular.is_file() and bold.is_file():
                self.pdf.add_font("dejavu", "", str(regular))
                self.pdf.add_font("dejavu", "B", str(bold))
                self.family, self.unicode = "dejavu", True
                break
        self.pdf.add_page()

    def _text(self, text: str) -> str:
        text = str(text)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def heading(self, text: str, size: int = 14) -> None:
        self.pdf.set_font(self.family, "B", size)
        self.pdf.ln(2)
        self.pdf.multi_cell(0, 8, self._text(text), new_x="LMARGIN", new_y="NEXT")

    def line(self, text: str, size: int = 10) -> None:
        self.pdf.set_font(self.family, "", size)
        self.pdf.multi_cell(0, 5, self._text(text), new_x="LMARGIN", new_y="NEXT")

    def field(self, label: str, value: object) -> None:
        self.line(f"{label}: {'—' if value in (None, '') else value}")

    def image(self, data: bytes, width: int, height: int) -> None:
        w: float = PAGE_WIDTH_MM
        h = w * height / max(width, 1)
        if h > MAX_IMAGE_HEIGHT_MM:
            w, h = w * MAX_IMAGE_HEIGHT_MM / h, MAX_IMAGE_HEIGHT_MM
        if self.pdf.get_y() + h > self.pdf.h - self.pdf.b_margin:
            self.pdf.add_page()
        self.pdf.image(io.BytesIO(data), w=w, h=h)
        self.pdf.ln(3)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "—"


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor // 100}.{amount_minor % 100:02d} {currency}"


def _address(address: dict[str, Any] | None) -> str:
    parts = ("name", "line1", "line2", "city", "region", "postcode", "country")
    values = address or {}
    return ", ".join(str(values[p]) for p in parts if values.get(p))


def build_evidence_pdf(
    session: Session,
    case_id: int,
    *,
    uploads_dir: Path,
    keyring: Keyring,
    now: datetime,
    exported_by: str,
) -> bytes:
    """The PDF bytes of a case's evidence: order, documents, checklist, decision, audit trail.

    Raises NotFoundError for an unknown case; a document that cannot be decrypted is named
    in the PDF instead of its image.
    """
    case = _load_case(session, case_id)
    order = case.order
    pdf = _Pdf(f"Evidence for order {order.external_id}", now)
    pdf.heading(f"Verification evidence: order {order.external_id}", 16)
    pdf.line(f"Case {case.id}. Exported {_when(now)} by {exported_by}. Confidential.")

    pdf.heading("Order")
    if order.anonymised_at:
        pdf.line(f"The customer's details were anonymised on {_when(order.anonymised_at)}.")
    pdf.field("Placed", _when(order.placed_at))
    pdf.field("Amount", _money(order.amount_minor, order.currency))
    pdf.field("Customer", f"{order.customer_name} <{order.customer_email}>")
    pdf.field("Card", f"{order.card_brand or 'card'} ending {order.card_last4}")
    pdf.field("Cardholder", order.cardholder_name)
    pdf.field("Billing address", _address(order.billing_address))
    pdf.field("Shipping address", _address(order.shipping_address))
    if order.decision is not None:
        pdf.field("Sampled because", order.decision.reason)

    pdf.heading("Decision")
    pdf.field("Status", case.status)
    pdf.field("Decided", _when(case.decided_at))
    if case.decided_by_id:
        reviewer = session.get(StaffUser, case.decided_by_id)
        pdf.field("Decided by", reviewer.email if reviewer else f"staff #{case.decided_by_id}")
    if case.decision_reason_code:
        label = REJECTION_REASONS.get(case.decision_reason_code, case.decision_reason_code)
        pdf.field("Reason", label)
    if case.decision_note:
        pdf.field("Note", case.decision_note)
    if case.legal_hold_at:
        pdf.field("Legal hold", f"since {_when(case.legal_hold_at)}: {case.legal_hold_reason}")

    pdf.heading("Checklist")
    answers = case.checklist or {}
    if not answers:
        pdf.line("No checklist was recorded.")
    for name, label in CHECKS.items():
        if name in answers:
            pdf.field(label, answers[name].replace("_", " "))

    _documents(pdf, case, uploads_dir, keyring)

    pdf.heading("Audit trail")
    for event in case_audit_trail(session, case):
        actor = event.actor_type + (f" {event.actor_id}" if event.actor_id else "")
        details = details_line(event.details)
        pdf.line(f"{_when(event.at)}  {event.action}  by {actor}", size=8)
        if details:
            pdf.line(f"    {details}", size=8)
    return pdf.output()


def _documents(pdf: _Pdf, case: VerificationCase, uploads_dir: Path, keyring: Keyring) -> None:
    pdf.heading("Documents")
    docs = sorted(case.documents, key=lambda d: (d.created_at, d.kind, d.page))
    current = [d for d in docs if d.status == "active" and d.wrapped_key and d.blob_name]
    gone = [d for d in docs if d.status in ("purged", "erased", "replaced")]
    if case.documents_purged_at:
        runs = sorted({d.purge_run_id for d in docs if d.purge_run_id})
        by = f" by purge run {', '.join(f'#{r}' for r in runs)}" if runs else ""
        pdf.line(f"The documents were destroyed on {_when(case.documents_purged_at)}{by}.")
    for doc in gone:
        at = doc.erased_at if doc.status == "erased" else doc.purged_at
        run = f" (purge run #{doc.purge_run_id})" if doc.purge_run_id else ""
        label = KIND_LABELS.get(doc.kind, doc.kind)
        pdf.line(f"{label}, page {doc.page}: {doc.status} {_when(at)}{run}.")
    if not current and not gone:
        pdf.line("No documents were uploaded.")
    for doc in current:
        label = KIND_LABELS.get(doc.kind, doc.kind)
        pdf.line(f"{label}, page {doc.page}, uploaded {_when(doc.created_at)}", size=11)
        for warning in doc.quality_warnings or []:
            pdf.line(f"Quality warning: {warning.get('message', warning)}", size=8)
        # Stored documents (key and blob, above) always have the id of their key.
        assert doc.wrapped_key is not None and doc.blob_name is not None
        assert doc.key_id is not None
        try:
            data = read_blob(
                uploads_dir, keyring, doc.id, doc.blob_name, doc.wrapped_key, doc.key_id
            )
        except StorageError:
            pdf.line("This document could not be read from storage.")
            continue
        pdf.image(data, doc.width, doc.height)
        del data
