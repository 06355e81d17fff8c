"""The landing page: what this server is and where each kind of user goes."""

from flask import Blueprint, current_app, render_template

from verifier.db import get_engine
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
