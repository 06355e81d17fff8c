"""Erasure on request: one customer's documents and personal details, destroyed at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.checks import EMAIL_RE, EXTERNAL_ID_RE
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import OPEN_CASE_STATES, Document, Order, VerificationCase
from verifier.portal.links import revoke_links
from verifier.retention.anonymise import anonymise_orders
from verifier.retention.holds import clean_reason
from verifier.retention.purge import ACTIVE, ERASED, REPLACED, finish_shredded, mark_cases_cleared
from verifier.retention.purge_report import PurgeReport
from verifier.vault.storage import safe_uploads_dir

SessionFactory = Callable[[], Session]
# Documents.erase_reason of what this module erases; the case page labels it.
CUSTOMER_REQUEST = "customer_request"


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure destroyed: counts and the shop's order references, never contents."""

    orders: list[str]
    cases: int
    documents_erased: int
    blobs_deleted: int
    orders_anonymised: int

    def message(self) -> str:
        return (
            f"Erased {self.documents_erased} document(s) and the personal details of "
            f"{len(self.orders)} order(s): {', '.join(self.orders)}."
        )


def find_customer_orders(
    session: Session, *, order_external_id: str | None, email: str | None
) -> list[Order]:
    """The orders of one customer, named by one of their orders or by their email.

    An order names its customer by email, so every order with that email is included.
    Raises ValidationError unless exactly one is given, NotFoundError when nothing matches.
    """
    order_external_id = (order_external_id or "").strip()
    email = (email or "").strip().lower()
    if bool(order_external_id) == bool(email):
        message = "Give either an order number or an email address, not both."
        raise ValidationError(message, {"order_external_id": message})
    if order_external_id:
        if not EXTERNAL_ID_RE.match(order_external_id):
            raise ValidationError(
                "That is not an order number.", {"order_external_id": "Not an order number."}
            )
        order = session.scalar(select(Order).where(Order.external_id == order_external_id))
        if order is None:
            raise NotFoundError(f"No order with the number {order_external_id!r}.")
        if order.anonymised_at is not None:
            return [order]
        email = order.customer_email
    elif not EMAIL_RE.match(email):
        raise ValidationError("That is not an email address.", {"email": "Not an email address."})
    orders = list(
        session.scalars(
            select(Order)
            .where(Order.customer_email == email, Order.anonymised_at.is_(None))
            .order_by(Order.id)
        )
    )
    if not orders:
        raise NotFoundError("No order with that email address (or it was already erased).")
    return orders


def _lock_cases(session: Session, orders: list[Order]) -> list[VerificationCase]:
    return list(
        session.scalars(
            select(VerificationCase)
            .where(VerificationCase.order_id.in_([o.id for o in orders]))
            .order_by(VerificationCase.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def erase_customer(
    session_factory: SessionFactory,
    uploads_dir: Path | str,
    *,
    order_external_id: str | None = None,
    email: str | None = None,
    reason: str,
    actor_id: int | str | None,
    now: datetime,
    _fault: Callable[[str], None] | None = None,
) -> ErasureReport:
    """Crypto-shred and delete a customer's documents and anonymise their orders, now.

    Commits: keys, statuses, anonymisation and the audit event in one transaction, then the
    blob files (a crash in between leaves keyless rows the next purge finishes). Refuses with
    ConflictError, erasing nothing, when any of the customer's cases is under legal hold.
    """
    uploads = safe_uploads_dir(uploads_dir)
    reason = clean_reason(reason)
    with session_factory() as session:
        orders = find_customer_orders(session, order_external_id=order_external_id, email=email)
        cases = _lock_cases(session, orders)
        held = [c for c in cases if c.legal_hold_at is not None]
        if held:
            refs = {o.id: o.external_id for o in orders}
            names = "; ".join(f"{refs[c.order_id]} ({c.legal_hold_reason})" for c in held)
            raise ConflictError(
                "Nothing was erased: a legal hold keeps the evidence of "
                f"{names}. Release the hold first if it no longer applies.",
                code="legal_hold",
            )
        case_ids = [c.id for c in cases]
        doc_ids = list(session.scalars(select(Document.id).where(Document.case_id.in_(case_ids))))
        result = session.execute(
            update(Document)
            .where(
                Document.case_id.in_(case_ids),
                Document.status.in_((ACTIVE, REPLACED)),
                Document.wrapped_key.is_not(None) | Document.blob_name.is_not(None),
            )
            .values(wrapped_key=None, status=ERASED, erased_at=now, erase_reason=CUSTOMER_REQUEST)
            .execution_options(synchronize_session=False)
        )
        erased = cast(CursorResult[Any], result).rowcount
        session.execute(
            update(Document)
            .where(Document.case_id.in_(case_ids), Document.wrapped_key.is_not(None))
            .values(wrapped_key=None)
            .execution_options(synchronize_session=False)
        )
        for case in cases:
            if case.status in OPEN_CASE_STATES:
                # The customer can no longer be written to or upload; the shop still decides.
                revoke_links(session, case.id, now)
        anonymised = anonymise_orders(session, [o.id for o in orders], now)
        mark_cases_cleared(session, case_ids, now)
        external_ids = [o.external_id for o in orders]
        record_event(
            session,
            "retention.erasure",
            actor_type="staff",
            actor_id=actor_id,
            target_type="order",
            target_id=external_ids[0],
            details={
                "orders": external_ids,
                "matched_by": "order" if order_external_id else "email",
                "documents_erased": erased,
                "orders_anonymised": anonymised,
                "reason": reason,
            },
            now=now,
        )
        session.commit()
    if _fault:
        _fault("shred")
    report = PurgeReport()
    finish_shredded(
        session_factory, uploads, now, max(len(doc_ids), 1), report, set(), only_ids=doc_ids
    )
    return ErasureReport(
        orders=external_ids,
        cases=len(cases),
        documents_erased=erased,
        blobs_deleted=report.blobs_deleted,
        orders_anonymised=anonymised,
    )
