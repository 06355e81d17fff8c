"""Admin staff pages.

GET  /admin/staff                                   staff list, invitation form
POST /admin/staff                                   invite: temporary password shown once
POST /admin/staff/<id>/role                         make reviewer or admin
POST /admin/staff/<id>/reset-password               new temporary password, shown once
POST /admin/staff/<id>/deactivate|reactivate|reset-two-factor
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, url_for

from verifier.accounts import (
    change_role,
    invite_user,
    list_staff,
    reset_password,
    reset_two_factor,
    set_active,
)
from verifier.admin.blueprint import bp
from verifier.admin.forms import ActionForm, InviteForm, RoleForm
from verifier.auth import admin_required, current_staff
from verifier.db import get_session
from verifier.errors import ValidationError, VerifierError
from verifier.staff.forms import apply_domain_errors

# The one-click changes: action in the URL -> (domain call, message when done).
ACTIONS = {
    "deactivate": (
        lambda db, uid, actor, now: set_active(db, uid, False, actor=actor, now=now),
        "{email} is deactivated and signed out everywhere.",
    ),
    "reactivate": (
        lambda db, uid, actor, now: set_active(db, uid, True, actor=actor, now=now),
        "{email} can sign in again.",
    ),
    "reset-two-factor": (
        lambda db, uid, actor, now: reset_two_factor(db, uid, actor=actor, now=now),
        "Two-factor sign-in is removed for {email}; they can set it up again.",
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _render_list(invite: InviteForm | None = None, errors=(), status: int = 200):
    return render_template(
        "admin/staff.html",
        users=list_staff(get_session()),
        me=current_staff(),
        invite=invite or InviteForm(formdata=None),
        action_form=ActionForm(formdata=None),
        role_form=RoleForm(formdata=None),
        errors=list(errors),
    ), status


@bp.get("/staff")
@admin_required
def staff():
    return _render_list()


@bp.post("/staff")
@admin_required
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _render_list(form, status=422)
    db = get_session()
    try:
        user, password = invite_user(
            db, form.email.data, form.role.data, actor=current_staff(), now=_now()
        )
    except ValidationError as exc:
        return _render_list(form, apply_domain_errors(form, exc), exc.status)
    except VerifierError as exc:
        return _render_list(form, [exc.message], exc.status)
    db.commit()
    return render_template("admin/staff_password.html", user=user, password=password, new=True)


@bp.post("/staff/<int:user_id>/reset-password")
@admin_required
def reset_staff_password(user_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_session()
    try:
        user, password = reset_password(db, user_id, actor=current_staff(), now=_now())
    except VerifierError as exc:
        return _render_list(errors=[exc.message], status=exc.status)
    db.commit()
    return render_template("admin/staff_password.html", user=user, password=password, new=False)


@bp.post("/staff/<int:user_id>/role")
@admin_required
def staff_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        return _render_list(errors=["Choose reviewer or admin."], status=422)
    db = get_session()
    try:
        user = change_role(db, user_id, form.role.data, actor=current_staff(), now=_now())
    except VerifierError as exc:
        return _render_list(errors=[exc.message], status=exc.status)
    db.commit()
    flash(f"{user.email} is now {'an admin' if user.role == 'admin' else 'a reviewer'}.", "success")
    return redirect(url_for(".staff"))


@bp.post("/staff/<int:user_id>/<any(deactivate, reactivate, 'reset-two-factor'):action>")
@admin_required
def staff_action(user_id: int, action: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    change, message = ACTIONS[action]
    db = get_session()
    try:
        user = change(db, user_id, current_staff(), _now())
    except VerifierError as exc:
        return _render_list(errors=[exc.message], status=exc.status)
    db.commit()
    flash(message.format(email=user.email), "success")
    return redirect(url_for(".staff"))
