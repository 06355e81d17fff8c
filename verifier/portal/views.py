"""Customer portal: exchange a link for a case-scoped session, upload, submit, or decline."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import wraps

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.exceptions import RequestEntityTooLarge

from verifier.core.i18n import N_, format_day, format_money, format_when
from verifier.core.policies import current_settings
from verifier.core.settings import REQUIRED_SETS
from verifier.db import get_session
from verifier.errors import ConflictError, StorageFull, UploadRejected
from verifier.models import DOCUMENT_KINDS, UploadLink
from verifier.portal import cardmask
from verifier.portal.capacity import decode_caps
from verifier.portal.covering import cover_documents, parse_boxes
from verifier.portal.customer_mail import PortalContext, requirement_lines
from verifier.portal.documents import (
    DEFAULT_LIMITS,
    PipelineLimits,
    get_default_pool,
)
from verifier.portal.forms import DeclineForm, SubmitForm
from verifier.portal.guidance import capture_guidance, upload_page_guidance
from verifier.portal.links import (
    EXPIRED_LINK,
    INVALID,
    active_expiry,
    create_handoff_link,
    link_url,
    resolve_token,
)
from verifier.portal.receipts import ARRIVAL, queue_receipt
from verifier.portal.submissions import (
    CARD_KINDS,
    KIND_LABELS,
    OPEN_FOR_UPLOAD,
    PENDING_COVER,
    allowed_kinds,
    decline_verification,
    load_case,
    portal_state,
    submit_documents,
)
from verifier.portal.uploads import accept_upload
from verifier.vault.storage import Keyring, open_document
from verifier.web.http import wants_json
from verifier.web.i18n import customer_locale
from verifier.web.limits import limiter

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__)
# /readyz (web area) reports what the portal needs: without OCR, uploads are refused.
bp.record_once(
    lambda state: state.app.extensions.setdefault("verifier.readiness", {}).update(
        card_masking=cardmask.check_engine
    )
)
bp.add_app_template_global(lambda count, kind: masked_line(count, kind), "masked_line")


PORTAL_KEY = "portal"
# The portal session is short-lived: it is renewed while the customer works, and never
# outlives the link it came from.
SESSION_IDLE = timedelta(hours=1)
# The answer to each refusal that is not about the file itself (422 is).
UPLOAD_STATUS = {"case_closed": 409, "too_many_uploads": 429, "too_large": 413,
                 "decoder_busy": 503, "decoder_limit": 429, "masking_unavailable": 503,
                 "storage_full": 507, "cover_required": 422}  # fmt: skip
# A statement or bill often runs to several pages; a card or an ID never needs more than three.
PDF_PAGES = {"proof_of_address": 6}
TOO_MANY_PAGES = N_(
    "This PDF has more pages than we accept in one file (at most {pages}). Please save only "
    "the page that shows your name, address and the date as a PDF (most viewers can print or "
    "export a single page), or take a screenshot or photo of that page, and upload that."
)
# How each way of sending a card photo says its numbers were covered (Document.cover).
COVER_FIELDS = {"painted": "painted", "pending": PENDING_COVER}
UPLOAD_OVERHEAD_BYTES = 256 * 1024  # multipart framing and the CSRF field around one file


def _now() -> datetime:
    return datetime.now(UTC)


def pipeline_limits(kind: str | None = None) -> PipelineLimits:
    pages = PDF_PAGES.get(kind or "", DEFAULT_LIMITS.max_pdf_pages)
    return replace(
        DEFAULT_LIMITS, max_bytes=current_app.config["UPLOAD_MAX_FILE_BYTES"], max_pdf_pages=pages
    )


def _max_mb() -> int:
    return int(current_app.config["UPLOAD_MAX_FILE_BYTES"] // (1024 * 1024))


def _limit_text() -> str:
    limit = current_app.config["UPLOAD_MAX_FILE_BYTES"]
    if limit >= 1024 * 1024:
        return f"{round(limit / (1024 * 1024), 1):g} MB"
    return f"{limit // 1024} KB"


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge):
    """A file over the cap: say the limit and what to do, on the page or in JSON."""
    limit = _limit_text()
    message = _(
        "This file is too large: the limit is %(limit)s. Please send a smaller photo "
        "(most phones can take photos at a lower resolution, or send a screenshot), or a PDF "
        "under %(limit)s. Nothing was uploaded.",
        limit=limit,
    )
    if wants_json():
        return jsonify({"error": {"code": "too_large", "message": message, "fields": {}}}), 413
    return render_template("portal/too_large.html", message=message), 413


@bp.before_request
def _bound_upload_size():
    # Files are parsed into memory (see web.InMemoryRequest): the cap bounds that memory.
    request.max_content_length = current_app.config["UPLOAD_MAX_FILE_BYTES"] + UPLOAD_OVERHEAD_BYTES


def keyring() -> Keyring:
    return Keyring.from_config(current_app.config)


@bp.after_request
def _portal_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def portal_session_required(view):
    """Load the case this browser was given by its link, or show how to get back in."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        data = session.get(PORTAL_KEY)
        now = _now()
        if not data or data.get("until", 0) < now.timestamp():
            session.pop(PORTAL_KEY, None)
            return render_template("portal/session_ended.html"), 403
        db = get_session()
        link = db.get(UploadLink, data["link"])
        if link is None or link.revoked_at is not None or link.case_id != data["case"]:
            session.pop(PORTAL_KEY, None)
            return render_template("portal/invalid.html"), 404
        g.portal_case_id = link.case_id
        g.portal_link_expires = link.expires_at
        order = link.case.order
        g.portal_locale, g.portal_timezone = order.locale, order.timezone
        _renew_portal_session(link)
        return view(*args, **kwargs)

    return wrapped


