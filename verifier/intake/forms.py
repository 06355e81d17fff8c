"""Forms of the integrations page: a connector's signing secret, pasted or generated."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField
from wtforms.validators import AnyOf, DataRequired

from verifier.intake.connectors import PLATFORMS


class SecretForm(FlaskForm):
    """Paste the platform's secret, or leave it empty and ask for a generated one."""

    platform = HiddenField(validators=[DataRequired(), AnyOf(list(PLATFORMS))])
    secret = PasswordField("Signing secret")


class RemoveForm(FlaskForm):
    platform = HiddenField(validators=[DataRequired(), AnyOf(list(PLATFORMS))])
