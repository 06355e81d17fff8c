"""Staff pages: sign in (password, then TOTP when enrolled), sign out, password, two-factor.

GET/POST /staff/login        email and password
GET/POST /staff/login/code   the TOTP code, for users who enrolled
POST     /staff/logout       ends every session of the user
GET/POST /staff/password     change the password (ends the user's other sessions)
GET/POST /staff/two-factor   enrol or remove TOTP
POST     /staff/passkeys/options, /staff/passkeys, /staff/passkeys/<id>/remove   passkeys
POST     /staff/login/passkey/options, /staff/login/passkey   the passkey sign-in step
GET      /staff/sessions     the user's signed-in browsers (device, address, last seen)
POST     /staff/sessions/<id>/end      sign one of them out
POST     /staff/sessions/end-others    sign out every one but this
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from verifier.db import get_session
from verifier.errors import NotFoundError, ValidationError, VerifierError
from verifier.models import StaffUser
from verifier.staff import totp
from verifier.staff.accounts import change_password, disable_two_factor, enable_two_factor
from verifier.staff.forms import (
    ButtonForm,
    CodeForm,
    DisableTwoFactorForm,
    EnableTwoFactorForm,
    LoginForm,
    PasswordForm,
)
from verifier.staff.logins import (
    SignInFailed,
    check_code_step,
    check_passkey_step,
    check_password_step,
    complete_sign_in,
    needs_code,
    sign_out,
)
from verifier.vault.storage import Keyring
from verifier.web import passkeys, staff_sessions
from verifier.web.auth import (
    SESSION_TOKEN_KEY,
    current_session_id,
    current_staff,
    default_landing,
    end_staff_session,
    everyone_needs_two_factor,
    keep_staff_session,
    safe_next,
    signed_in_staff,
    staff_required,
    start_staff_session,
    two_factor_required,
)
from verifier.web.forms import apply_domain_errors
from verifier.web.limits import limiter

bp = Blueprint("staff", __name__, url_prefix="/staff")

PENDING_KEY = "staff_pending"  # password step passed, waiting for the TOTP code
PENDING_SECONDS = 300
ENROL_KEY = "staff_totp_enrol"  # the secret being enrolled, until a code confirms it
PASSKEY_KEY = "staff_passkey_challenge"  # a WebAuthn ceremony's challenge, used once


def _now() -> datetime:
    return datetime.now(UTC)


def _keyring() -> Keyring:
    return Keyring.from_config(current_app.config)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _after_sign_in(user, requested: str | None):
    start_staff_session(user)
    if user.password_changed_at is None:
        flash("Welcome. Choose your own password to finish signing in.", "info")
        return redirect(url_for(".password"))
    return redirect(safe_next(requested) or default_landing(user))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    user = current_staff()
    if user is not None:
        return redirect(safe_next(request.args.get("next")) or default_landing(user))
    form = LoginForm(next=safe_next(request.args.get("next")))
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("staff/login.html", form=form), status
    db = get_session()
    now = _now()
    try:
        user = check_password_step(
            db, form.email.data, form.password.data, now=now, ip=request.remote_addr
        )
    except SignInFailed as exc:
        db.commit()  # the failed attempt, and any lock, are kept
        return render_template("staff/login.html", form=form, error=exc.message), 422
    if needs_code(user):
        session[PENDING_KEY] = {
            "uid": user.id,
            "sv": user.session_version,
            "at": int(now.timestamp()),
            "next": safe_next(form.next.data),
        }
        return redirect(url_for(".login_code"))
    complete_sign_in(db, user, now=now, ip=request.remote_addr)
    db.commit()
    return _after_sign_in(user, form.next.data)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_code():
    pending = session.get(PENDING_KEY)
    now = _now()
    if not pending or now.timestamp() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        flash("Sign in again: the code step waits five minutes at most.", "info")
        return redirect(url_for(".login"))
    form = CodeForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _code_page(form), status
    db = get_session()
    try:
        user = check_code_step(
            db, pending["uid"], pending["sv"], form.code.data,
            keyring=_keyring(), now=now, ip=request.remote_addr,
        )  # fmt: skip
    except SignInFailed as exc:
        db.commit()
        if exc.code == "wrong_code":
            form.code.errors = [exc.message]
            return _code_page(form), 422
        session.pop(PENDING_KEY, None)
        return render_template("staff/login.html", form=LoginForm(), error=exc.message), 422
    complete_sign_in(db, user, now=now, ip=request.remote_addr)
    db.commit()
    return _after_sign_in(user, pending.get("next"))


def _code_page(form):
    """The second sign-in step: a TOTP code, a passkey, or either, as the user set them up."""
    pending = session.get(PENDING_KEY) or {}
    db = get_session()
    user = db.get(StaffUser, pending.get("uid", 0))
    return render_template(
        "staff/login_code.html",
        form=form,
        has_totp=bool(user and user.totp_secret),
        has_passkey=bool(user and passkeys.has_passkey(db, user)),
    )


def _pending_or_none() -> dict | None:
    pending = session.get(PENDING_KEY)
    if not pending or _now().timestamp() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    return pending


@bp.post("/login/passkey/options")
@limiter.limit(_login_limit)
def login_passkey_options():
    pending = _pending_or_none()
    db = get_session()
    user = db.get(StaffUser, pending["uid"]) if pending else None
    if user is None or not passkeys.has_passkey(db, user):
        return jsonify(error="Sign in again: the passkey step waits five minutes at most.",
                       redirect=url_for(".login")), 409  # fmt: skip
    options, state = passkeys.authentication_options(db, user, host_url=request.host_url)
    session[PASSKEY_KEY] = state
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/login/passkey")
@limiter.limit(_login_limit)
def login_passkey():
    pending = _pending_or_none()
    if pending is None:
        return jsonify(error="Sign in again: the passkey step waits five minutes at most.",
                       redirect=url_for(".login")), 409  # fmt: skip
    db = get_session()
    now = _now()
    try:
        user = check_passkey_step(
            db, pending["uid"], pending["sv"], request.get_json(silent=True),
            state=session.pop(PASSKEY_KEY, None), host_url=request.host_url, now=now,
            ip=request.remote_addr,
        )  # fmt: skip
    except SignInFailed as exc:
        db.commit()
        if exc.code != "wrong_code":
            session.pop(PENDING_KEY, None)
            return jsonify(error=exc.message, redirect=url_for(".login")), 401
        return jsonify(error=exc.message), 401
    complete_sign_in(db, user, now=now, ip=request.remote_addr)
    db.commit()
    response = _after_sign_in(user, pending.get("next"))
    return jsonify(redirect=response.headers["Location"])


@bp.post("/logout")
def logout():
    user = current_staff()
    if user is not None:
        db = get_session()
        sign_out(db, user, now=_now())
        staff_sessions.close_by_token(db, session.get(SESSION_TOKEN_KEY), _now())
        db.commit()
    end_staff_session()
    flash("You are signed out.", "success")
    return redirect(url_for(".login"))


@bp.route("/password", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@staff_required
def password():
    user = signed_in_staff()
    form = PasswordForm()
    forced = user.password_changed_at is None
    errors: list[str] = []
    if form.validate_on_submit():
        db = get_session()
        try:
            change_password(
                db, user, form.current_password.data, form.new_password.data, now=_now()
            )
        except ValidationError as exc:
            errors = apply_domain_errors(form, exc)
        else:
            db.commit()
            keep_staff_session(user)
            flash("Your password is changed. Any other session of yours is signed out.", "success")
            return redirect(default_landing(user))
    status = 422 if request.method == "POST" else 200
    return render_template("staff/password.html", form=form, forced=forced, errors=errors), status


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@staff_required
def two_factor():
    user = signed_in_staff()
    if user.totp_secret:
        return _two_factor_on(user)
    return _two_factor_off(user)


def _two_factor_on(user):
    form = DisableTwoFactorForm()
    admins_need_it = current_app.config["REQUIRE_ADMIN_2FA"]
    everyone_needs_it = everyone_needs_two_factor()
    # With a passkey as well, the TOTP app may go: the account keeps a second factor.
    has_key = passkeys.has_passkey(get_session(), user)
    must_keep = not has_key and (everyone_needs_it or (admins_need_it and user.role == "admin"))
    errors: list[str] = []
    if form.validate_on_submit():
        db = get_session()
        try:
            disable_two_factor(
                db, user, form.password.data, now=_now(),
                admins_need_it=admins_need_it and not has_key,
                everyone_needs_it=everyone_needs_it and not has_key,
            )  # fmt: skip
        except ValidationError as exc:
            errors = apply_domain_errors(form, exc)
        except VerifierError as exc:
            errors = [exc.message]
        else:
            db.commit()
            keep_staff_session(user)
            flash("Two-factor sign-in is off.", "success")
            return redirect(url_for(".two_factor"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "staff/two_factor.html", enabled=True, form=form, must_keep=must_keep,
        team_rule=everyone_needs_it, errors=errors, **_passkey_context(user),
    ), status  # fmt: skip


def _two_factor_off(user):
    # The secret waits in the signed session until a code confirms the app holds it; it is
    # shown on this page anyway, and only the confirmed one is written to the database.
    secret = session.get(ENROL_KEY) or totp.new_secret()
    session[ENROL_KEY] = secret
    form = EnableTwoFactorForm()
    errors: list[str] = []
    if form.validate_on_submit():
        db = get_session()
        try:
            enable_two_factor(db, user, secret, form.code.data, keyring=_keyring(), now=_now())
        except ValidationError as exc:
            errors = apply_domain_errors(form, exc)
        else:
            db.commit()
            session.pop(ENROL_KEY, None)
            keep_staff_session(user)
            flash(
                "Two-factor sign-in is on. You will be asked for a code at each sign-in.", "success"
            )
            return redirect(default_landing(user))
    issuer = f"Verifier ({current_app.config['SHOP_NAME']})"
    uri = totp.provisioning_uri(secret, user.email, issuer)
    status = 422 if request.method == "POST" else 200
    return render_template(
        "staff/two_factor.html",
        enabled=False,
        form=form,
        errors=errors,
        qr=Markup(totp.qr_svg(uri, "QR code for your authenticator app")),  # noqa: S704 (segno's own SVG)
        secret=totp.format_secret(secret),
        **_passkey_context(user),
    ), status


@bp.get("/sessions")
@staff_required
def sessions():
    user = signed_in_staff()
    config = current_app.config
    now = _now()
    rows = staff_sessions.active_sessions(
        get_session(), user,
        seen_since=now - timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        started_since=now - timedelta(hours=config["SESSION_MAX_HOURS"]),
    )  # fmt: skip
    return render_template(
        "staff/sessions.html",
        rows=rows,
        this_id=current_session_id(),
        describe=staff_sessions.describe_agent,
        form=ButtonForm(formdata=None),
    )


@bp.post("/sessions/<int:session_id>/end")
@staff_required
def end_session(session_id: int):
    if not ButtonForm().validate_on_submit():
        flash("The form expired. Please try again.", "error")
        return redirect(url_for(".sessions"))
    db = get_session()
    user = signed_in_staff()
    if session_id == current_session_id():
        flash("That is this browser: use Sign out to end it.", "info")
        return redirect(url_for(".sessions"))
    try:
        staff_sessions.end_session(db, user, session_id, now=_now())
    except NotFoundError:
        abort(404)
    db.commit()
    flash("That session is signed out. It needs your password to come back.", "success")
    return redirect(url_for(".sessions"))


@bp.post("/sessions/end-others")
@staff_required
def end_other_sessions():
    if not ButtonForm().validate_on_submit():
        flash("The form expired. Please try again.", "error")
        return redirect(url_for(".sessions"))
    db = get_session()
    ended = staff_sessions.end_other_sessions(
        db, signed_in_staff(), current_session_id() or 0, now=_now()
    )
    db.commit()
    if ended:
        flash(f"Signed out {ended} other session{'s' if ended != 1 else ''}.", "success")
    else:
        flash("There were no other sessions to sign out.", "info")
    return redirect(url_for(".sessions"))


def _passkey_context(user) -> dict:
    keys = passkeys.passkeys_of(get_session(), user)
    last_factor = len(keys) == 1 and not user.totp_secret and two_factor_required(user)
    return {"passkeys": keys, "remove_form": ButtonForm(formdata=None), "last_factor": last_factor}


@bp.post("/passkeys/options")
@limiter.limit(_login_limit)
@staff_required
def passkey_options():
    db = get_session()
    options, state = passkeys.registration_options(
        db, signed_in_staff(), host_url=request.host_url,
        shop_name=current_app.config["SHOP_NAME"],
    )  # fmt: skip
    session[PASSKEY_KEY] = state
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/passkeys")
@limiter.limit(_login_limit)
@staff_required
def passkey_add():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "credential" not in body:
        return jsonify(error="The browser sent no passkey. Try again."), 400
    db = get_session()
    user = signed_in_staff()
    try:
        key = passkeys.register(
            db, user, body["credential"], str(body.get("name") or ""),
            state=session.pop(PASSKEY_KEY, None), host_url=request.host_url, now=_now(),
        )  # fmt: skip
    except ValidationError as exc:
        return jsonify(error=exc.message, field="name"), 422
    except passkeys.PasskeyFailed as exc:
        return jsonify(error=exc.message), 422
    db.commit()
    flash(f"Passkey \u201c{key.name}\u201d added. You can use it at your next sign-in.", "success")
    return jsonify(redirect=url_for(".two_factor")), 201


@bp.post("/passkeys/<int:passkey_id>/remove")
@staff_required
def passkey_remove(passkey_id: int):
    if not ButtonForm().validate_on_submit():
        flash("The form expired. Please try again.", "error")
        return redirect(url_for(".two_factor"))
    db = get_session()
    user = signed_in_staff()
    if _passkey_context(user)["last_factor"]:
        flash("This passkey is your only second factor and your team requires one. "
              "Set up an authenticator app or another passkey first.", "error")  # fmt: skip
        return redirect(url_for(".two_factor"))
    try:
        key = passkeys.remove(db, user, passkey_id, now=_now())
    except NotFoundError:
        abort(404)
    db.commit()
    flash(f"Passkey \u201c{key.name}\u201d removed.", "success")
    return redirect(url_for(".two_factor"))
