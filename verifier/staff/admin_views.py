"""The admin blueprint (/admin): staff accounts and the audit log, for signed-in admins only.

GET  /admin/staff                                   staff list, invitation form
POST /admin/staff                                   invite: temporary password shown once
POST /admin/staff/two-factor-rule                   two-factor for admins only or every staff member
POST /admin/staff/<id>/role                         make reviewer or admin
POST /admin/staff/<id>/reset-password               new temporary password, shown once
POST /admin/staff/<id>/deactivate|reactivate|reset-two-factor
GET  /admin/audit                                   audit events newest first, 50 a page;
                                                    filters and keyset paging in the query string
GET  /admin/audit/export?format=csv|jsonl&since&until   the events of a date range, downloaded
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)  # fmt: skip
from sqlalchemy import select

from verifier.core.audit import AuditFilters, AuditPage, list_events, record_event
from verifier.core.audit_export import EXPORT_FORMATS, describe_details, export_lines
from verifier.db import get_session
from verifier.errors import ValidationError, VerifierError
from verifier.staff.accounts import (
    change_role,
    invite_user,
    list_staff,
    reset_password,
    reset_two_factor,
    set_active,
)
from verifier.staff.admin_forms import (
    ActionForm,
    AuditFilterForm,
    InviteForm,
    RoleForm,
    TwoFactorRuleForm,
)
from verifier.web.auth import admin_guard, admin_required, current_staff, signed_in_staff
from verifier.web.forms import apply_domain_errors
from verifier.web.passkeys import StaffPasskey
from verifier.web.staff_sessions import EVERYONE, set_two_factor_scope, two_factor_scope

bp = Blueprint("admin", __name__, url_prefix="/admin")

# A backstop for every admin page: reviewers get 403, anonymous users the sign-in page, admins
# without two-factor (when required) the enrolment page.
bp.before_request(admin_guard)

FILTER_ARGS = ("action", "actor_type", "actor", "target_type", "target_id", "since", "until")

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


def _render_list(
    invite: InviteForm | None = None,
    errors=(),
    status: int = 200,
    rule_form: TwoFactorRuleForm | None = None,
):
    db = get_session()
    users = list_staff(db)
    with_passkeys = set(db.scalars(select(StaffPasskey.user_id).distinct()))
    if rule_form is None:
        rule_form = TwoFactorRuleForm(formdata=None, two_factor_for=two_factor_scope(db))
    return render_template(
        "staff/admin/staff.html",
        users=users,
        rule_form=rule_form,
        with_passkeys=with_passkeys,
        without_two_factor=sum(
            1 for u in users if u.active and not u.totp_secret and u.id not in with_passkeys
        ),
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
            db, form.email.data, form.role.data, actor=signed_in_staff(), now=_now()
        )
    except ValidationError as exc:
        return _render_list(form, apply_domain_errors(form, exc), exc.status)
    except VerifierError as exc:
        return _render_list(form, [exc.message], exc.status)
    db.commit()
    return render_template(
        "staff/admin/staff_password.html", user=user, password=password, new=True
    )


@bp.post("/staff/two-factor-rule")
@admin_required
def two_factor_rule():
    form = TwoFactorRuleForm()
    if not form.validate_on_submit():
        return _render_list(errors=["Choose admins only or every staff member."], status=422)
    db = get_session()
    me = signed_in_staff()
    changed = set_two_factor_scope(db, form.two_factor_for.data, actor=me, now=_now())
    db.commit()
    if not changed:
        flash("Nothing changed: that is already the rule.", "info")
    elif form.two_factor_for.data == EVERYONE:
        flash(
            "Every staff member now needs two-factor sign-in. Anyone without it is asked to set "
            "it up at their next page.",
            "success",
        )
    else:
        flash("Two-factor sign-in is now required of admins only.", "success")
    if form.two_factor_for.data == EVERYONE and not me.totp_secret:
        return redirect(url_for("staff.two_factor"))
    return redirect(url_for(".staff"))


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
    return render_template(
        "staff/admin/staff_password.html", user=user, password=password, new=False
    )


@bp.post("/staff/<int:user_id>/role")
@admin_required
def staff_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        return _render_list(errors=["Choose reviewer or admin."], status=422)
    db = get_session()
    try:
        user = change_role(db, user_id, form.role.data, actor=signed_in_staff(), now=_now())
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


@bp.app_template_filter("audit_details")
def audit_details(value) -> list[tuple[str, str]]:
    """Audit details as (label, text) pairs for a definition list; Jinja escapes both."""
    return describe_details(value)


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@bp.get("/audit")
@admin_required
def audit():
    form = AuditFilterForm(formdata=request.args)
    if not form.validate():
        page = AuditPage([], None, None, {})
        status = 422
    else:
        filters = AuditFilters(
            action_prefix=(form.action.data or "").strip(),
            actor_type=form.actor_type.data or "",
            actor=(form.actor.data or "").strip(),
            target_type=(form.target_type.data or "").strip(),
            target_id=(form.target_id.data or "").strip(),
            since=_day_start(form.since.data) if form.since.data else None,
            until=_day_start(form.until.data + timedelta(days=1)) if form.until.data else None,
        )
        page = list_events(
            get_session(), filters, before_id=form.before.data, after_id=form.after.data
        )
        status = 200
    # The filters, kept in the paging links.
    kept = {name: request.args[name] for name in FILTER_ARGS if request.args.get(name)}
    return render_template("staff/admin/audit.html", form=form, page=page, kept=kept), status


@bp.get("/audit/export")
@admin_required
def audit_export():
    """The events of the chosen dates (all when none) as a CSV or JSON-lines download."""
    form = AuditFilterForm(formdata=request.args)
    fmt = request.args.get("format", "csv")
    if fmt not in EXPORT_FORMATS or not form.validate():
        abort(422)
    since = _day_start(form.since.data) if form.since.data else None
    until = _day_start(form.until.data + timedelta(days=1)) if form.until.data else None
    session = get_session()
    # Reading the whole log out is itself audited (like viewing a document).
    record_event(
        session, "audit.exported", actor_type="staff", actor_id=signed_in_staff().id,
        details={"format": fmt, "since": str(form.since.data or ""),
                 "until": str(form.until.data or "")},
    )  # fmt: skip
    session.commit()
    name = f"audit-{form.since.data or 'start'}-{form.until.data or 'now'}.{fmt}"
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    # Built whole and the transaction ended before answering: no read stays open on the table.
    body = "".join(export_lines(session, fmt, since, until))
    session.rollback()
    return Response(
        body, mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip
