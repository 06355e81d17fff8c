"""Blind quality checks for reviewers: judge a decided case without seeing its decision.

GET  /review/quality/           the next case to check (or none left)
POST /review/quality/<id>       record approve or reject for that check
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from verifier.db import get_session
from verifier.errors import ConflictError
from verifier.review.quality import next_quality_review, record_quality_verdict
from verifier.web.auth import signed_in_staff, staff_required

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
    flash(f"Quality check of case {review.case_id} recorded. Thank you.", "success")
    return redirect(url_for("quality.next_check"), code=303)
