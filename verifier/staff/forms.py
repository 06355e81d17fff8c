"""Forms of the staff sign-in and account pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

# Argon2 accepts any length; the cap only stops absurd request bodies from being hashed.
PASSWORD_MAX = 1024


class ButtonForm(FlaskForm):
    """A button that changes one thing: only the CSRF token travels."""


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
