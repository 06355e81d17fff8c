"""Admin delivery log (/admin/webhooks): webhook events with their attempts, redelivery, and
the state of the customer email outbox. Admins only.

    GET  /admin/webhooks/                        webhooks.index      events, newest first
    GET  /admin/webhooks/<event_id>              webhooks.detail     one event and its attempts
    POST /admin/webhooks/<event_id>/redeliver    webhooks.redeliver  queue it to be sent again
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from verifier.db import get_session
from verifier.errors import ConflictError
from verifier.notify.mail import EMAIL_STATES
from verifier.notify.deliverylog import delivery_log, get_event_with_deliveries
from verifier.notify.webhooks import WEBHOOK_STATES, redeliver
from verifier.web.auth import admin_guard, admin_required, signed_in_staff

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")
# A backstop for every page here; each view is also marked admin_required.
bp.before_request(admin_guard)


class RedeliverForm(FlaskForm):
    """No fields: the CSRF token is the whole form."""


def _target_label(url: str) -> str:
    """The webhook address without credentials or query string (safe to show on a page)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@bp.get("/")
@admin_required
def index():
    status: str | None = request.args.get("status", "")
    status = status if status in WEBHOOK_STATES else None
    before = request.args.get("before", type=int)
    log = delivery_log(get_session(), status=status, before_id=before)
    return render_template(
        "notify/index.html",
        log=log,
        status=status,
        states=WEBHOOK_STATES,
        email_states=EMAIL_STATES,
        target=_target_label(current_app.config["WEBHOOK_URL"]),
    )


@bp.get("/<event_id>")
@admin_required
def detail(event_id: str):
    event, deliveries = get_event_with_deliveries(get_session(), event_id)
    return render_template(
        "notify/detail.html",
        event=event,
        deliveries=deliveries,
        target=_target_label(current_app.config["WEBHOOK_URL"]),
    )


@bp.post("/<event_id>/redeliver", endpoint="redeliver")
@admin_required
def redeliver_event(event_id: str):
    form = RedeliverForm()
    if not form.validate_on_submit():
        flash("The form expired. Please try again.", "error")
        return redirect(url_for(".detail", event_id=event_id), 303)
    session = get_session()
    try:
        redeliver(session, event_id, datetime.now(UTC), actor_id=signed_in_staff().id)
    except ConflictError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".detail", event_id=event_id), 303)
    session.commit()
    flash("The event is queued and goes out with the worker's next round.", "success")
    return redirect(url_for(".detail", event_id=event_id), 303)
