"""Admin settings: edit the sampling policy (with a preview before saving) and read its history.

GET  /admin/settings/           the form, filled with the version in force
POST /admin/settings/           "Preview" replays the last 30 days; "Save" adds a version
GET  /admin/settings/history    every version: who, when, why, and what changed
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for

from verifier.core.policies import current_policy
from verifier.db import get_session
from verifier.errors import ConflictError, ValidationError
from verifier.policy.changes import (
    count_versions,
    diff_values,
    edit_policy,
    policy_history,
    policy_values,
)
from verifier.policy.forms import SettingsForm
from verifier.policy.preview import preview_policy
from verifier.web.auth import admin_required, signed_in_staff

bp = Blueprint("settings", __name__, url_prefix="/admin/settings")
HISTORY_PAGE_SIZE = 20


@bp.get("/")
@admin_required
def edit():
    session = get_session()
    policy = current_policy(session)
    form = SettingsForm()
    form.fill(policy_values(policy), policy.version)
    return render_template("policy/edit.html", form=form, policy=policy)


@bp.post("/")
@admin_required
def submit():
    session = get_session()
    policy = current_policy(session)
    form = SettingsForm()
    if not form.validate():
        flash("Some settings need attention; see the messages below.", "error")
        return render_template("policy/edit.html", form=form, policy=policy), 422
    current = policy_values(policy)
    proposed = form.values()
    if not form.saving:
        preview = preview_policy(session, current=current, proposed=proposed, now=datetime.now(UTC))
        return render_template(
            "policy/edit.html",
            form=form,
            policy=policy,
            preview=preview,
            changes=diff_values(current, proposed),
        )
    user = signed_in_staff()
    try:
        saved = edit_policy(
            session,
            base_version=int(form.base_version.data),
            proposed=proposed,
            reason=form.reason.data,
            actor_label=user.email,
            actor_id=user.id,
            now=datetime.now(UTC),
        )
    except ValidationError as exc:
        for name, message in exc.fields.items():
            form[name].errors.append(message)
        return render_template("policy/edit.html", form=form, policy=policy), 422
    except ConflictError as exc:
        flash(exc.message, "error")
        return render_template("policy/edit.html", form=form, policy=policy), 409
    if saved is None:
        flash("Nothing changed, so no new version was saved.", "info")
        return redirect(url_for("settings.edit"), code=303)
    session.commit()
    flash(f"Saved as policy version {saved.version}.", "success")
    return redirect(url_for("settings.history"), code=303)


@bp.get("/history")
@admin_required
def history():
    session = get_session()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    entries = policy_history(session, page=page, per_page=HISTORY_PAGE_SIZE)
    total = count_versions(session)
    return render_template(
        "policy/history.html",
        entries=entries,
        page=page,
        more=page * HISTORY_PAGE_SIZE < total,
        total=total,
    )
