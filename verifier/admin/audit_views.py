"""Admin audit log page.

GET /admin/audit   events newest first, 50 a page; filters and keyset paging in the query string
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

from flask import render_template, request

from verifier.admin.blueprint import bp
from verifier.admin.forms import AuditFilterForm
from verifier.audit import AuditFilters, AuditPage, list_events
from verifier.auth import admin_required
from verifier.db import get_session

FILTER_ARGS = ("action", "actor_type", "actor", "target_type", "target_id", "since", "until")


@bp.app_template_filter("compact_json")
def compact_json(value) -> str:
    """Audit details on one line, keys sorted; Jinja escapes the result."""
    return json.dumps(value, separators=(", ", ": "), sort_keys=True, ensure_ascii=False)


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@bp.get("/audit")
@admin_required
def audit():
    form = AuditFilterForm(formdata=request.args)
    if not form.validate():
        page = AuditPage([], None, None, {})
        status = 422
    else:
        filters = AuditFilters(
            action_prefix=(form.action.data or "").strip(),
            actor_type=form.actor_type.data or "",
            actor=(form.actor.data or "").strip(),
            target_type=(form.target_type.data or "").strip(),
            target_id=(form.target_id.data or "").strip(),
            since=_day_start(form.since.data) if form.since.data else None,
            until=_day_start(form.until.data + timedelta(days=1)) if form.until.data else None,
        )
        page = list_events(
            get_session(), filters, before_id=form.before.data, after_id=form.after.data
        )
        status = 200
    # The filters, kept in the paging links.
    kept = {name: request.args[name] for name in FILTER_ARGS if request.args.get(name)}
    return render_template("admin/audit.html", form=form, page=page, kept=kept), status
