"""Forms of the admin staff and audit pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from verifier.models import ROLES

ROLE_CHOICES = [SelectChoice(role, role.capitalize()) for role in ROLES]
ACTOR_TYPES = ("staff", "api", "customer", "system", "cli")


class InviteForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[InputRequired(), Length(max=254)],
        render_kw={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"},
    )
    role = SelectField("Role", choices=ROLE_CHOICES, default="reviewer")


class ActionForm(FlaskForm):
    """A button that changes one staff user: only the CSRF token travels."""


class TwoFactorRuleForm(FlaskForm):
    two_factor_for = SelectField(
        "Two-factor sign-in is required for",
        choices=[
            SelectChoice("admins", "Admins only"),
            SelectChoice("everyone", "Every staff member (reviewers see card and ID images)"),
        ],
        validators=[InputRequired()],
    )


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class AuditFilterForm(FlaskForm):
    """The audit page's filters, read from the query string (a GET: no CSRF token)."""

    class Meta:
        csrf = False

    action = StringField("Action starts with", validators=[Optional(), Length(max=60)])
    actor_type = SelectField(
        "Actor type",
        choices=[SelectChoice("", "Any")] + [SelectChoice(t, t) for t in ACTOR_TYPES],
        default="",
    )
    actor = StringField("Actor (staff email or id)", validators=[Optional(), Length(max=254)])
    target_type = StringField("Target type", validators=[Optional(), Length(max=40)])
    target_id = StringField("Target id", validators=[Optional(), Length(max=100)])
    since = DateField("From (UTC)", validators=[Optional()])
    until = DateField("Until (UTC, inclusive)", validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])
    after = IntegerField(validators=[Optional(), NumberRange(min=0)])