def _renew_portal_session(link: UploadLink) -> None:
    until = min(_now() + SESSION_IDLE, max(link.expires_at, _now()))
    session[PORTAL_KEY] = {"case": link.case_id, "link": link.id, "until": until.timestamp()}


@bp.get("/u/<token>")
@limiter.limit("30 per minute")
def open_link(token: str):
    """Exchange the emailed token for a portal session; changes nothing in the database."""
    db = get_session()
    resolution = resolve_token(db, token, _now())
    if resolution.outcome == INVALID:
        return render_template("portal/invalid.html"), 404
    assert resolution.link is not None  # every outcome but INVALID comes with its link
    if resolution.outcome == EXPIRED_LINK:
        order = resolution.link.case.order
        g.portal_locale, g.portal_timezone = order.locale, order.timezone
        return render_template("portal/expired.html", reference=order.external_id), 410
    session.pop(PORTAL_KEY, None)
    _renew_portal_session(resolution.link)
    # 303 to a token-free address: the token leaves the address bar and the history.
    return redirect(url_for("portal.index"), code=303)


@bp.get("/portal/")
@portal_session_required
def index():
    db = get_session()
    settings = current_settings(db)
    state = portal_state(db, g.portal_case_id, settings)
    db.commit()
    order = state.order
    locale = customer_locale()
    submitted = state.case.submitted_at
    context = {
        "state": state,
        "reference": order.external_id,
        "placed_on": format_day(order.placed_at, locale, order.timezone),
        "amount": format_money(order.amount_minor, order.currency, locale),
        # The case's deadline, not this browser's link: a phone handed on from a desktop
        # holds a one-hour link, but the case stays open until its emailed link expires.
        "deadline": format_when(
            active_expiry(db, g.portal_case_id) or g.portal_link_expires, locale, order.timezone
        ),
        "submitted_when": format_when(submitted, locale, order.timezone) if submitted else "",
        "fingerprint": _fingerprint(state),
    }
    if not state.open_for_upload:
        return render_template("portal/status.html", **context)
    kinds = allowed_kinds(state)
    required = (
        [list(state.requested_kinds)]
        if state.requested_kinds
        else [sorted(s) for s in REQUIRED_SETS[state.requirement]]
    )
    return render_template(
        "portal/upload.html",
        required_sets_json=json.dumps(required),
        uploaded_json=json.dumps(sorted(state.uploaded)),
        kinds=kinds,
        labels={kind: _(label) for kind, label in KIND_LABELS.items()},
        requirements=[_(line) for line in requirement_lines(state.requirement)],
        submit_form=SubmitForm(),
        max_mb=_max_mb(),
        card_kinds=CARD_KINDS,
        pending_cover=PENDING_COVER,
        pdf_pages={k: pipeline_limits(k).max_pdf_pages for k in kinds},
        **upload_page_guidance(kinds, required, _),
        **context,
    )


def _fingerprint(state) -> str:
    """What the desktop tab compares to notice an upload or a submission made elsewhere."""
    docs = sorted(f"{d.id}:{d.cover or ''}:{d.byte_size}" for ds in state.uploaded.values()
                  for d in ds)  # fmt: skip
    return f"{state.case.status}|{','.join(docs)}"


