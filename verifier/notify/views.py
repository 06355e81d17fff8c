"""Admin webhooks pages (/admin/webhooks): the shop's endpoints (add, edit, enable/disable,
rotate the secret, delete, test ping), the delivery log with each event's attempts and
redelivery, and the state of the customer email outbox. Admins only.

    GET  /admin/webhooks/                                   webhooks.index           endpoints and events
    GET  /admin/webhooks/endpoints/new                      webhooks.new_endpoint    the add form
    POST /admin/webhooks/endpoints/new                      webhooks.new_endpoint    add; shows the secret once
    GET  /admin/webhooks/endpoints/<id>                     webhooks.edit_endpoint   one endpoint
    POST /admin/webhooks/endpoints/<id>                     webhooks.edit_endpoint   change URL, filter, switch
    POST /admin/webhooks/endpoints/<id>/enable              webhooks.enable_endpoint
    POST /admin/webhooks/endpoints/<id>/disable             webhooks.disable_endpoint
    POST /admin/webhooks/endpoints/<id>/rotate              webhooks.rotate_secret   new secret, shown once
    GET  /admin/webhooks/endpoints/<id>/delete              webhooks.delete_endpoint the confirmation
    POST /admin/webhooks/endpoints/<id>/delete              webhooks.delete_endpoint delete (confirmed)
    POST /admin/webhooks/endpoints/<id>/ping                webhooks.ping_endpoint   send a signed ping now
    GET  /admin/webhooks/<event_id>                         webhooks.detail          one event and its attempts
    POST /admin/webhooks/<event_id>/redeliver               webhooks.redeliver       queue it to be sent again
"""  # noqa: E501

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from verifier.core.endpoints import live_endpoints, url_label
from verifier.db import get_session, new_session
from verifier.errors import ConflictError, ValidationError
from verifier.notify.deliverylog import delivery_log, endpoints_by_id, get_event_with_deliveries
from verifier.notify.endpoints import (
    EndpointInput,
    Target,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    queue_ping,
    rotate_endpoint_secret,
    set_endpoint_enabled,
    update_endpoint,
)
from verifier.notify.forms import DeleteForm, EmptyForm, EndpointForm, RotateForm
from verifier.notify.mail import EMAIL_STATES
from verifier.notify.webhooks import WEBHOOK_STATES, deliver_event_now, redeliver
from verifier.vault.storage import Keyring
from verifier.web.auth import admin_guard, admin_required, signed_in_staff

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")
# A backstop for every page here; each view is also marked admin_required.
bp.before_request(admin_guard)
EXPIRED = "The form expired. Please try again."


def _now() -> datetime:
    return datetime.now(UTC)


def _production() -> bool:
    return current_app.config.get("ENV_NAME") == "production"


def _keyring() -> Keyring:
    return Keyring.from_config(current_app.config)


@bp.get("/")
@admin_required
def index():
    status: str | None = request.args.get("status", "")
    status = status if status in WEBHOOK_STATES else None
    order = request.args.get("order", "").strip()[:100] or None
    before = request.args.get("before", type=int)
    session = get_session()
    log = delivery_log(session, status=status, order=order, before_id=before)
    return render_template(
        "notify/index.html",
        log=log,
        status=status,
        order=order,
        states=WEBHOOK_STATES,
        email_states=EMAIL_STATES,
        endpoints=live_endpoints(session),
        target=url_label(current_app.config["WEBHOOK_URL"]),
        form=EmptyForm(),
    )


def _spec(form: EndpointForm) -> EndpointInput:
    return EndpointInput(
        url=form.url.data or "",
        description=form.description.data or "",
        event_types=form.chosen_types(),
        enabled=bool(form.enabled.data),
    )


def _show_field_errors(form: EndpointForm, exc: ValidationError) -> None:
    for name, message in (exc.fields or {"url": exc.message}).items():
        getattr(form, name, form.url).errors = [message]


@bp.route("/endpoints/new", methods=["GET", "POST"])
@admin_required
def new_endpoint():
    form = EndpointForm()
    if request.method == "GET" or not form.validate_on_submit():
        code = 422 if request.method == "POST" else 200
        return render_template("notify/endpoint_form.html", form=form, endpoint=None), code
    session = get_session()
    try:
        endpoint, secret = create_endpoint(session, _keyring(), _spec(form),
                                           production=_production(),
                                           actor_id=signed_in_staff().id, now=_now())  # fmt: skip
    except ValidationError as exc:
        _show_field_errors(form, exc)
        return render_template("notify/endpoint_form.html", form=form, endpoint=None), 422
    session.commit()
    # Shown in this answer only (never stored in plaintext, never in a redirect or the session).
    return render_template("notify/secret.html", endpoint=endpoint, secret=secret, created=True)


@bp.route("/endpoints/<int:endpoint_id>", methods=["GET", "POST"])
@admin_required
def edit_endpoint(endpoint_id: int):
    session = get_session()
    endpoint = get_endpoint(session, endpoint_id)
    form = EndpointForm(obj=None if request.method == "POST" else endpoint)
    if request.method == "GET":
        form.scope.data = "chosen" if endpoint.event_types else "all"
        form.event_types.data = list(endpoint.event_types)
    elif form.validate_on_submit():
        try:
            update_endpoint(session, endpoint_id, _spec(form), production=_production(),
                            actor_id=signed_in_staff().id, now=_now())  # fmt: skip
        except ValidationError as exc:
            session.rollback()
            _show_field_errors(form, exc)
        else:
            session.commit()
            flash("The endpoint is saved. Events from now on follow the new settings.", "success")
            return redirect(url_for(".edit_endpoint", endpoint_id=endpoint_id), 303)
    code = 422 if request.method == "POST" else 200
    return render_template("notify/endpoint_form.html", form=form, endpoint=endpoint,
                           rotate=RotateForm(), actions=EmptyForm()), code  # fmt: skip


