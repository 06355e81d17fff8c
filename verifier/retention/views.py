"""Retention admin pages (admins only).

GET  /admin/retention/                          what is due and when, holds, last purge runs
POST /admin/retention/holds                     put an order's case on legal hold
POST /admin/retention/holds/<case_id>/release   release a hold (reason required)
POST /admin/retention/erasure                   erase one customer's documents and details now
GET  /admin/retention/cases?order=<external_id> find a case's receipt by order number
GET  /admin/retention/cases/<case_id>/receipt   purge receipt, wording fit for the customer
POST /admin/retention/cases/<case_id>/evidence  the evidence bundle PDF (audited, not cached)
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from verifier.core.audit import record_event
from verifier.core.policies import current_settings
from verifier.db import get_session, new_session
from verifier.errors import ConflictError, ValidationError, VerifierError
from verifier.models import Order, VerificationCase
from verifier.retention.erasure import erase_customer
from verifier.retention.evidence import build_evidence_pdf
from verifier.retention.forms import ErasureForm, EvidenceForm, HoldForm, LookupForm, ReleaseForm
from verifier.retention.holds import hold_order, list_legal_holds, release_case_hold
from verifier.retention.receipts import purge_receipt, purge_schedule, recent_purge_runs
from verifier.vault.storage import Keyring
from verifier.web.auth import admin_guard, signed_in_staff

bp = Blueprint("retention", __name__, url_prefix="/admin/retention")
bp.before_request(admin_guard)


def _now() -> datetime:
    return datetime.now(UTC)


def _staff_id() -> int:
    return signed_in_staff().id


def _form_error(form, exc: VerifierError, default_field: str) -> None:
    fields = getattr(exc, "fields", None) or {default_field: exc.message}
    for name, message in fields.items():
        target = getattr(form, name, None) or getattr(form, default_field)
        target.errors = [*target.errors, message]


def _render_index(status: int = 200, *, hold=None, erasure=None):
    session = get_session()
    now = _now()
    settings = current_settings(session)
    page = render_template(
        "retention/index.html",
        settings=settings,
        schedule=purge_schedule(session, now, settings),
        holds=list_legal_holds(session),
        runs=recent_purge_runs(session),
        hold_form=hold or HoldForm(formdata=None),
        release_form=ReleaseForm(formdata=None),
        erasure_form=erasure or ErasureForm(formdata=None),
        lookup_form=LookupForm(formdata=None),
        now=now,
    )
    session.commit()  # current_settings may create the first policy version
    return page, status


@bp.get("/")
def index():
    return _render_index()


@bp.post("/holds")
def set_hold():
    form = HoldForm()
    if not form.validate():
        return _render_index(422, hold=form)
    session = get_session()
    try:
        case = hold_order(
            session, form.order_external_id.data.strip(), form.reason.data,
            actor_type="staff", actor_id=_staff_id(), now=_now(),
        )  # fmt: skip
    except VerifierError as exc:
        session.rollback()
        _form_error(form, exc, "order_external_id")
        return _render_index(exc.status, hold=form)
    session.commit()
    flash(f"Order {case.order.external_id} is on legal hold: purge skips it until released.",
          "success")  # fmt: skip
    return redirect(url_for("retention.receipt", case_id=case.id), 303)


@bp.post("/holds/<int:case_id>/release")
def release_hold(case_id: int):
    form = ReleaseForm()
    if not form.validate():
        flash("Give a reason for releasing the hold.", "error")
        return redirect(url_for("retention.receipt", case_id=case_id), 303)
    session = get_session()
    try:
        case = release_case_hold(
            session, case_id, form.reason.data, actor_type="staff", actor_id=_staff_id(),
            now=_now(),
        )  # fmt: skip
    except (ConflictError, ValidationError) as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("retention.receipt", case_id=case_id), 303)
    session.commit()
    flash(f"The hold on order {case.order.external_id} is released.", "success")
    return redirect(url_for("retention.receipt", case_id=case.id), 303)


@bp.post("/erasure")
def erase():
    form = ErasureForm()
    if not form.validate():
        return _render_index(422, erasure=form)
    staff_id = _staff_id()
    # Erasure commits in two steps of its own (keys first, then files) through its own
    # sessions; end this request's transaction first, or SQLite's write lock would block them.
    get_session().commit()
    try:
        report = erase_customer(
            lambda: new_session(current_app),
            current_app.config["UPLOADS_DIR"],
            order_external_id=form.order_external_id.data,
            email=form.email.data,
            reason=form.reason.data,
            actor_id=staff_id,
            now=_now(),
        )
    except VerifierError as exc:
        _form_error(form, exc, "order_external_id")
        return _render_index(exc.status, erasure=form)
    flash(report.message(), "success")
    return redirect(url_for("retention.index"), 303)


@bp.get("/cases")
def find_case():
    form = LookupForm(formdata=request.args)
    external_id = (form.order.data or "").strip() if form.validate() else ""
    case_id = get_session().scalar(
        select(VerificationCase.id).join(Order).where(Order.external_id == external_id)
    )
    if case_id is None:
        flash("No verification case for that order number.", "error")
        return redirect(url_for("retention.index"), 303)
    return redirect(url_for("retention.receipt", case_id=case_id), 303)


@bp.get("/cases/<int:case_id>/receipt")
def receipt(case_id: int):
    session = get_session()
    now = _now()
    data = purge_receipt(session, case_id, now, current_settings(session))
    session.commit()
    return render_template(
        "retention/receipt.html",
        receipt=data,
        case=data.case,
        hold_form=HoldForm(formdata=None, order_external_id=data.case.order.external_id),
        release_form=ReleaseForm(formdata=None),
        evidence_form=EvidenceForm(formdata=None),
        now=now,
    )


@bp.post("/cases/<int:case_id>/evidence")
def evidence(case_id: int):
    session = get_session()
    user = signed_in_staff()
    now = _now()
    pdf = build_evidence_pdf(
        session,
        case_id,
        uploads_dir=current_app.config["UPLOADS_DIR"],
        keyring=Keyring.from_config(current_app.config),
        now=now,
        exported_by=user.email,
    )
    record_event(
        session, "case.evidence_exported", actor_type="staff", actor_id=user.id,
        target_type="case", target_id=case_id,
        details={"format": "pdf", "size": len(pdf)}, now=now,
    )  # fmt: skip
    session.commit()
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="evidence-case-{case_id}.pdf"',
            "Cache-Control": "no-store",
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
        },
    )