@bp.get("/portal/status")
@portal_session_required
def status():
    """A small summary the page polls, so a tab learns of uploads sent from another device."""
    db = get_session()
    state = portal_state(db, g.portal_case_id, current_settings(db))
    db.commit()
    return jsonify(
        {
            "status": state.case.status,
            "open": state.open_for_upload,
            "ready": sorted(state.ready_kinds),
            "complete": state.complete,
            "fingerprint": _fingerprint(state),
        }
    )


def _document_json(kind: str, docs) -> dict:
    return {
        "kind": kind,
        "pages": len(docs),
        "warnings": [w | {"message": _(w["message"])} for d in docs for w in d.quality_warnings],
        "previews": [url_for("portal.preview", doc_id=d.id, v=d.byte_size) for d in docs],
        "ids": [d.id for d in docs],
        "needs_cover": any(d.cover == PENDING_COVER for d in docs),
        "auto_masked": (masked := sum(d.auto_masked for d in docs)),
        "masked_message": masked_line(masked, kind) if masked else None,
    }


def _refused(kind: str, exc: UploadRejected | StorageFull):
    log.info("upload refused for case %s: %s", g.portal_case_id, exc.code)
    status = UPLOAD_STATUS.get(exc.code, 422)
    message = refusal_message(exc)
    if exc.code == "too_many_pages":
        message = _(TOO_MANY_PAGES).format(pages=pipeline_limits(kind).max_pdf_pages)
    if wants_json():
        answer = jsonify({"error": {"code": exc.code, "message": message, "fields": {}}})
        answer.status_code = status
        if status in (429, 503):
            answer.headers["Retry-After"] = "5"
        return answer
    flash(f"{_(KIND_LABELS[kind])}: {message}", "error")
    return redirect(url_for("portal.index", _anchor=f"slot-{kind}"), code=303)


def _chosen_file() -> bytes:
    """The bytes of whichever picker was used: the camera ("photo") or the file ("file")."""
    named = False
    for name in ("file", "photo"):
        for file in request.files.getlist(name):
            data = file.read()
            if data:
                return data
            named = named or bool(file.filename)
    if named:
        return b""  # a chosen but empty file: the pipeline says so in its own words
    raise UploadRejected(N_("Choose a file or take a photo first."), code="no_file")


def _cover_field() -> str | None:
    # The browser's masking tool says how; without JavaScript the customer ticks a box.
    if request.form.get("covered") == "yes":
        return "declared"
    return COVER_FIELDS.get(request.form.get("cover", ""))


@bp.post("/portal/documents/<kind>")
@limiter.limit("30 per minute; 300 per hour")
@portal_session_required
def upload(kind: str):
    """Take one file for one document kind: decode and re-encode it, encrypt, record it."""
    if kind not in DOCUMENT_KINDS:
        abort(404)
    case_id = g.portal_case_id
    db = get_session()
    settings = current_settings(db)
    try:
        data = _chosen_file()
        with decode_caps(case_id, request.remote_addr):
            docs = accept_upload(
                db, case_id, kind, data, settings=settings, limits=pipeline_limits(kind),
                pool=get_default_pool(), uploads_dir=current_app.config["UPLOADS_DIR"],
                keyring=keyring(), now=_now, cover=_cover_field(),
            )  # fmt: skip
    except (UploadRejected, StorageFull) as exc:
        return _refused(kind, exc)
    if wants_json():
        return jsonify({"document": _document_json(kind, docs)}), 201
    label = _(KIND_LABELS[kind])
    flash(_("%(document)s: received.", document=label), "success")
    if masked := sum(d.auto_masked for d in docs):
        flash(f"{label}: {masked_line(masked, kind)}", "success")
    for warning in (w for d in docs for w in d.quality_warnings):
        flash(f"{label}: {_(warning['message'])}", "warning")
    return redirect(url_for("portal.index", _anchor=f"slot-{kind}"), code=303)


@bp.post("/portal/documents/<kind>/cover")
@limiter.limit("30 per minute")
@portal_session_required
def cover(kind: str):
    """Paint the customer's boxes over a card photo's stored pages (HEIC and PDF cards)."""
    if kind not in CARD_KINDS:
        abort(404)
    form = SubmitForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        if request.form.get("confirmed") != "yes":
            raise UploadRejected(
                N_("Please confirm that the numbers are covered (tick the box) first."),
                code="cover_required",
            )
        docs = cover_documents(
            db, g.portal_case_id, kind, parse_boxes(request.form.get("boxes")),
            settings=current_settings(db), uploads_dir=current_app.config["UPLOADS_DIR"],
            keyring=keyring(), now=_now(),
        )  # fmt: skip
    except UploadRejected as exc:
        db.rollback()
        return _refused(kind, exc)
    if wants_json():
        return jsonify({"document": _document_json(kind, docs)}), 200
    flash(_("%(document)s: covered.", document=_(KIND_LABELS[kind])), "success")
    return redirect(url_for("portal.index", _anchor=f"slot-{kind}"), code=303)


