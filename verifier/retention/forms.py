"""Forms of the retention admin pages: legal holds, erasure requests, evidence export."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from verifier.retention.holds import MAX_REASON

_ORDER_KW = {"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}
_REASON = [InputRequired(), Length(max=MAX_REASON)]

# Several forms share a page, so every field has an id of its own; the names stay short.


class HoldForm(FlaskForm):
    order_external_id = StringField(
        "Order number",
        validators=[InputRequired(), Length(max=100)],
        render_kw=_ORDER_KW,
        id="hold-order",
    )
    reason = TextAreaField("Reason for the hold", validators=_REASON, id="hold-reason")


class ReleaseForm(FlaskForm):
    reason = StringField("Reason for releasing", validators=_REASON, id="release-reason")


class ErasureForm(FlaskForm):
    order_external_id = StringField(
        "Order number",
        validators=[Optional(), Length(max=100)],
        render_kw=_ORDER_KW,
        id="erase-order",
    )
    email = EmailField(
        "or the customer's email",
        validators=[Optional(), Length(max=254)],
        render_kw=_ORDER_KW,
        id="erase-email",
    )
    reason = TextAreaField(
        "Reason (for example: the customer's request of 3 May)",
        validators=_REASON,
        id="erase-reason",
    )
    confirm = BooleanField(
        "I understand that this destroys the documents and details now, for good.",
        validators=[DataRequired(message="Tick the box to confirm.")],
        id="erase-confirm",
    )

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        has_order = bool((self.order_external_id.data or "").strip())
        has_email = bool((self.email.data or "").strip())
        if has_order == has_email:
            self.order_external_id.errors = [
                *self.order_external_id.errors,
                "Give either an order number or an email address.",
            ]
            return False
        return ok


class EvidenceForm(FlaskForm):
    """The export button: only the CSRF token travels."""


class LookupForm(FlaskForm):
    """Find a case's receipt by order number (a GET: no CSRF token)."""

    class Meta:
        csrf = False

    order = StringField(
        "Order number",
        validators=[InputRequired(), Length(max=100)],
        render_kw=_ORDER_KW,
        id="lookup-order",
    )
