"""Admin integrations page (/admin/integrations): the platform connectors' signing secrets.

GET  /admin/integrations/          integrations.index    connectors, their addresses, status
POST /admin/integrations/secret    integrations.secret   set (paste or generate): shown once
POST /admin/integrations/remove    integrations.remove   forget a connector's secret
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from verifier.db import get_session
from verifier.errors import ValidationError, VerifierError
from verifier.intake.connectors import (
    PLATFORMS,
    connector_statuses,
    generate_secret,
    remove_connector,
    set_connector_secret,
)
from verifier.intake.forms import RemoveForm, SecretForm
from verifier.vault.storage import Keyring
from verifier.web.auth import admin_guard, admin_required, signed_in_staff

bp = Blueprint("integrations", __name__, url_prefix="/admin/integrations")
bp.before_request(admin_guard)

ENDPOINTS = {"shopify": "connectors.shopify_orders", "woocommerce": "connectors.woocommerce_orders"}


def _render(errors: list[str] | None = None, shown: tuple[str, str] | None = None, status=200):
    connectors = [
        (status_row, url_for(ENDPOINTS[status_row.platform], _external=True))
        for status_row in connector_statuses(get_session())
    ]
    page = render_template(
        "intake/integrations.html",
        connectors=connectors,
        form=SecretForm(),
        remove_form=RemoveForm(),
        errors=errors or [],
        shown=shown,
    )
    return page, status


@bp.get("/")
@admin_required
def index():
    return _render()


@bp.post("/secret")
@admin_required
def secret():
    form = SecretForm()
    if not form.validate_on_submit():
        return _render(["Choose Shopify or WooCommerce and try again."], status=422)
    platform = form.platform.data
    pasted = (form.secret.data or "").strip()
    staff = signed_in_staff()
    session = get_session()
    try:
        value = pasted or generate_secret(platform)
        set_connector_secret(session, Keyring.from_config(current_app.config), platform, value,
                             actor_type="staff", actor_id=staff.id, actor_label=staff.email,
                             now=datetime.now(UTC))  # fmt: skip
    except ValidationError as exc:
        return _render([exc.message], status=422)
    session.commit()
    if pasted:
        flash(f"The {PLATFORMS[platform]} secret is saved (sealed; it is not shown again).",
              "success")  # fmt: skip
    # A generated secret is shown this once, to paste into the platform; a pasted one never is.
    return _render(shown=(PLATFORMS[platform], value) if not pasted else None)


@bp.post("/remove")
@admin_required
def remove():
    form = RemoveForm()
    if not form.validate_on_submit():
        return _render(["Choose Shopify or WooCommerce and try again."], status=422)
    session = get_session()
    staff = signed_in_staff()
    try:
        remove_connector(session, form.platform.data, actor_type="staff", actor_id=staff.id,
                         now=datetime.now(UTC))  # fmt: skip
    except VerifierError as exc:
        return _render([exc.message], status=exc.status)
    session.commit()
    flash(f"The {PLATFORMS[form.platform.data]} connector is removed: its webhooks are refused "
          "until a secret is set again.", "success")  # fmt: skip
    return redirect(url_for("integrations.index"), 303)
