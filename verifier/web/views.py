"""The landing page: what this server is and where each kind of user goes."""

from flask import Blueprint, current_app, render_template

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    return render_template("web/home.html", shop_name=current_app.config["SHOP_NAME"])


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}
