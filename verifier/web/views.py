"""The landing page: what this server is and where each kind of user goes."""

from flask import Blueprint, Response, abort, current_app, render_template

from verifier.core.brand import load_logo
from verifier.db import get_engine, get_session
from verifier.web.health import check_database, check_uploads

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    return render_template("web/home.html", shop_name=current_app.config["SHOP_NAME"])


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers. It touches nothing, so a database outage never gets
    a healthy process restarted; readiness (below) is what a load balancer should route by."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when the database answers, the uploads volume takes a file and every
    area's own check passes (the portal's card-masking OCR), else 503 naming what failed."""
    problems = {
        "database": check_database(get_engine()),
        "uploads": check_uploads(current_app.config["UPLOADS_DIR"]),
    }
    for name, check in current_app.extensions.get("verifier.readiness", {}).items():
        problems[name] = check()
    body = {"status": "ready" if not any(problems.values()) else "unavailable"}
    body |= {name: problem or "ok" for name, problem in problems.items()}
    status = 200 if body["status"] == "ready" else 503
    headers = {"Retry-After": "5"} if status == 503 else {}
    return body, status, headers


@bp.get("/brand/logo/<digest>.png")
def logo(digest: str):
    """The shop's logo: a re-encoded PNG, public (it is on pages shown before any link)."""
    data = load_logo(get_session(), digest)
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/png")
    # The digest names these bytes: a new logo gets a new address, so this one never changes.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
