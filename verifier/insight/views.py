"""The admin dashboard: what sampling flags, what review finds, and the estimate of fraud.

GET /admin/dashboard/?first=YYYY-MM-DD&last=YYYY-MM-DD   charts, tables and the estimate
GET /admin/dashboard/daily.csv?first=…&last=…             the daily numbers as CSV
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request
from wtforms import DateField, Form
from wtforms.validators import Optional, ValidationError

from verifier.core.policies import current_settings
from verifier.db import get_session
from verifier.insight.dashboard_charts import dashboard_charts
from verifier.insight.stats import (
    DEFAULT_PERIOD_DAYS,
    MAX_PERIOD_DAYS,
    Period,
    build_dashboard,
    daily_csv,
    daily_numbers,
)
from verifier.web.auth import admin_required

bp = Blueprint("dashboard", __name__, url_prefix="/admin/dashboard")


class PeriodForm(Form):
    """The period picker; a GET form, so it changes nothing and needs no CSRF token."""

    first = DateField("From", validators=[Optional()])
    last = DateField("To", validators=[Optional()])

    def validate_last(self, field: DateField) -> None:
        if self.first.data and field.data:
            if field.data < self.first.data:
                raise ValidationError("The end of the period must not come before its start.")
            if (field.data - self.first.data).days + 1 > MAX_PERIOD_DAYS:
                raise ValidationError(f"Choose at most {MAX_PERIOD_DAYS} days.")

    def period(self, today) -> Period:
        """The chosen period; a missing end is today, a missing start 30 days before the end."""
        last = self.last.data or today
        if self.first.data and not self.errors:
            return Period(self.first.data, last)
        return Period.ending(last, DEFAULT_PERIOD_DAYS)


def _period_form() -> tuple[PeriodForm, Period]:
    form = PeriodForm(request.args)
    form.validate()
    today = datetime.now(UTC).date()
    if form.errors:
        return form, Period.ending(today, DEFAULT_PERIOD_DAYS)
    return form, form.period(today)


@bp.get("/")
@admin_required
def index():
    form, period = _period_form()
    session = get_session()
    data = build_dashboard(
        session, period, now=datetime.now(UTC), settings=current_settings(session)
    )
    return render_template(
        "insight/dashboard.html", form=form, data=data, charts=dashboard_charts(data)
    )


@bp.get("/daily.csv")
@admin_required
def daily_export():
    _form, period = _period_form()
    session = get_session()
    rows = daily_numbers(session, period)
    filename = f"verifier-daily-{period.first.isoformat()}-to-{period.last.isoformat()}.csv"
    return Response(
        daily_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
