"""Editing the policy as a whole: flat values, readable diffs, history, safe concurrent edits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifier.core.policies import create_policy_version, current_policy
from verifier.core.rules import ACTIONS, describe_condition, parse_rates, rates_json
from verifier.core.sampling import format_rate
from verifier.core.settings import ALL_FOUR, CARD_OR_ID, settings_from
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import SamplingPolicy

# The policy's own columns; every other editable value is a field of core.settings.Settings.
COLUMNS = ("rate_bp", "amount_threshold_minor", "rule_country_mismatch", "rule_name_mismatch",
           "rules", "currency_rates")  # fmt: skip
MAX_REASON_LENGTH = 500

# Digits with optional thousands separators, then up to two decimals: 1,250.50 or 1250.5.
MONEY_RE = re.compile(r"^(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?$")

DOCUMENT_LABELS = {
    CARD_OR_ID: "card (front and back) or photo ID with proof of address",
    ALL_FOUR: "all four documents",
}


def format_money(minor: int) -> str:
    """Minor units as an amount with two decimals and thousands separators: 100000 -> 1,000.00."""
    return f"{Decimal(minor) / 100:,.2f}"


def parse_money(text: str) -> int:
    """An amount such as "1000", "1,000.50" or "250.5" in minor units; ValueError when not one."""
    cleaned = text.strip().replace(" ", "")
    if not MONEY_RE.match(cleaned):
        raise ValueError("not an amount with at most two decimals")
    return int(Decimal(cleaned.replace(",", "")) * 100)


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _unit(singular: str, plural: str) -> Callable[[Any], str]:
    return lambda n: f"{n} {singular if n == 1 else plural}"


_days = _unit("day", "days")
_hours = _unit("hour", "hours")

# field -> (label, how a value reads); the order is the order of the settings page.
FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "rate_bp": ("Random sampling rate", lambda v: f"{format_rate(v)} %"),
    "amount_threshold_minor": (
        "Amount rule",
        lambda v: "off" if v is None else f"orders of {format_money(v)} or more",
    ),
    "rule_country_mismatch": ("Billing/shipping country mismatch rule", _on_off),
    "rule_name_mismatch": ("Cardholder name mismatch rule", _on_off),
    "repeat_exemption_days": (
        "Repeat-customer exemption",
        lambda v: "off" if v is None else f"approved within {_days(v)}",
    ),
    "document_requirement": ("Required documents", lambda v: DOCUMENT_LABELS.get(v, str(v))),
    "link_lifetime_days": ("Upload link lifetime", _days),
    "reminder_before_hours": (
        "Reminder",
        lambda v: "no reminder" if v == 0 else f"{_hours(v)} before the link expires",
    ),
    "review_target_hours": ("Review target time", _hours),
    "lease_minutes": ("Reviewer lease", _unit("minute", "minutes")),
    "max_resubmissions": ("Maximum resubmission requests", str),
    "max_uploads_per_case": ("Maximum uploads per case", str),
    "four_eyes_rejections": ("Four-eyes rejections", _on_off),
    "outcome_email": ("Email the customer the outcome", _on_off),
    "quality_sample_percent": ("Quality sample of decisions", lambda v: f"{v} %"),
    "retention_decided_days": ("Keep documents of decided cases", _days),
    "retention_expired_days": ("Keep documents of expired or declined cases", _days),
    "rules": ("Rules", lambda v: describe_rules(v or [])),
    "currency_rates": ("Currency rates", lambda v: describe_rates(v or {})),
    "anonymise_after_days": (
        "Anonymise customer details",
        lambda v: "never" if v is None else f"after {_days(v)}",
    ),
}


@dataclass(frozen=True)
class Change:
    field: str
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    policy: SamplingPolicy
    changes: tuple[Change, ...]  # against the version before; empty for the first one


def policy_values(row: SamplingPolicy) -> dict[str, Any]:
    """Every editable value of a version, flat, with settings defaults filled in."""
    values = {name: getattr(row, name) for name in COLUMNS}
    values["rules"] = list(row.rules or [])
    values["currency_rates"] = rates_json(parse_rates(row.currency_rates))
    return values | asdict(settings_from(row.settings))


def describe(field: str, value: Any) -> str:
    """How one value reads on the page: "5 %", "7 days", "off"."""
    return FIELDS[field][1](value)


def diff_values(old: dict[str, Any], new: dict[str, Any]) -> tuple[Change, ...]:
    """What changed from `old` to `new`, in page order, each as readable text."""
    return tuple(
        Change(name, label, fmt(old[name]), fmt(new[name]))
        for name, (label, fmt) in FIELDS.items()
        # A form that does not hold a value (the settings form holds no rules) leaves it be.
        if name in new and old.get(name) != new[name]
    )


def describe_rules(rules: list[dict[str, Any]]) -> str:
    """A rule list in one line: "none", or "1. Big orders (force review); 2. …"."""
    if not rules:
        return "none"
    return "; ".join(
        f"{n}. {r['name']} ({ACTIONS.get(r['action'], r['action']).lower()}: "
        + " and ".join(describe_condition(c) for c in r["conditions"])
        + ")"
        for n, r in enumerate(rules, 1)
    )


def describe_rates(rates: dict[str, Any]) -> str:
    per_unit = rates.get("rates") or {}
    if not per_unit:
        return "none"
    base = rates.get("base", "EUR")
    return ", ".join(f"1 {code} = {value} {base}" for code, value in sorted(per_unit.items()))


def _version(session: Session, version: int) -> SamplingPolicy:
    row = session.scalar(select(SamplingPolicy).where(SamplingPolicy.version == version))
    if row is None:
        raise NotFoundError(f"There is no policy version {version}.")
    return row


def edit_policy(
    session: Session,
    *,
    base_version: int,
    proposed: dict[str, Any],
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy | None:
    """Save what the editor changed from `base_version` as a new version; None when nothing did.

    The edit is applied on top of the newest version, so a change saved by someone else
    meanwhile is kept; when both touched the same value, raises ConflictError instead of
    silently undoing theirs. Raises ValidationError for a missing reason. Flushes only.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the policy changes.", {"reason": "A reason is required."})
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(
            "The reason is too long.", {"reason": f"Use at most {MAX_REASON_LENGTH} characters."}
        )
    unknown = set(proposed) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown policy fields: {sorted(unknown)}")
    base = policy_values(_version(session, base_version))
    edited = {k: v for k, v in proposed.items() if base[k] != v}
    latest_row = current_policy(session)
    latest = policy_values(latest_row)
    if latest_row.version != base_version:
        theirs = {k for k in FIELDS if base[k] != latest[k]}
        clash = [k for k in edited if k in theirs and latest[k] != edited[k]]
        if clash:
            labels = ", ".join(FIELDS[k][0].lower() for k in clash)
            raise ConflictError(
                f"Someone else changed the {labels} meanwhile (now version "
                f"{latest_row.version}). Reload the page to see their change, then edit again."
            )
    edited = {k: v for k, v in edited.items() if latest[k] != v}
    if not edited:
        return None
    changes: dict[str, Any] = {k: v for k, v in edited.items() if k in COLUMNS}
    settings = {k: v for k, v in edited.items() if k not in COLUMNS}
    if settings:
        changes["settings"] = settings
    return create_policy_version(
        session, changes=changes, reason=reason, actor_label=actor_label, actor_id=actor_id, now=now
    )


def policy_history(session: Session, *, page: int = 1, per_page: int = 20) -> list[HistoryEntry]:
    """Versions newest first, each with what changed from the version before it."""
    current_policy(session)  # an empty database shows version 1, as everywhere else
    offset = (max(page, 1) - 1) * per_page
    rows = list(
        session.scalars(
            select(SamplingPolicy)
            .order_by(SamplingPolicy.version.desc())
            .offset(offset)
            .limit(per_page + 1)
        )
    )
    entries = []
    for index, row in enumerate(rows[:per_page]):
        before = rows[index + 1] if index + 1 < len(rows) else None
        changes = diff_values(policy_values(before), policy_values(row)) if before else ()
        entries.append(HistoryEntry(row, changes))
    return entries


def count_versions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SamplingPolicy)) or 0
