"""Forms of the webhooks pages: an endpoint, a secret rotation, a deletion's confirmation."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from verifier.core.endpoints import EVENT_TYPES

OVERLAP_CHOICES = [
    SelectChoice("24", "24 hours (recommended)"),
    SelectChoice("1", "1 hour"),
    SelectChoice("72", "3 days"),
    SelectChoice("168", "7 days"),
    SelectChoice("0", "No overlap: the old secret stops signing now"),
]


class EmptyForm(FlaskForm):
    """No fields: the CSRF token is the whole form."""


class EndpointForm(FlaskForm):
    url = StringField(
        "Endpoint URL",
        validators=[InputRequired(message="Enter the endpoint's address."), Length(max=2000)],
        render_kw={"inputmode": "url", "autocapitalize": "none", "spellcheck": "false",
                   "placeholder": "https://shop.example/hooks/verifier"},
    )  # fmt: skip
    description = StringField("Description (optional)", validators=[Length(max=200)])
    scope = RadioField(
        "Events to send",
        choices=[SelectChoice("all", "Every event type, including types added later"),
                 SelectChoice("chosen", "Only the types ticked below")],
        default="all",
    )  # fmt: skip
    event_types = SelectMultipleField(
        "Event types",
        choices=[SelectChoice(t, t) for t in EVENT_TYPES],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    enabled = BooleanField("Enabled: send events to this endpoint", default=True)

    def chosen_types(self) -> tuple[str, ...]:
        return tuple(self.event_types.data or ()) if self.scope.data == "chosen" else ()

    def validate_event_types(self, field: SelectMultipleField) -> None:
        if self.scope.data == "chosen" and not field.data:
            raise ValidationError("Tick at least one event type, or choose “Every event type”.")


class RotateForm(FlaskForm):
    overlap = SelectField("Keep the old secret signing for", choices=OVERLAP_CHOICES,
                          default="24")  # fmt: skip


class DeleteForm(FlaskForm):
    confirm = BooleanField(
        "Yes, delete this endpoint",
        validators=[DataRequired(message="Tick the box to confirm the deletion.")],
    )
