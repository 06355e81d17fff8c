"""Admin settings: edit the sampling policy (with a preview before saving) and read its history.

GET  /admin/settings/           the form, filled with the version in force
POST /admin/settings/           "Preview" replays the last 30 days and backtests the chosen
                                window; "Save" adds a version (a change that destroys or
                                exposes something first needs its confirmation box ticked)
GET  /admin/settings/history    every version: who, when, why, and what changed
GET  /admin/settings/brand      what customers see of the shop: name, logo, contact, sender
POST /admin/settings/brand      save it (audited); the logo is re-encoded before it is kept
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from verifier.core.brand import (
    brand_values,
    load_brand,
    reencode_logo,
    save_brand,
    validate_brand,
)
from verifier.core.policies import current_policy
from verifier.db import get_session
from verifier.errors import ConflictError, ValidationError
from verifier.policy.backtest import backtest_policy
from verifier.policy.backtest_forms import BacktestWindowForm
from verifier.policy.changes import (
    count_versions,
    diff_values,
    edit_policy,
    policy_history,
    policy_values,
)
from verifier.policy.consequences import confirmation_token, consequences_of
from verifier.policy.forms import BrandForm, SettingsForm
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
    window = BacktestWindowForm()
    window.fill(datetime.now(UTC).date())
    return render_template("policy/edit.html", form=form, policy=policy, window=window)


def _backtest(session, window: BacktestWindowForm, current, proposed, now):
    """The backtest of the chosen window, or None with the window's fields marked."""
    if not window.validate():
        return None
    start, end = window.window(now.date())
    try:
        return backtest_policy(session, current=current, proposed=proposed, start=start, end=end)
    except ValidationError as exc:
        for name, message in exc.fields.items():
            window[name].errors = [*window[name].errors, message]
        return None


@bp.post("/")
@admin_required
def submit():
    session = get_session()
    policy = current_policy(session)
    form = SettingsForm()
    if not form.validate():
        flash("Some settings need attention; see the messages below.", "error")
        window = BacktestWindowForm(request.form)
        return render_template("policy/edit.html", form=form, policy=policy, window=window), 422
    window = BacktestWindowForm(request.form)
    current = policy_values(policy)
    proposed = form.values()
    now = datetime.now(UTC)
    preview = preview_policy(session, current=current, proposed=proposed, now=now)
    consequences = consequences_of(
        session, current=current, proposed=proposed, preview=preview, now=now
    )
    token = confirmation_token(int(form.base_version.data), proposed)
    page = {"form": form, "policy": policy, "window": window, "consequences": consequences,
            "confirm_token": token, "changes": diff_values(current, proposed)}  # fmt: skip
    if not form.saving:
        backtest = _backtest(session, window, current, proposed, now)
        window.fill(now.date())
        return render_template("policy/edit.html", preview=preview, backtest=backtest, **page)
    if consequences and request.form.get("confirm") != token:
        window.fill(now.date())
        flash(
            "Nothing is saved yet. This change destroys or exposes something: read what it "
            "does below, tick the box to confirm, and save again.",
            "error",
        )
        return render_template("policy/edit.html", confirm_needed=True, **page)
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
        return render_template("policy/edit.html", form=form, policy=policy, window=window), 422
    except ConflictError as exc:
        flash(exc.message, "error")
        return render_template("policy/edit.html", form=form, policy=policy, window=window), 409
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


def _brand_page(form: BrandForm, status: int = 200):
    brand = load_brand(get_session(), current_app.config["SHOP_NAME"])
    return render_template(
        "policy/brand.html", form=form, brand=brand, mail_from=current_app.config["MAIL_FROM"],
        link_host=urlsplit(current_app.config["BASE_URL"]).hostname,
    ), status  # fmt: skip


@bp.get("/brand")
@admin_required
def brand():
    form = BrandForm()
    form.fill(brand_values(get_session()))
    return _brand_page(form)


@bp.post("/brand")
@admin_required
def save_brand_view():
    form = BrandForm()
    if not form.validate():
        flash("The form expired. Please try again.", "error")
        return _brand_page(form, 400)
    session = get_session()
    upload = request.files.get("logo")
    user = signed_in_staff()
    data = upload.read() if upload and upload.filename else b""
    errors: dict[str, str] = {}
    logo = None
    try:
        logo = reencode_logo(data) if data else None
    except ValidationError as exc:
        errors |= exc.fields
    try:
        validate_brand(form.values())
    except ValidationError as exc:
        errors |= exc.fields
    if errors:
        for name, message in errors.items():
            form[name].errors = [*form[name].errors, message]
        flash("Some brand settings need attention; see the messages below.", "error")
        return _brand_page(form, 422)
    changed = save_brand(
        session, form.values(), logo=logo, remove_logo=bool(form.remove_logo.data),
        actor_label=user.email, actor_id=user.id, now=datetime.now(UTC),
    )  # fmt: skip
    if not changed:
        flash("Nothing changed, so nothing was saved.", "info")
        return redirect(url_for("settings.brand"), code=303)
    session.commit()
    flash("Brand saved: customers see it on their next page or email.", "success")
    return redirect(url_for("settings.brand"), code=303)
