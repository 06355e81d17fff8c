"""Forms of the staff pages, and the one helper that puts domain errors onto a form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from verifier.errors import ValidationError

# Argon2 accepts any length; the cap only stops absurd request bodies from being hashed.
PASSWORD_MAX = 1024


def apply_domain_errors(form: FlaskForm, exc: ValidationError) -> list[str]:
    """Attach each field error of `exc` to the form field of that name; return the rest."""
    general = []
    for name, message in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
        else:
            general.append(message)
    if not exc.fields:
        general.append(exc.message)
    return general


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[InputRequired(), Length(max=254)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField(
        "Six-digit code",
        validators=[InputRequired(), Length(max=12)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 12},
    )


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        "New password",
        validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm_password = PasswordField(
        "New password again",
        validators=[
            InputRequired(),
            EqualTo("new_password", message="The two new passwords are not the same."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class EnableTwoFactorForm(CodeForm):
    pass


class DisableTwoFactorForm(FlaskForm):
    password = PasswordField(
        "Your password",
        validators=[InputRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
