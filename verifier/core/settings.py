"""Admin settings carried by each policy version, with their defaults and allowed ranges."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from verifier.errors import ValidationError

CARD_OR_ID = "card_or_id"
ALL_FOUR = "all"
DOCUMENT_REQUIREMENTS = (CARD_OR_ID, ALL_FOUR)
# What satisfies each requirement: any one of the listed sets of document kinds.
REQUIRED_SETS: dict[str, tuple[frozenset[str], ...]] = {
    CARD_OR_ID: (
        frozenset({"card_front", "card_back"}),
        frozenset({"photo_id", "proof_of_address"}),
    ),
    ALL_FOUR: (frozenset({"card_front", "card_back", "photo_id", "proof_of_address"}),),
}


@dataclass(frozen=True)
class Settings:
    """The effective settings of one policy version; every field has a documented default."""

    document_requirement: str = CARD_OR_ID
    link_lifetime_days: int = 7
    reminder_before_hours: int = 48  # 0 turns the reminder off
    review_target_hours: int = 24
    lease_minutes: int = 15
    max_resubmissions: int = 3
    four_eyes_rejections: bool = False
    retention_decided_days: int = 30
    retention_expired_days: int = 7
    anonymise_after_days: int | None = None  # None keeps customer details
    repeat_exemption_days: int | None = None  # None samples repeat customers like anyone
    quality_sample_percent: int = 0
    max_uploads_per_case: int = 40
    outcome_email: bool = False  # email the customer when their order is approved or rejected


# name -> (minimum, maximum) for whole-number settings.
RANGES: dict[str, tuple[int, int]] = {
    "link_lifetime_days": (1, 60),
    "reminder_before_hours": (0, 24 * 30),
    "review_target_hours": (1, 24 * 14),
    "lease_minutes": (1, 240),
    "max_resubmissions": (0, 10),
    "retention_decided_days": (1, 3650),
    "retention_expired_days": (1, 3650),
    "anonymise_after_days": (30, 3650),
    "repeat_exemption_days": (1, 3650),
    "quality_sample_percent": (0, 100),
    "max_uploads_per_case": (4, 200),
}


def settings_from(raw: dict[str, Any] | None) -> Settings:
    """Effective settings from a policy's stored JSON; unknown keys are ignored, gaps defaulted."""
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in (raw or {}).items() if k in known})


def validate_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a partial settings change; raises ValidationError naming each field."""
    known = {f.name: f for f in fields(Settings)}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            errors[name] = "Unknown setting."
        elif name == "document_requirement":
            if value not in DOCUMENT_REQUIREMENTS:
                errors[name] = "Choose card or ID, or all four documents."
            else:
                clean[name] = value
        elif name in ("four_eyes_rejections", "outcome_email"):
            if not isinstance(value, bool):
                errors[name] = "Must be on or off."
            else:
                clean[name] = value
        elif value is None and name in ("anonymise_after_days", "repeat_exemption_days"):
            clean[name] = None
        elif isinstance(value, bool) or not isinstance(value, int):
            errors[name] = "Must be a whole number."
        else:
            low, high = RANGES[name]
            if not low <= value <= high:
                errors[name] = f"Must be between {low} and {high}."
            else:
                clean[name] = value
    if errors:
        raise ValidationError("Some settings are not valid.", errors)
    return clean


def is_complete(requirement: str, kinds: set[str]) -> bool:
    """Whether the document kinds present satisfy the requirement."""
    return any(required <= kinds for required in REQUIRED_SETS[requirement])
