"""Sampling policy versions: append-only, the newest is in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.rules import compile_rules, parse_rates, parse_rules, rates_json
from verifier.core.sampling import DEFAULT_RATE_BP, Policy, format_rate
from verifier.core.settings import Settings, settings_from, validate_settings
from verifier.models import SamplingPolicy

INITIAL_REASON = "Initial default policy"
# Each failed attempt means another edit was saved first, so this bounds concurrent editors.
VERSION_ATTEMPTS = 20


def current_policy(session: Session) -> SamplingPolicy:
    """The newest policy version, creating version 1 (5 %, no rules) in an empty database."""
    policy = session.scalar(select(SamplingPolicy).order_by(SamplingPolicy.version.desc()).limit(1))
    if policy is not None:
        return policy
    try:
        with session.begin_nested():
            policy = SamplingPolicy(
                version=1, rate_bp=DEFAULT_RATE_BP, created_by_label="system", reason=INITIAL_REASON
            )
            session.add(policy)
    except IntegrityError:
        # Another process created version 1 between our read and our insert.
        policy = session.scalar(select(SamplingPolicy).where(SamplingPolicy.version == 1))
        assert policy is not None  # its insert is what made ours fail
    return policy


def current_settings(session: Session) -> Settings:
    """The effective admin settings of the policy version in force."""
    return settings_from(current_policy(session).settings)


def as_sampler_policy(row: SamplingPolicy) -> Policy:
    """The version's sampler policy, its rules compiled (once per version: PolicyCache)."""
    return Policy(
        version=row.version,
        rate_bp=row.rate_bp,
        amount_threshold_minor=row.amount_threshold_minor,
        country_mismatch=row.rule_country_mismatch,
        name_mismatch=row.rule_name_mismatch,
        rules=compile_rules(row.rules or [], parse_rates(row.currency_rates)),
    )


def newest_version() -> ScalarSelect[int | None]:
    """SQL for the newest policy version number (a lookup in its unique index)."""
    return select(func.max(SamplingPolicy.version)).scalar_subquery()


@dataclass(frozen=True)
class PolicyInForce:
    """What deciding an order needs of the policy in force, detached from any session."""

    id: int
    version: int
    sampler: Policy
    settings: Settings

    @classmethod
    def of(cls, row: SamplingPolicy) -> PolicyInForce:
        return cls(row.id, row.version, as_sampler_policy(row), settings_from(row.settings))


class PolicyCache:
    """The policy in force, kept per app and valid while its version is the newest one.

    Versions are append-only and never change once written, so a cached version is right
    exactly as long as no newer one exists: the caller reads the newest version number
    (cheaply, in a query it makes anyway) and the cache reloads when it moved. A policy
    change therefore takes effect for the very next order, in every process.
    """

    def __init__(self) -> None:
        self._held: PolicyInForce | None = None

    def get(self, session: Session, newest: int | None) -> PolicyInForce:
        """The policy in force, given the newest version number read in this transaction."""
        held = self._held  # one read: another thread may replace it meanwhile
        if held is not None and newest is not None and held.version == newest:
            return held
        fresh = PolicyInForce.of(current_policy(session))
        self._held = fresh
        return fresh


def create_policy_version(
    session: Session,
    *,
    changes: dict[str, Any],
    reason: str,
    actor_label: str,
    actor_id: int | None,
    now: datetime,
) -> SamplingPolicy:
    """Add a new policy version copying the current one with `changes` applied.

    Retries on a version-number race, so concurrent edits never lose a version.
    """
    allowed = {
        "rate_bp",
        "amount_threshold_minor",
        "rule_country_mismatch",
        "rule_name_mismatch",
        "rules",
        "currency_rates",
        "settings",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"unknown policy fields: {sorted(unknown)}")
    for _attempt in range(VERSION_ATTEMPTS):
        base = current_policy(session)
        # The version after the one the copy is made from, not max() + 1: read separately,
        # max() could already count a version committed since `base` was read, and this
        # copy would silently drop that version's change. Taken, the insert fails and the
        # loop starts again from the newer base.
        next_version = base.version + 1
        fields = {
            "rate_bp": base.rate_bp,
            "amount_threshold_minor": base.amount_threshold_minor,
            "rule_country_mismatch": base.rule_country_mismatch,
            "rule_name_mismatch": base.rule_name_mismatch,
            "rules": list(base.rules or []),
            "currency_rates": dict(base.currency_rates or {}),
        } | changes
        # Rules and rates are stored only in their checked, normalised form.
        fields["rules"] = parse_rules(fields["rules"])
        fields["currency_rates"] = rates_json(parse_rates(fields["currency_rates"]))
        # Settings changes are partial: keep every setting the change does not name.
        fields["settings"] = dict(base.settings or {}) | validate_settings(
            changes.get("settings", {})
        )
        try:
            with session.begin_nested():
                policy = SamplingPolicy(
                    version=next_version,
                    created_at=now,
                    created_by_id=actor_id,
                    created_by_label=actor_label,
                    reason=reason,
                    **fields,
                )
                session.add(policy)
        except IntegrityError:
            continue
        record_event(
            session,
            "policy.changed",
            actor_type="staff" if actor_id else "cli",
            actor_id=actor_id or actor_label,
            target_type="sampling_policy",
            target_id=next_version,
            details={
                "reason": reason,
                "rate": format_rate(policy.rate_bp),
                "previous_version": base.version,
                "changed": sorted((set(changes) - {"settings"}) | set(changes.get("settings", {}))),
            },
            now=now,
        )
        return policy
    raise RuntimeError(f"could not allocate a policy version after {VERSION_ATTEMPTS} attempts")
