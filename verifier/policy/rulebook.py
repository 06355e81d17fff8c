"""Editing a policy's rules and currency rates: each save is a new policy version.

The pages and the CLI hand whole lists here; `save_rules` checks them (verifier.core.rules),
refuses to overwrite a change someone else saved meanwhile, and adds the version. Export
and import use one JSON document: {"rules": [...], "currency_rates": {...}}.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.core.policies import create_policy_version, current_policy
from verifier.core.rules import parse_rates, parse_rules, rates_json
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import SamplingPolicy
from verifier.policy.changes import MAX_REASON_LENGTH


def _version(session: Session, version: int) -> SamplingPolicy:
    row = session.scalar(select(SamplingPolicy).where(SamplingPolicy.version == version))
    if row is None:
        raise NotFoundError(f"There is no policy version {version}.")
    return row


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(
            "The reason is too long.", {"reason": f"Use at most {MAX_REASON_LENGTH} characters."}
        )
    return reason


def _save(
    session: Session,
    field: str,
    label: str,
    value: Any,
    *,
    base_version: int | None,
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy | None:
    latest = current_policy(session)
    current = rates_json(parse_rates(latest.currency_rates)) if field == "currency_rates" else (
        list(latest.rules or []))  # fmt: skip
    if base_version is not None and base_version != latest.version:
        base = _version(session, base_version)
        before = (rates_json(parse_rates(base.currency_rates)) if field == "currency_rates"
                  else list(base.rules or []))  # fmt: skip
        if before != current:
            raise ConflictError(
                f"Someone else changed the {label} meanwhile (now version {latest.version}). "
                "Reload the page to see their change, then edit again."
            )
    if value == current:
        return None
    return create_policy_version(
        session, changes={field: value}, reason=reason, actor_label=actor_label,
        actor_id=actor_id, now=now,
    )  # fmt: skip


def save_rules(
    session: Session,
    rules: list[dict[str, Any]],
    *,
    base_version: int | None,
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy | None:
    """Make `rules` (in order) the rules in force as a new version; None when nothing changed.

    Raises ValidationError for a bad rule, ConflictError when the rules changed since
    `base_version` (None skips that check, as the CLI does). Flushes only.
    """
    return _save(session, "rules", "rules", parse_rules(rules), base_version=base_version,
                 reason=_reason(reason) or "Rules changed", actor_label=actor_label,
                 actor_id=actor_id, now=now)  # fmt: skip


def save_rates(
    session: Session,
    rates: dict[str, Any],
    *,
    base_version: int | None,
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy | None:
    """Make `rates` ({"base", "rates"}) the currency rates in force; as save_rules."""
    return _save(session, "currency_rates", "currency rates", rates_json(parse_rates(rates)),
                 base_version=base_version, reason=_reason(reason) or "Currency rates changed",
                 actor_label=actor_label, actor_id=actor_id, now=now)  # fmt: skip


def with_rule(
    rules: list[dict[str, Any]], rule: dict[str, Any], position: int | None = None
) -> list[dict[str, Any]]:
    """The list with `rule` replacing the one at `position` (1-based), or added at the end."""
    copy = list(rules)
    if position is None:
        return [*copy, rule]
    _check_position(copy, position)
    copy[position - 1] = rule
    return copy


def without_rule(rules: list[dict[str, Any]], position: int) -> list[dict[str, Any]]:
    _check_position(rules, position)
    return [r for n, r in enumerate(rules, 1) if n != position]


def without_named(rules: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The list without the rule called `name` (case-insensitive); NotFoundError if none is."""
    kept = [r for r in rules if r["name"].lower() != name.strip().lower()]
    if len(kept) == len(rules):
        raise NotFoundError(f"There is no rule named {name!r}.")
    return kept


def moved_rule(rules: list[dict[str, Any]], position: int, delta: int) -> list[dict[str, Any]]:
    """The list with the rule at `position` moved `delta` places (clamped at either end)."""
    _check_position(rules, position)
    copy = list(rules)
    rule = copy.pop(position - 1)
    copy.insert(min(max(position - 1 + delta, 0), len(copy)), rule)
    return copy


def _check_position(rules: list[dict[str, Any]], position: int) -> None:
    if not 1 <= position <= len(rules):
        raise NotFoundError(f"There is no rule {position}; the page may be out of date.")


def export_rulebook(row: SamplingPolicy) -> dict[str, Any]:
    """A version's rules and rates as one JSON-ready document (what import reads back)."""
    return {
        "policy_version": row.version,
        "rules": list(row.rules or []),
        "currency_rates": rates_json(parse_rates(row.currency_rates)),
    }


def import_rulebook(
    session: Session,
    document: Any,
    *,
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy | None:
    """Replace the rules (and the rates, when the document has them) in one new version.

    Raises ValidationError naming the rule (by its place) that is not valid.
    """
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise ValidationError(
            "The file must be a JSON object with a list of rules.",
            {"rules": 'Give {"rules": [...]} as `verifier rules export` writes it.'},
        )
    for n, rule in enumerate(document["rules"], 1):
        try:
            parse_rules([rule if isinstance(rule, dict) else {}])
        except ValidationError as exc:
            raise ValidationError(
                f"Rule {n} is not valid: {exc.message}", {f"rules[{n}]": exc.message}
            ) from None
    changes: dict[str, Any] = {"rules": parse_rules(document["rules"])}
    if "currency_rates" in document:
        changes["currency_rates"] = rates_json(parse_rates(document["currency_rates"]))
    latest = current_policy(session)
    unchanged = changes["rules"] == list(latest.rules or []) and changes.get(
        "currency_rates", rates_json(parse_rates(latest.currency_rates))
    ) == rates_json(parse_rates(latest.currency_rates))
    if unchanged:
        return None
    return create_policy_version(
        session, changes=changes, reason=_reason(reason) or "Rules imported",
        actor_label=actor_label, actor_id=actor_id, now=now,
    )  # fmt: skip