def masked_line(count: int, kind: str) -> str:
    """What the customer is told the server covered on their upload."""
    if kind == "card_back":
        return _("we covered the security code and numbers on your photo (%(num)d covered).",
                 num=count)  # fmt: skip
    return ngettext(
        "we covered the card number on your photo (%(num)d covered, the last four digits left).",
        "we covered the card numbers on your photo (%(num)d covered, the last four digits left).",
        count,
    )


def refusal_message(exc: UploadRejected | StorageFull) -> str:
    """The refusal in the customer's language (the English when it has no translation)."""
    template = getattr(exc, "template", None)
    if template is not None:
        return _(template).format(**getattr(exc, "details", {}))
    return _(exc.message)


@bp.get("/portal/documents/<doc_id>/preview")
@portal_session_required
def preview(doc_id: str):
    """The customer's own re-encoded image, for the preview; only documents of this case."""
    db = get_session()
    state = portal_state(db, g.portal_case_id, current_settings(db))
    doc = next((d for docs in state.uploaded.values() for d in docs if d.id == doc_id), None)
    db.commit()
    if doc is None or doc.wrapped_key is None:
        abort(404)
    # A document keeps its blob and key id while it has a key (shred, then delete).
    assert doc.blob_name is not None and doc.key_id is not None
    data = open_document(
        current_app.config["UPLOADS_DIR"], keyring(), doc.id, doc.blob_name, doc.wrapped_key,
        doc.key_id,
    )  # fmt: skip
    response = Response(data, mimetype=doc.content_type)
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Content-Disposition"] = 'inline; filename="preview.jpg"'
    return response


@bp.post("/portal/submit")
@portal_session_required
def submit():
    form = SubmitForm()
    if not form.validate_on_submit():
        flash(_("The form expired. Please try again."), "error")
        return redirect(url_for("portal.index"), code=303)
    db = get_session()
    try:
        sent = submit_documents(db, g.portal_case_id, settings=current_settings(db), now=_now())
    except ConflictError as exc:
        db.rollback()
        flash(_(exc.message), "error")
        return redirect(url_for("portal.index"), code=303)
    if sent:
        queue_receipt(db, load_case(db, g.portal_case_id), ARRIVAL,
                      portal=PortalContext.from_config(current_app.config), now=_now())  # fmt: skip
    db.commit()
    # A second click (or a second tab) lands on the same status page: nothing is sent twice.
    return redirect(url_for("portal.index"), code=303)


@bp.route("/portal/decline", methods=["GET", "POST"])
@portal_session_required
def decline():
    form = DeclineForm()
    db = get_session()
    if load_case(db, g.portal_case_id).status not in OPEN_FOR_UPLOAD:
        # Declined already (or sent): the status page says so; the form has nothing to do.
        db.commit()
        return redirect(url_for("portal.index"), code=303)
    if form.validate_on_submit():
        try:
            decline_verification(db, g.portal_case_id, form.reason.data or "", now=_now())
        except ConflictError as exc:
            db.rollback()
            flash(_(exc.message), "error")
            return redirect(url_for("portal.index"), code=303)
        db.commit()
        return redirect(url_for("portal.index"), code=303)
    case = load_case(db, g.portal_case_id)
    db.commit()
    return render_template("portal/decline.html", form=form, reference=case.order.external_id)


@bp.post("/portal/handoff")
@limiter.limit("10 per minute; 30 per hour")
@portal_session_required
def handoff():
    """Show a QR code with a short-lived link to continue on a phone, where the camera is."""
    form = SubmitForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    case = load_case(db, g.portal_case_id)
    token, expires = create_handoff_link(db, case, now=_now())
    fingerprint = _fingerprint(portal_state(db, case.id, current_settings(db)))
    db.commit()
    url = link_url(current_app.config["BASE_URL"], token)
    # A standalone SVG data URI (with its namespace), so an <img> can show it under the CSP.
    qr_src = segno.make(url, error="m").svg_data_uri(scale=6, dark="#14213d", light="#ffffff")
    return render_template(
        "portal/handoff.html", qr_src=qr_src, url=url, fingerprint=fingerprint,
        guidance=capture_guidance(_),
        expires=format_when(expires, customer_locale(), case.order.timezone) if expires else None,
    )  # fmt: skip
