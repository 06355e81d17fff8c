"""The staff review queue and case pages.

GET  /review/                                  the queue: filters, sorts, counts, keyset pages
POST /review/next                              claim the oldest free case and open it
POST /review/bulk                              release / reassign / extend links
GET  /review/cases/<id>                        order beside documents, checklist, decisions
POST /review/cases/<id>/claim | release        take or give up the claim
POST /review/cases/<id>/lease                  renew the claim (review.js, JSON)
POST /review/cases/<id>/checklist              save the answers so far
POST /review/cases/<id>/approve | reject       decide
POST /review/cases/<id>/confirm-rejection      four-eyes: confirm another's rejection
POST /review/cases/<id>/overturn-rejection     four-eyes: set it aside
POST /review/cases/<id>/resubmission           ask the customer for new documents
GET  /review/documents/<doc_id>                the decrypted image (audited, not cached)
POST /review/documents/<doc_id>/erase          PCI erase of a card image
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from verifier.core.checklist import CHECKS, REJECTION_REASONS
from verifier.core.policies import current_settings
from verifier.core.wording import format_amount
from verifier.db import get_session
from verifier.errors import ConflictError, NotFoundError, ValidationError, VerifierError
from verifier.models import Document, StaffUser
from verifier.portal.customer_mail import PortalContext
from verifier.portal.links import extend_links, reopen_link
from verifier.retention.receipts import case_purge_due_at
from verifier.review.bulk import bulk_extend_links, bulk_reassign, bulk_release
from verifier.review.claims import claim_case, claim_next_case, release_case, renew_lease
from verifier.review.decisions import (
    approve_case,
    confirm_rejection,
    overturn_rejection,
    reject_case,
    request_resubmission,
    save_checklist,
)
from verifier.review.documents import CARD_KINDS, ERASED_BECAUSE, erase_document, view_document
from verifier.review.forms import (
    ANSWER_LABELS,
    BULK_ACTIONS,
    KIND_LABELS,
    OUTCOME_LABELS,
    SORT_LABELS,
    STATE_LABELS,
    ActionForm,
    BulkForm,
    DecisionForm,
    EraseForm,
    OverturnForm,
    QueueFilterForm,
    ResubmissionForm,
    SaveFilterForm,
)
from verifier.review.history import KIND_LABELS as LINK_LABELS
from verifier.review.queue import (
    QueuePage,
    clean_filters,
    get_case_view,
    list_queue,
    queue_counts,
)
from verifier.review.saved_filters import FILTER_ARGS, filter_query, list_filters
from verifier.review.wording import (
    approved_message,
    confirmed_message,
    format_address,
    format_age,
    rejected_message,
    resubmission_message,
    saved_message,
)
from verifier.review.workbench import document_groups, starting_answers
from verifier.vault.storage import Keyring
from verifier.web.auth import acts_as_admin, signed_in_staff, staff_required
from verifier.web.forms import apply_domain_errors

QUEUE_FILTER_ARGS = FILTER_ARGS

bp = Blueprint("review", __name__, url_prefix="/review")

# Served images get a fixed name: never anything the customer's file was called.
FILENAMES = {"image/jpeg": "document.jpg", "image/png": "document.png"}


def _now() -> datetime:
    return datetime.now(UTC)


def _rng() -> random.Random:
    return random.SystemRandom()


def _me() -> StaffUser:
    return signed_in_staff()


def _keyring() -> Keyring:
    return Keyring.from_config(current_app.config)


def _reopen(session, settings, now):
    """The portal's link function, as the callback the domain calls on a resubmission."""
    portal = PortalContext.from_config(current_app.config)
    return lambda case: reopen_link(session, case, portal=portal, settings=settings, now=now)


# What the review templates use to show values; no queries, no decisions.
HELPERS = {"age": format_age, "money": format_amount, "address": format_address}


def _to_case(case_id: int):
    return redirect(url_for(".case", case_id=case_id), code=303)


def _safe_back(target: str | None) -> str:
    """A queue URL to return to after a bulk action, never another site."""
    if target and target.startswith("/review/") and not target.startswith("//"):
        return target
    return url_for(".queue")