def _switch(endpoint_id: int, enabled: bool):
    form = EmptyForm()
    if not form.validate_on_submit():
        flash(EXPIRED, "error")
        return redirect(url_for(".edit_endpoint", endpoint_id=endpoint_id), 303)
    session = get_session()
    set_endpoint_enabled(session, endpoint_id, enabled, actor_id=signed_in_staff().id,
                         now=_now())  # fmt: skip
    session.commit()
    flash("The endpoint is enabled: waiting events go out with the worker's next round."
          if enabled else
          "The endpoint is disabled: new events are not queued for it, and those already "
          "waiting are held until it is enabled again.", "success")  # fmt: skip
    return redirect(url_for(".edit_endpoint", endpoint_id=endpoint_id), 303)


@bp.post("/endpoints/<int:endpoint_id>/enable")
@admin_required
def enable_endpoint(endpoint_id: int):
    return _switch(endpoint_id, True)


@bp.post("/endpoints/<int:endpoint_id>/disable")
@admin_required
def disable_endpoint(endpoint_id: int):
    return _switch(endpoint_id, False)


@bp.post("/endpoints/<int:endpoint_id>/rotate")
@admin_required
def rotate_secret(endpoint_id: int):
    form = RotateForm()
    session = get_session()
    endpoint = get_endpoint(session, endpoint_id)
    if not form.validate_on_submit():
        flash(EXPIRED if not form.overlap.errors else "Choose how long the overlap lasts.", "error")
        return redirect(url_for(".edit_endpoint", endpoint_id=endpoint_id), 303)
    overlap = timedelta(hours=int(form.overlap.data or 0))
    secret = rotate_endpoint_secret(session, _keyring(), endpoint_id, overlap=overlap,
                                    actor_id=signed_in_staff().id, now=_now())  # fmt: skip
    session.commit()
    return render_template("notify/secret.html", endpoint=endpoint, secret=secret, created=False)


@bp.route("/endpoints/<int:endpoint_id>/delete", methods=["GET", "POST"],
          endpoint="delete_endpoint")  # fmt: skip
@admin_required
def delete_endpoint_view(endpoint_id: int):
    session = get_session()
    endpoint = get_endpoint(session, endpoint_id)
    form = DeleteForm()
    if request.method == "POST" and form.validate_on_submit():
        dropped = delete_endpoint(session, endpoint_id, actor_id=signed_in_staff().id,
                                  now=_now())  # fmt: skip
        session.commit()
        flash(f"The endpoint {endpoint.label} is deleted and its secrets erased."
              + (f" {dropped} waiting event(s) for it will not be sent." if dropped else ""),
              "success")  # fmt: skip
        return redirect(url_for(".index"), 303)
    code = 422 if request.method == "POST" else 200
    return render_template("notify/endpoint_delete.html", endpoint=endpoint, form=form), code


@bp.post("/endpoints/<int:endpoint_id>/ping")
@admin_required
def ping_endpoint(endpoint_id: int):
    form = EmptyForm()
    if not form.validate_on_submit():
        flash(EXPIRED, "error")
        return redirect(url_for(".edit_endpoint", endpoint_id=endpoint_id), 303)
    session = get_session()
    event = queue_ping(session, endpoint_id, actor_id=signed_in_staff().id, now=_now())
    session.commit()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    report = deliver_event_now(lambda: new_session(app), event.id, _now(),
                               default=Target(config["WEBHOOK_URL"], (config["WEBHOOK_SECRET"],)),
                               keyring=_keyring(), timeout=config["WEBHOOK_TIMEOUT"])  # fmt: skip
    session.expire_all()
    row, attempts = get_event_with_deliveries(session, event.event_id)
    answer = f"HTTP {row.last_status_code}" if row.last_status_code else "no answer"
    if report.sent:
        flash(f"The test ping was delivered ({answer}, {attempts[0].duration_ms} ms).", "success")
    else:
        flash(f"The test ping was not accepted ({answer}): {row.last_error or 'see below'}. "
              "Check the address and that the receiver answers 2xx.", "error")  # fmt: skip
    return redirect(url_for(".detail", event_id=event.event_id), 303)


@bp.get("/<event_id>")
@admin_required
def detail(event_id: str):
    session = get_session()
    event, deliveries = get_event_with_deliveries(session, event_id)
    endpoints = endpoints_by_id(session, {event.endpoint_id} if event.endpoint_id else set())
    return render_template(
        "notify/detail.html",
        event=event,
        deliveries=deliveries,
        endpoint=endpoints.get(event.endpoint_id) if event.endpoint_id else None,
        target=url_label(current_app.config["WEBHOOK_URL"]),
    )


@bp.post("/<event_id>/redeliver", endpoint="redeliver")
@admin_required
def redeliver_event(event_id: str):
    form = EmptyForm()
    if not form.validate_on_submit():
        flash(EXPIRED, "error")
        return redirect(url_for(".detail", event_id=event_id), 303)
    session = get_session()
    try:
        redeliver(session, event_id, _now(), actor_id=signed_in_staff().id)
    except ConflictError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".detail", event_id=event_id), 303)
    session.commit()
    flash("The event is queued and goes out with the worker's next round.", "success")
    return redirect(url_for(".detail", event_id=event_id), 303)
