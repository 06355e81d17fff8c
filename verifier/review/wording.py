"""What the review pages say: waiting times, addresses, and one message per decision.

Pure functions of loaded rows (no Flask, no queries), so the wording tests without a request.
"""

from __future__ import annotations

from datetime import timedelta

from verifier.core.checklist import CHECKS, NO, REJECTION_REASONS
from verifier.models import REJECTED, VerificationCase

Flash = tuple[str, str]  # (message, category)


def format_age(age: timedelta) -> str:
    """A short waiting time: "12 min", "3 h 20 min", "2 d 4 h"."""
    minutes = max(int(age.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def format_address(address: dict[str, object]) -> str:
    parts = ("name", "line1", "line2", "postcode", "city", "region", "country")
    return ", ".join(str(address[p]) for p in parts if address.get(p))


def saved_message(case: VerificationCase) -> Flash:
    answered = sum(1 for name in CHECKS if (case.checklist or {}).get(name))
    return f"Answers saved: {answered} of {len(CHECKS)} checks answered.", "success"


def approved_message(case: VerificationCase) -> Flash:
    return f"Order {case.order.external_id} approved. The shop has been told.", "success"


def rejected_message(case: VerificationCase) -> Flash:
    """Says what was rejected, why, which checks failed, and who acts next."""
    reason = REJECTION_REASONS.get(case.decision_reason_code or "", "no reason given")
    failed = [label for name, label in CHECKS.items() if (case.checklist or {}).get(name) == NO]
    checks = f" Failed: {'; '.join(failed)}." if failed else ""
    order = case.order.external_id
    if case.status != REJECTED:
        return (
            f"Rejection of order {order} proposed ({reason}).{checks} A second reviewer will "
            "confirm or overturn it; the case is released.",
            "info",
        )
    return f"Order {order} rejected ({reason}).{checks} The shop has been told.", "success"


def confirmed_message(case: VerificationCase) -> Flash:
    reason = REJECTION_REASONS.get(case.decision_reason_code or "", "no reason given")
    return (
        f"Rejection of order {case.order.external_id} confirmed ({reason}). "
        "The shop has been told.",
        "success",
    )


def resubmission_message(case: VerificationCase, kind_labels: dict[str, str]) -> Flash:
    kinds = "; ".join(kind_labels.get(k, k) for k in case.resubmission_kinds or [])
    return (
        f"Order {case.order.external_id} went back to the customer, who has been emailed a new "
        f"link to send again: {kinds}.",
        "success",
    )