@bp.get("/")
@staff_required
def queue():
    form = QueueFilterForm(request.args)
    session = get_session()
    now = _now()
    settings = current_settings(session)
    me = _me()
    try:
        filters = clean_filters(
            form.state.data, form.reason.data, form.q.data, sort=form.sort.data,
            late=bool(form.late.data), mine=bool(form.mine.data),
            amount_min=form.amount_min.data, amount_max=form.amount_max.data,
        )  # fmt: skip
        page = list_queue(
            session, filters=filters, after=request.args.get("after") or None, now=now,
            settings=settings, me=me.id,
        )  # fmt: skip
    except ValidationError as exc:
        if "after" in exc.fields or "state" in exc.fields or "sort" in exc.fields:
            abort(400)  # only a hand-edited URL gets here
        for name, message in exc.fields.items():
            getattr(form, name).errors = [message]
        filters = clean_filters(form.state.data if "state" not in exc.fields else None)
        page = QueuePage(rows=[], next_cursor=None)
    bulk = BulkForm(back=request.full_path.rstrip("?"))
    reviewers = session.execute(
        select(StaffUser.id, StaffUser.email)
        .where(StaffUser.active.is_(True))
        .order_by(StaffUser.email)
    ).all()
    bulk.reviewer.choices = [SelectChoice(row.id, row.email) for row in reviewers]
    # Only the filters travel: url_for reads names starting with "_" as its own options.
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k in QUEUE_FILTER_ARGS and v}
    carry = {k: v for k, v in args.items() if k != "state"}  # what the state tabs keep
    next_url = url_for(".queue", **args, after=page.next_cursor) if page.next_cursor else None
    return render_template(
        "review/queue.html", form=form, filters=filters, page=page, counts=queue_counts(session),
        state_labels=STATE_LABELS, next_url=next_url, bulk=bulk, bulk_actions=BULK_ACTIONS,
        is_admin=me.role == "admin", action_form=ActionForm(), carry=carry, args=args,
        target_hours=settings.review_target_hours, first_page=not request.args.get("after"),
        saved=list_filters(session, me.id), save_form=SaveFilterForm(query=filter_query(args)),
        sort_labels=SORT_LABELS, **HELPERS,
    )  # fmt: skip


@bp.post("/next")
@staff_required
def next_case():
    ActionForm().validate_on_submit() or abort(400)
    session = get_session()
    now = _now()
    case = claim_next_case(session, _me().id, now, current_settings(session))
    session.commit()
    if case is None:
        flash("No case is waiting for review right now.", "info")
        return redirect(url_for(".queue"), code=303)
    return _to_case(case.id)


@bp.post("/bulk")
@staff_required
def bulk():
    form = BulkForm()
    form.reviewer.choices = []
    if not form.validate_on_submit():
        abort(400)
    back = _safe_back(form.back.data)
    me = _me()
    session = get_session()
    now = _now()
    settings = current_settings(session)
    if not form.case_id.data:
        flash("Select at least one case.", "error")
        return redirect(back, code=303)
    action = form.action.data
    if action == "reassign" and not acts_as_admin(me):
        abort(403)
    try:
        if action == "release":
            results = bulk_release(session, form.case_id.data, me.id, now,
                                   as_admin=acts_as_admin(me))  # fmt: skip
        elif action == "reassign":
            results = bulk_reassign(session, form.case_id.data, form.reviewer.data, me.id, now,
                                    settings)  # fmt: skip
        else:
            results = bulk_extend_links(
                session, form.case_id.data, me.id, now,
                extend=lambda case: extend_links(session, case, settings=settings, now=now),
            )  # fmt: skip
    except VerifierError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(back, code=303)
    session.commit()
    done = sum(r.ok for r in results)
    flash(f"{BULK_ACTIONS[action]}: {done} of {len(results)} done.", "success" if done else "error")
    for result in results:
        if not result.ok:
            flash(f"Case {result.case_id}: {result.message}", "error")
    return redirect(back, code=303)


