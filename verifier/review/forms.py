"""Forms of the review pages: queue filters and bulk actions, the checklist and decisions."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from verifier.core.checklist import ANSWERS, CHECKS, REJECTION_REASONS
from verifier.core.sampling import RULE_NAMES
from verifier.review.decisions import MAX_MESSAGE, MAX_NOTE
from verifier.review.documents import ERASE_REASONS
from verifier.review.queue import SORTS, STATE_FILTERS

STATE_LABELS = {
    "in_review": "In review",
    "four_eyes": "Second review",
    "awaiting_documents": "Awaiting documents",
    "resubmission_requested": "Resubmission requested",
    "decided": "Decided",
    "expired": "Expired",
    "all": "All",
}
SORT_LABELS = {
    "flagged": "Oldest flagged first",
    "newest": "Newest flagged first",
    "waiting": "Longest waiting first",
    "amount": "Largest amount first",
}
OUTCOME_LABELS = {
    "cleared": "not sampled",
    "rejection_proposed": "rejection proposed",
    "awaiting_documents": "awaiting documents",
    "in_review": "in review",
    "resubmission_requested": "resubmission requested",
}
ANSWER_LABELS = {"yes": "Yes", "no": "No", "not_applicable": "Not applicable"}
KIND_LABELS = {
    "card_front": "Card, front",
    "card_back": "Card, back",
    "photo_id": "Photo ID",
    "proof_of_address": "Proof of address",
}
BULK_ACTIONS = {
    "release": "Release claims",
    "reassign": "Reassign to reviewer (admins)",
    "extend_links": "Extend upload links",
}


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class QueueFilterForm(FlaskForm):
    """Read-only GET filters: no CSRF token, so the URL stays shareable."""

    class Meta:
        csrf = False

    state = SelectField("State", choices=_choices((k, STATE_LABELS[k]) for k in STATE_FILTERS),
                        default="in_review")  # fmt: skip
    reason = SelectField(
        "Sampling reason",
        choices=_choices([("", "Any reason"), ("random", "Random sample"), ("rule", "Any rule"),
                          *((r, "Rule: " + r.replace("_", " ")) for r in RULE_NAMES)]),
        default="",
    )  # fmt: skip
    q = StringField("Order number, email or name", validators=[Length(max=254)])
    sort = SelectField("Sort", choices=_choices((k, SORT_LABELS[k]) for k in SORTS),
                       default="flagged")  # fmt: skip
    late = BooleanField("Late only")
    mine = BooleanField("Claimed by me")
    amount_min = StringField("Amount from", validators=[Length(max=20)])
    amount_max = StringField("to", validators=[Length(max=20)])


class SaveFilterForm(FlaskForm):
    name = StringField("Save these filters as", validators=[InputRequired(), Length(max=60)])
    query = HiddenField()


class ActionForm(FlaskForm):
    """A button with nothing but its CSRF token (claim, release, next case)."""


class BulkForm(FlaskForm):
    case_id = SelectMultipleField("Cases", coerce=int, validate_choice=False)
    action = SelectField("Action", choices=_choices(BULK_ACTIONS.items()))
    reviewer = SelectField("Reviewer", coerce=int, validate_choice=False, validators=[Optional()])
    back = HiddenField()


def _checklist_field(name: str) -> RadioField:
    return RadioField(
        CHECKS[name],
        choices=_choices((a, ANSWER_LABELS[a]) for a in ANSWERS),
        validators=[Optional()],
        validate_choice=False,  # the domain validates, naming the field
    )


class DecisionForm(FlaskForm):
    """The checklist with the approve / reject / save buttons that share it."""

    card_name_matches = _checklist_field("card_name_matches")
    card_last4_matches = _checklist_field("card_last4_matches")
    id_name_matches = _checklist_field("id_name_matches")
    id_not_expired = _checklist_field("id_not_expired")
    address_matches_and_recent = _checklist_field("address_matches_and_recent")
    reason_code = SelectField(
        "Reason for rejecting",
        choices=_choices([("", "Choose a reason"), *REJECTION_REASONS.items()]),
        validate_choice=False,
    )
    note = TextAreaField("Note (kept with the decision)", validators=[Length(max=MAX_NOTE)])

    def answers(self) -> dict[str, str]:
        return {name: getattr(self, name).data or "" for name in CHECKS}

    def check_fields(self):
        return [getattr(self, name) for name in CHECKS]


class OverturnForm(FlaskForm):
    note = TextAreaField("Why the rejection is set aside", validators=[Length(max=MAX_NOTE)])


class ResubmissionForm(FlaskForm):
    kinds = MultiCheckboxField("Documents to send again", choices=_choices(KIND_LABELS.items()),
                               validate_choice=False)  # fmt: skip
    message = TextAreaField(
        "Message to the customer",
        validators=[InputRequired(), Length(max=MAX_MESSAGE)],
        description="Say what to change, e.g. 'The photo of the back is blurred.' "
        "Never write card or ID numbers here.",
    )


class EraseForm(FlaskForm):
    reason_kind = RadioField("What is visible?", choices=_choices(ERASE_REASONS.items()),
                             validators=[InputRequired()])  # fmt: skip
