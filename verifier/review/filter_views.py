"""A reviewer's saved queue filters (listed, and saved from, the queue page).

POST /review/filters/          save the queue's current filters under a name
POST /review/filters/delete    delete some of one's saved filters
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from flask import Blueprint, abort, flash, redirect, request, url_for

from verifier.db import get_session
from verifier.errors import ValidationError
from verifier.review.forms import ActionForm, SaveFilterForm
from verifier.review.saved_filters import delete_filters, save_filter
from verifier.web.auth import signed_in_staff, staff_required

bp = Blueprint("review_filters", __name__, url_prefix="/review/filters")


@bp.post("/")
@staff_required
def save():
    form = SaveFilterForm()
    query = form.query.data or ""
    back = url_for("review.queue") + (f"?{query}" if query else "")
    if not form.validate_on_submit():
        flash("Give the filter a name (at most 60 characters).", "error")
        return redirect(back, code=303)
    session = get_session()
    args = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        saved = save_filter(session, signed_in_staff().id, form.name.data or "", args,
                            datetime.now(UTC))  # fmt: skip
    except ValidationError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(back, code=303)
    session.commit()
    flash(f"Filter “{saved.name}” saved: it is listed above the queue.", "success")
    return redirect(url_for("review.queue") + (f"?{saved.query}" if saved.query else ""), code=303)


@bp.post("/delete")
@staff_required
def delete():
    ActionForm().validate_on_submit() or abort(400)
    ids = [int(v) for v in request.form.getlist("filter_id") if v.isdigit()]
    session = get_session()
    gone = delete_filters(session, signed_in_staff().id, ids)
    session.commit()
    flash(f"Deleted {gone} saved filter{'s' if gone != 1 else ''}.", "success" if gone else "info")
    return redirect(url_for("review.queue"), code=303)