def _render_case(case_id: int, *, decision=None, overturn=None, resubmit=None, status=200):
    session = get_session()
    now = _now()
    settings = current_settings(session)
    view = get_case_view(session, case_id, now, settings)
    case = view.case
    me = _me()
    groups = document_groups(view.documents)
    if decision is None:
        decision = DecisionForm(data=starting_answers(case.checklist, groups) | {
            "reason_code": case.decision_reason_code or "", "note": case.decision_note or "",
        })  # fmt: skip
    erase_forms = {
        d.id: EraseForm(prefix=f"erase-{d.id}", formdata=None)
        for d in view.documents
        if d.kind in CARD_KINDS and d.status == "active"
    }
    holding = view.holder is not None and case.claimed_by_id == me.id
    return render_template(
        "review/case.html", view=view, case=case, order=case.order, me=me, holding=holding,
        decision=decision, overturn=overturn or OverturnForm(),
        resubmit=resubmit or ResubmissionForm(formdata=None, data={"kinds": []}),
        action_form=ActionForm(), erase_forms=erase_forms, kind_labels=KIND_LABELS,
        answer_labels=ANSWER_LABELS, checks=CHECKS, settings=settings, now=now,
        resubmissions_left=max(settings.max_resubmissions - case.resubmission_count, 0),
        reasons=REJECTION_REASONS, renew_seconds=max(30, min(300, settings.lease_minutes * 20)),
        retention_due_at=case_purge_due_at(session, case, settings),
        link_labels=LINK_LABELS, outcome_labels=OUTCOME_LABELS, erased_because=ERASED_BECAUSE,
        groups=groups, compare=request.args.get("compare") == "1",
        **HELPERS,
    ), status  # fmt: skip


@bp.get("/cases/<int:case_id>")
@staff_required
def case(case_id: int):
    return _render_case(case_id)


def _field_errors(exc: ValidationError) -> ValidationError:
    """The domain names checklist answers `checklist.<check>`; the form calls them `<check>`."""
    fields = {name.removeprefix("checklist."): message for name, message in exc.fields.items()}
    return ValidationError(exc.message, fields)


def _case_action(case_id: int, action, success, *, form=None, form_arg: str = "decision",
                 then=None):  # fmt: skip
    """Run one domain action for the case page; conflicts flash, validation re-renders.

    `success` is the message, or a function of the action's result giving (message, category);
    `then` is where to go afterwards (the case page when None). One flash per outcome: the
    summary of what went wrong sits at the top, each field's own error beside it.
    """
    form = form or ActionForm()
    if not form.validate_on_submit():
        if isinstance(form, ActionForm):
            abort(400)
        return _render_case(case_id, status=422, **{form_arg: form})
    session = get_session()
    try:
        result = action(session, _now(), current_settings(session))
    except ValidationError as exc:
        session.rollback()
        general = apply_domain_errors(form, _field_errors(exc))
        flash(" ".join(dict.fromkeys(general)) if general else exc.message, "error")
        return _render_case(case_id, status=422, **{form_arg: form})
    except ConflictError as exc:
        session.rollback()
        flash(exc.message, "error")
        return _to_case(case_id)
    session.commit()
    message, category = success(result) if callable(success) else (success, "success")
    flash(message, category)
    return then(result) if then else _to_case(case_id)


@bp.post("/cases/<int:case_id>/claim")
@staff_required
def claim(case_id: int):
    me = _me()
    return _case_action(
        case_id, lambda s, now, st: claim_case(s, case_id, me.id, now, st),
        "The case is yours for now; the page keeps your claim while it is open.",
    )  # fmt: skip


@bp.post("/cases/<int:case_id>/release")
@staff_required
def release(case_id: int):
    ActionForm().validate_on_submit() or abort(400)
    session = get_session()
    released = release_case(session, case_id, _me().id, _now())
    session.commit()
    flash("You released the case." if released else "You were not holding this case.",
          "success" if released else "info")  # fmt: skip
    return redirect(url_for(".queue"), code=303)


@bp.post("/cases/<int:case_id>/lease")
@staff_required
def lease(case_id: int):
    """Renew the claim for review.js (CSRF token in the X-CSRFToken header)."""
    session = get_session()
    try:
        until = renew_lease(session, case_id, _me().id, _now(), current_settings(session))
    except (ConflictError, NotFoundError) as exc:
        session.rollback()
        return jsonify({"ok": False, "message": exc.message}), exc.status
    session.commit()
    return jsonify({"ok": True, "lease_expires_at": until.isoformat()})


@bp.post("/cases/<int:case_id>/checklist")
@staff_required
def checklist(case_id: int):
    form = DecisionForm()
    me = _me()

    return _case_action(
        case_id, lambda s, now, st: save_checklist(s, case_id, me.id, form.answers(), now),
        saved_message, form=form,
    )  # fmt: skip


