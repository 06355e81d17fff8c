"""Blind quality checks for reviewers: judge a decided case without seeing its decision.

GET  /review/quality/                                   the next case to check (or none left)
POST /review/quality/<id>                               record approve or reject for that check
GET  /review/quality/disagreements                      admins: checks that disagreed
POST /review/quality/disagreements/<id>/resolve         admins: settle one (audited)
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from verifier.core.checklist import REJECTION_REASONS
from verifier.db import get_session
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.review.quality import (
    MAX_RESOLUTION_NOTE,
    RESOLUTIONS,
    list_disagreements,
    next_quality_review,
    record_quality_verdict,
    resolve_disagreement,
)
from verifier.web.auth import admin_required, signed_in_staff, staff_required
from verifier.web.forms import apply_domain_errors

bp = Blueprint("quality", __name__, url_prefix="/review/quality")


class VerdictForm(FlaskForm):
    verdict = RadioField(
        "Your verdict",
        choices=[
            SelectChoice("approved", "Approve: the documents match the order"),
            SelectChoice("rejected", "Reject: they do not"),
        ],
        validators=[InputRequired("Choose approve or reject.")],
    )


class ResolveForm(FlaskForm):
    resolution = RadioField(
        "How is it settled?",
        choices=[SelectChoice(k, v) for k, v in RESOLUTIONS.items()],
        validators=[InputRequired("Choose how the disagreement is settled.")],
    )
    note = TextAreaField("Note (kept in the audit log)",
                         validators=[Length(max=MAX_RESOLUTION_NOTE)])  # fmt: skip


VERDICT_LABELS = {"approved": "Approved", "rejected": "Rejected"}


@bp.get("/")
@staff_required
def next_check():
    session = get_session()
    blind = next_quality_review(session, signed_in_staff().id)
    return render_template("review/quality_check.html", blind=blind, form=VerdictForm())


@bp.post("/<int:review_id>")
@staff_required
def record(review_id: int):
    form = VerdictForm()
    session = get_session()
    if not form.validate():
        blind = next_quality_review(session, signed_in_staff().id)
        if blind is None or blind.review.id != review_id:
            flash("Choose approve or reject.", "error")
            return redirect(url_for("quality.next_check"), code=303)
        return render_template("review/quality_check.html", blind=blind, form=form), 422
    try:
        review = record_quality_verdict(
            session, review_id, signed_in_staff().id, form.verdict.data, datetime.now(UTC)
        )
    except ConflictError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("quality.next_check"), code=303)
    session.commit()
    if review.agrees:
        flash(f"Quality check of case {review.case_id} recorded: you agree with the first "
              "decision. Thank you.", "success")  # fmt: skip
    else:
        flash(f"Quality check of case {review.case_id} recorded: your verdict differs from the "
              "first decision, so it has been raised to an admin. Thank you.", "info")  # fmt: skip
    return redirect(url_for("quality.next_check"), code=303)


def _disagreements_page(forms=None, status=200):
    session = get_session()
    show_resolved = request.args.get("show") == "resolved"
    rows = list_disagreements(session, resolved=show_resolved)
    forms = forms or {}
    return render_template(
        "review/disagreements.html", rows=rows, show_resolved=show_resolved,
        forms={r.review_id: forms.get(r.review_id) or ResolveForm(prefix=f"r{r.review_id}",
                                                                   formdata=None)
               for r in rows},
        verdicts=VERDICT_LABELS, resolutions=RESOLUTIONS, reasons=REJECTION_REASONS,
    ), status  # fmt: skip


@bp.get("/disagreements")
@admin_required
def disagreements():
    return _disagreements_page()


@bp.post("/disagreements/<int:review_id>/resolve")
@admin_required
def resolve(review_id: int):
    form = ResolveForm(prefix=f"r{review_id}")
    if not form.validate_on_submit():  # CSRFProtect has refused a missing token already
        return _disagreements_page({review_id: form}, status=422)
    session = get_session()
    try:
        review = resolve_disagreement(
            session,
            review_id,
            signed_in_staff().id,
            form.resolution.data,
            form.note.data,
            datetime.now(UTC),
        )
    except ValidationError as exc:
        session.rollback()
        apply_domain_errors(form, exc)
        return _disagreements_page({review_id: form}, status=422)
    except (ConflictError, NotFoundError) as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("quality.disagreements"), code=303)
    session.commit()
    flash(f"Disagreement on case {review.case_id} settled: {RESOLUTIONS[form.resolution.data]}.",
          "success")  # fmt: skip
    return redirect(url_for("quality.disagreements"), code=303)
