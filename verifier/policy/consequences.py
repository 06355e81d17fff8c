"""What a settings change destroys or exposes, said in numbers, and the confirmation it needs.

A change that destroys documents or details sooner (shorter retention, anonymising sooner) or
checks less (a lower rate, a rule switched off or loosened, a wider repeat-customer exemption,
no second reviewer) is never saved on the first press: the page states what it does and the
admin ticks a box tied to exactly these values, then saves again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.sampling import DRAW_SPACE, format_rate
from verifier.core.settings import Settings
from verifier.policy.preview import Load, Preview
from verifier.retention.anonymise import count_due_for_anonymising
from verifier.retention.purge import count_newly_due

RETENTION_FIELDS = ("retention_decided_days", "retention_expired_days")
RULE_FIELDS = ("amount_threshold_minor", "rule_country_mismatch", "rule_name_mismatch")


@dataclass(frozen=True)
class Consequence:
    field: str
    text: str


def _settings(values: dict[str, Any]) -> Settings:
    return Settings(**{f.name: values[f.name] for f in fields(Settings) if f.name in values})


def _plural(n: int | float, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _loosened_rules(current: dict[str, Any], proposed: dict[str, Any]) -> bool:
    old, new = current["amount_threshold_minor"], proposed["amount_threshold_minor"]
    amount_looser = old is not None and (new is None or new > old)
    switched_off = any(current[k] and not proposed[k] for k in RULE_FIELDS[1:])
    return amount_looser or switched_off


def consequences_of(
    session: Session,
    *,
    current: dict[str, Any],
    proposed: dict[str, Any],
    preview: Preview,
    now: datetime,
) -> list[Consequence]:
    """Each thing the change destroys or stops checking, with how many it touches (flat values)."""
    found: list[Consequence] = []
    old_settings, new_settings = _settings(current), _settings(proposed)
    if any(proposed[k] < current[k] for k in RETENTION_FIELDS):
        due = count_newly_due(session, now, old_settings, new_settings)
        found.append(
            Consequence(
                "retention",
                f"{_plural(due, 'document becomes', 'documents become')} due at the next purge "
                "and will be destroyed for good when it runs (they cannot be recovered).",
            )
        )
    old_anon, new_anon = current["anonymise_after_days"], proposed["anonymise_after_days"]
    if new_anon is not None and (old_anon is None or new_anon < old_anon):
        extra = count_due_for_anonymising(session, now, new_anon) - count_due_for_anonymising(
            session, now, old_anon
        )
        found.append(
            Consequence(
                "anonymise_after_days",
                f"{_plural(max(extra, 0), 'order has', 'orders have')} their customer details "
                "anonymised at the next purge, for good.",
            )
        )
    days = preview.days
    if proposed["rate_bp"] < current["rate_bp"]:
        fewer = preview.current.random_per_day - preview.proposed.random_per_day
        found.append(
            Consequence(
                "rate_bp",
                f"The random sample falls from {format_rate(current['rate_bp'])} % to "
                f"{format_rate(proposed['rate_bp'])} %: about {fewer:.1f} fewer orders a day "
                f"would be checked at random (on the last {days} days' orders).",
            )
        )
    if _loosened_rules(current, proposed):
        fewer = max(preview.current.rule_forced - preview.proposed.rule_forced, 0)
        found.append(
            Consequence(
                "rules",
                f"A rule is switched off or loosened: {_plural(fewer, 'order', 'orders')} "
                f"of the last {days} days that a rule sent to review would no longer be forced "
                "into review.",
            )
        )
    old_exempt, new_exempt = current["repeat_exemption_days"], proposed["repeat_exemption_days"]
    if new_exempt is not None and (old_exempt is None or new_exempt > old_exempt):
        spared = preview.proposed.repeat_exempt
        found.append(
            Consequence(
                "repeat_exemption_days",
                f"{_plural(spared, 'order', 'orders')} of the last {days} days would have "
                "skipped the random draw as repeat customers (exempt from sampling).",
            )
        )
    elif proposed["rate_bp"] == current["rate_bp"] > 0:
        # Orders neither forced by a rule, nor spared as repeat customers, nor left to the
        # draw have been exempted by a rule: say how many more the change exempts.
        rate_bp: int = current["rate_bp"]

        def accounted(load: Load) -> float:
            candidates = load.random_expected * DRAW_SPACE / rate_bp
            return load.rule_forced + load.repeat_exempt + candidates

        spared = round(accounted(preview.current) - accounted(preview.proposed))
        if spared > 0:
            found.append(
                Consequence(
                    "exempt",
                    f"{_plural(spared, 'order', 'orders')} of the last {days} days would be "
                    "exempt from sampling: neither drawn at random nor sent to review by a rule.",
                )
            )
    if current["four_eyes_rejections"] and not proposed["four_eyes_rejections"]:
        found.append(
            Consequence(
                "four_eyes_rejections",
                "Rejections no longer wait for a second reviewer: one reviewer decides alone.",
            )
        )
    return found


def confirmation_token(base_version: int, proposed: dict[str, Any]) -> str:
    """A value tying a confirmation to exactly these values on top of this version."""
    text = json.dumps([base_version, proposed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