def _take_next(_decided):
    """After "Approve and next": claim the next case and open it, or go back to the queue."""
    session = get_session()
    case = claim_next_case(session, _me().id, _now(), current_settings(session))
    session.commit()
    if case is None:
        flash("No other case is waiting for review right now.", "info")
        return redirect(url_for(".queue"), code=303)
    return _to_case(case.id)


@bp.post("/cases/<int:case_id>/approve")
@staff_required
def approve(case_id: int):
    form = DecisionForm()
    me = _me()
    and_next = request.form.get("then") == "next"
    return _case_action(
        case_id,
        lambda s, now, st: approve_case(s, case_id, me.id, now, st, checklist=form.answers(),
                                        rng=_rng(), note=form.note.data),
        approved_message, form=form, then=_take_next if and_next else None,
    )  # fmt: skip


@bp.post("/cases/<int:case_id>/reject")
@staff_required
def reject(case_id: int):
    form = DecisionForm()
    me = _me()

    def act(s, now, st):
        return reject_case(s, case_id, me.id, now, st, reason_code=form.reason_code.data,
                           note=form.note.data, failed_checks=[], rng=_rng(),
                           checklist=form.answers())  # fmt: skip

    return _case_action(case_id, act, rejected_message, form=form)


@bp.post("/cases/<int:case_id>/confirm-rejection")
@staff_required
def confirm(case_id: int):
    me = _me()
    return _case_action(
        case_id, lambda s, now, st: confirm_rejection(s, case_id, me.id, now, st, rng=_rng()),
        confirmed_message,
    )  # fmt: skip


@bp.post("/cases/<int:case_id>/overturn-rejection")
@staff_required
def overturn(case_id: int):
    form = OverturnForm()
    me = _me()
    return _case_action(
        case_id, lambda s, now, st: overturn_rejection(s, case_id, me.id, now,
                                                       note=form.note.data),
        "The proposed rejection was set aside; decide the case now.", form=form,
        form_arg="overturn",
    )  # fmt: skip


@bp.post("/cases/<int:case_id>/resubmission")
@staff_required
def resubmission(case_id: int):
    form = ResubmissionForm()
    me = _me()
    return _case_action(
        case_id,
        lambda s, now, st: request_resubmission(
            s, case_id, me.id, now, st, kinds=form.kinds.data or [], message=form.message.data,
            reopen=_reopen(s, st, now),
        ),
        lambda case: resubmission_message(case, KIND_LABELS), form=form,
        form_arg="resubmit",
    )  # fmt: skip


@bp.get("/documents/<doc_id>")
@staff_required
def document(doc_id: str):
    """Stream one decrypted image; the sandbox CSP and nosniff stop it acting as a page."""
    session = get_session()
    try:
        doc, data = view_document(session, doc_id, _me().id, _now(),
                                  uploads_dir=current_app.config["UPLOADS_DIR"],
                                  keyring=_keyring())  # fmt: skip
    except NotFoundError:
        session.rollback()
        abort(404)
    session.commit()
    content_type = doc.content_type if doc.content_type in FILENAMES else "image/jpeg"
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Content-Disposition"] = f'inline; filename="{FILENAMES[content_type]}"'
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@bp.post("/documents/<doc_id>/erase")
@staff_required
def erase(doc_id: str):
    form = EraseForm(prefix=f"erase-{doc_id}")
    session = get_session()
    case_id = session.scalar(select(Document.case_id).where(Document.id == doc_id))
    if case_id is None:
        abort(404)
    if not form.validate_on_submit():
        flash("Choose what is visible in the image before erasing it.", "error")
        return _to_case(case_id)
    now = _now()
    settings = current_settings(session)
    try:
        result = erase_document(
            session, doc_id, _me().id, now, current_app.config["UPLOADS_DIR"],
            form.reason_kind.data, settings=settings, reopen=_reopen(session, settings, now),
        )  # fmt: skip
    except (ConflictError, NotFoundError, ValidationError) as exc:
        session.rollback()
        flash(exc.message, "error")
        return _to_case(case_id)
    session.commit()
    flash(result.message, "success" if result.resubmission_requested else "info")
    return _to_case(case_id)
