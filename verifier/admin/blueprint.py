"""The admin blueprint (/admin): every page in it is for signed-in admins only."""

from __future__ import annotations

from flask import Blueprint

from verifier.auth import admin_guard

bp = Blueprint("admin", __name__, url_prefix="/admin")

# A backstop for every admin page, whichever module adds it: reviewers get 403, anonymous users
# the sign-in page, admins without two-factor (when required) the enrolment page.
bp.before_request(admin_guard)
