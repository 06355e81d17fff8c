"""Portal forms: CSRF-protected buttons and the optional reason for declining."""

from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from verifier.core.i18n import N_


class SubmitForm(FlaskForm):
    """A button that only needs its CSRF token (send documents, show QR code)."""


class DeclineForm(FlaskForm):
    reason = TextAreaField(
        "Why would you rather not verify? (optional)",
        validators=[
            Optional(),
            Length(max=1000, message=N_("Please keep it under 1000 characters.")),
        ],
    )
