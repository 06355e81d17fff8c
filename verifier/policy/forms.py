"""The admin settings form: every policy value, each with its own clear validation message."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, RadioField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from verifier.core.brand import BRAND_FIELDS
from verifier.core.sampling import format_rate, parse_rate
from verifier.core.settings import RANGES
from verifier.errors import ValidationError as DomainValidationError
from verifier.policy.changes import DOCUMENT_LABELS, MAX_REASON_LENGTH, format_money, parse_money

MAX_THRESHOLD_MINOR = 100_000_000_000  # 1,000,000,000.00: anything larger is a typo

# Whole-number settings: name -> (label, what the number counts, or None for a plain count).
NUMBERS: dict[str, tuple[str, str | None]] = {
    "repeat_exemption_days": ("Days since the customer's last approval", "days"),
    "link_lifetime_days": ("Upload link lifetime", "days"),
    "reminder_before_hours": ("Reminder, hours before the link expires (0 for none)", "hours"),
    "review_target_hours": ("Review target time", "hours"),
    "lease_minutes": ("Reviewer lease on a claimed case", "minutes"),
    "max_resubmissions": ("Maximum requests for new documents per case", None),
    "max_uploads_per_case": ("Maximum uploads per case", None),
    "quality_sample_percent": ("Share of decisions checked by a second reviewer (%)", "percent"),
    "retention_decided_days": ("Keep documents of decided cases for", "days"),
    "retention_expired_days": ("Keep documents of expired or declined cases for", "days"),
    "anonymise_after_days": ("Anonymise customer details after", "days"),
}
# Numbers that only count when their switch is on: number -> switch field.
SWITCHED = {"repeat_exemption_days": "repeat_exemption", "anonymise_after_days": "anonymise"}


def number_message(name: str) -> str:
    """The message for a whole-number setting outside its range, e.g. "… from 1 to 60 days."."""
    low, high = RANGES[name]
    unit = NUMBERS[name][1]
    if unit == "percent":
        return f"Give a whole percentage from {low} to {high}."
    if unit is None:
        return f"Give a whole number from {low} to {high}."
    return f"Give a whole number of {unit} from {low} to {high}."


def parse_whole(text: str | None) -> int:
    """A whole number typed into a text box; ValueError for anything else (signs, decimals)."""
    cleaned = (text or "").strip()
    if not cleaned.isdigit() or len(cleaned) > 9:
        raise ValueError("not a whole number")
    return int(cleaned)


def _number_validator(name: str):
    def validate(form: SettingsForm, field: StringField) -> None:
        switch = SWITCHED.get(name)
        if switch and not form[switch].data:
            return
        try:
            value = parse_whole(field.data)
        except ValueError:
            raise ValidationError(number_message(name)) from None
        low, high = RANGES[name]
        if not low <= value <= high:
            raise ValidationError(number_message(name))

    validate.__name__ = f"validate_{name}"
    return validate


class SettingsForm(FlaskForm):
    base_version = HiddenField()
    rate = StringField("Random sampling rate (%)")
    amount_rule = BooleanField("Force review of large orders")
    amount_threshold = StringField("From an order amount of")
    country_rule = BooleanField("Force review when billing and shipping countries differ")
    name_rule = BooleanField("Force review when the cardholder is not the customer")
    repeat_exemption = BooleanField("Do not sample recently approved customers at random")
    document_requirement = RadioField(
        "Required documents",
        choices=[SelectChoice(value, label) for value, label in DOCUMENT_LABELS.items()],
        validate_choice=False,
    )
    four_eyes_rejections = BooleanField("A second reviewer confirms every rejection (four eyes)")
    outcome_email = BooleanField("Email the customer when their order is approved or rejected")
    anonymise = BooleanField("Anonymise customer details after a while")
    reason = TextAreaField("Reason for this change")
    preview = SubmitField("Preview")
    save = SubmitField("Save new version")

    repeat_exemption_days = StringField(NUMBERS["repeat_exemption_days"][0])
    link_lifetime_days = StringField(NUMBERS["link_lifetime_days"][0])
    reminder_before_hours = StringField(NUMBERS["reminder_before_hours"][0])
    review_target_hours = StringField(NUMBERS["review_target_hours"][0])
    lease_minutes = StringField(NUMBERS["lease_minutes"][0])
    max_resubmissions = StringField(NUMBERS["max_resubmissions"][0])
    max_uploads_per_case = StringField(NUMBERS["max_uploads_per_case"][0])
    quality_sample_percent = StringField(NUMBERS["quality_sample_percent"][0])
    retention_decided_days = StringField(NUMBERS["retention_decided_days"][0])
    retention_expired_days = StringField(NUMBERS["retention_expired_days"][0])
    anonymise_after_days = StringField(NUMBERS["anonymise_after_days"][0])

    validate_repeat_exemption_days = _number_validator("repeat_exemption_days")
    validate_link_lifetime_days = _number_validator("link_lifetime_days")
    validate_reminder_before_hours = _number_validator("reminder_before_hours")
    validate_review_target_hours = _number_validator("review_target_hours")
    validate_lease_minutes = _number_validator("lease_minutes")
    validate_max_resubmissions = _number_validator("max_resubmissions")
    validate_max_uploads_per_case = _number_validator("max_uploads_per_case")
    validate_quality_sample_percent = _number_validator("quality_sample_percent")
    validate_retention_decided_days = _number_validator("retention_decided_days")
    validate_retention_expired_days = _number_validator("retention_expired_days")
    validate_anonymise_after_days = _number_validator("anonymise_after_days")

    @property
    def saving(self) -> bool:
        return bool(self.save.data)

    def validate_base_version(self, field: HiddenField) -> None:
        try:
            parse_whole(field.data)
        except ValueError:
            raise ValidationError("Reload the page and try again.") from None

    def validate_rate(self, field: StringField) -> None:
        try:
            parse_rate(field.data or "")
        except DomainValidationError:
            raise ValidationError(
                "Give a percentage from 0 to 100 with at most two decimals."
            ) from None

    def validate_amount_threshold(self, field: StringField) -> None:
        if not self.amount_rule.data:
            return
        try:
            minor = parse_money(field.data or "")
        except ValueError:
            raise ValidationError("Give an amount such as 500 or 1,250.00.") from None
        if not 0 < minor <= MAX_THRESHOLD_MINOR:
            raise ValidationError(
                f"Give an amount above 0 and at most {format_money(MAX_THRESHOLD_MINOR)}."
            )

    def validate_document_requirement(self, field: RadioField) -> None:
        if field.data not in DOCUMENT_LABELS:
            raise ValidationError("Choose which documents customers must send.")

    def validate_reason(self, field: TextAreaField) -> None:
        text = (field.data or "").strip()
        if self.saving and not text:
            raise ValidationError(
                "Say why you are changing the settings; it is kept in the history."
            )
        if len(text) > MAX_REASON_LENGTH:
            raise ValidationError(f"Use at most {MAX_REASON_LENGTH} characters.")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # A reminder only helps if it comes while the link still works.
        if not self.reminder_before_hours.errors and not self.link_lifetime_days.errors:
            try:
                reminder = parse_whole(self.reminder_before_hours.data)
                lifetime_hours = parse_whole(self.link_lifetime_days.data) * 24
            except ValueError:
                return valid
            if reminder >= lifetime_hours:
                self.reminder_before_hours.errors.append(
                    f"The reminder must come before the link expires: use fewer than "
                    f"{lifetime_hours} hours, or 0 for no reminder."
                )
                valid = False
        return valid

    def fill(self, values: dict[str, Any], version: int) -> None:
        """Show a policy version's flat values (verifier.policy.changes.policy_values)."""
        self.base_version.data = str(version)
        self.rate.data = format_rate(values["rate_bp"])
        threshold = values["amount_threshold_minor"]
        self.amount_rule.data = threshold is not None
        self.amount_threshold.data = format_money(threshold) if threshold is not None else ""
        self.country_rule.data = values["rule_country_mismatch"]
        self.name_rule.data = values["rule_name_mismatch"]
        self.repeat_exemption.data = values["repeat_exemption_days"] is not None
        self.anonymise.data = values["anonymise_after_days"] is not None
        self.document_requirement.data = values["document_requirement"]
        self.four_eyes_rejections.data = values["four_eyes_rejections"]
        self.outcome_email.data = values["outcome_email"]
        for name in NUMBERS:
            value = values[name]
            self[name].data = "" if value is None else str(value)

    def values(self) -> dict[str, Any]:
        """The flat policy values the form holds; call only after it validated."""
        values: dict[str, Any] = {
            "rate_bp": parse_rate(self.rate.data),
            "amount_threshold_minor": (
                parse_money(self.amount_threshold.data) if self.amount_rule.data else None
            ),
            "rule_country_mismatch": bool(self.country_rule.data),
            "rule_name_mismatch": bool(self.name_rule.data),
            "document_requirement": self.document_requirement.data,
            "four_eyes_rejections": bool(self.four_eyes_rejections.data),
            "outcome_email": bool(self.outcome_email.data),
        }
        for name in NUMBERS:
            switch = SWITCHED.get(name)
            on = switch is None or self[switch].data
            values[name] = parse_whole(self[name].data) if on else None
        return values


class BrandForm(FlaskForm):
    """What customers see of the shop; the domain (verifier.core.brand) checks each field."""

    shop_name = StringField("Shop name")
    support_email = StringField("Support email")
    support_url = StringField("Support web page")
    sender_name = StringField("Email sender name")
    reply_to = StringField("Reply-to address")
    logo = FileField("Logo")
    remove_logo = BooleanField("Remove the logo")
    save = SubmitField("Save brand")

    def fill(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self[name].data = value

    def values(self) -> dict[str, str]:
        return {name: self[name].data or "" for name in BRAND_FIELDS}
