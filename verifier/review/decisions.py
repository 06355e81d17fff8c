"""Deciding a case: the checklist, approval, rejection with four-eyes, and resubmission.

Every decision first locks the case and checks the reviewer's claim (verifier.review.claims).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.cases import change_status
from verifier.core.checklist import (
    ANSWERS,
    CHECKS,
    NO,
    NOT_APPLICABLE,
    OTHER,
    REJECTION_REASONS,
    YES,
)
from verifier.core.checks import PAN_RE
from verifier.core.settings import Settings
from verifier.errors import ConflictError, ValidationError
from verifier.models import (
    APPROVED,
    DOCUMENT_KINDS,
    REJECTED,
    RESUBMISSION_REQUESTED,
    QualityReview,
    VerificationCase,
)
from verifier.review.claims import lock_for_decision, refuse_own_proposal

MAX_NOTE = 2000
MAX_MESSAGE = 1000

Reopen = Callable[[VerificationCase], object]
"""Reopens the customer's upload link and emails it; given the case after its status moved."""


def _clean_text(value: str | None, field: str, limit: int) -> str | None:
    text = (value or "").strip()
    if len(text) > limit:
        raise ValidationError("The text is too long.", {field: f"Use at most {limit} characters."})
    if PAN_RE.search(text):
        raise ValidationError(
            "Never write a card number.", {field: "Remove the card number from this text."}
        )
    return text or None


def validate_checklist(answers: Mapping[str, str], *, complete: bool) -> dict[str, str]:
    """Return the checklist with only known checks and answers; raises ValidationError."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for name, value in answers.items():
        if name not in CHECKS:
            errors[f"checklist.{name}"] = "Unknown check."
        elif value in (None, ""):
            continue
        elif value not in ANSWERS:
            errors[f"checklist.{name}"] = "Answer yes, no or not applicable."
        else:
            clean[name] = value
    missing = []
    if complete:
        for name in CHECKS:
            if name not in clean and f"checklist.{name}" not in errors:
                errors[f"checklist.{name}"] = f"Answer “{CHECKS[name]}”: yes, no or not applicable."
                missing.append(CHECKS[name])
    if errors:
        raise ValidationError(_checklist_summary(missing), errors)
    return clean


def _checklist_summary(missing: list[str]) -> str:
    """One sentence naming the checks still to answer, for the top of the page."""
    if not missing:
        return "Some checks are not answered correctly."
    if len(missing) == 1:
        return f"Answer one more check before deciding: “{missing[0]}”."
    named = "; ".join(f"“{label}”" for label in missing)
    return f"Answer {len(missing)} more checks before deciding: {named}."


def save_checklist(
    session: Session, case_id: int, staff_id: int, answers: Mapping[str, str], now: datetime
) -> VerificationCase:
    """Store the reviewer's answers so far (partial is fine); needs the claim."""
    case = lock_for_decision(session, case_id, staff_id)
    case.checklist = dict(case.checklist or {}) | validate_checklist(answers, complete=False)
    case.updated_at = now
    return case


def _finish(
    session: Session,
    case: VerificationCase,
    status: str,
    staff_id: int,
    now: datetime,
    settings: Settings,
    rng: random.Random,
    details: dict[str, Any],
) -> VerificationCase:
    """Record a final decision: status change (audit + webhook), lease freed, QA sample."""
    case.decided_at = now
    case.decided_by_id = staff_id
    case.claimed_by_id = None
    case.lease_expires_at = None
    change_status(
        session, case, status, actor_type="staff", actor_id=staff_id, now=now, details=details
    )
    if rng.randrange(100) < settings.quality_sample_percent:
        session.add(QualityReview(case_id=case.id, first_reviewer_id=staff_id, created_at=now))
    return case


def _refuse_pending_proposal(case: VerificationCase) -> None:
    if case.proposed_rejection_by_id is not None:
        raise ConflictError("Confirm or overturn the proposed rejection first.")


def approve_case(
    session: Session,
    case_id: int,
    staff_id: int,
    now: datetime,
    settings: Settings,
    *,
    checklist: Mapping[str, str],
    rng: random.Random,
    note: str | None = None,
) -> VerificationCase:
    """Approve a claimed case; every check must be answered and none may be "no"."""
    note = _clean_text(note, "note", MAX_NOTE)
    answers = validate_checklist(checklist, complete=True)
    failed = [name for name, value in answers.items() if value == NO]
    if failed:
        raise ValidationError(
            "A case with a failed check cannot be approved: reject it instead.",
            {f"checklist.{name}": f"“{CHECKS[name]}” is answered no." for name in failed},
        )
    case = lock_for_decision(session, case_id, staff_id)
    _refuse_pending_proposal(case)
    case.checklist = answers
    case.decision_reason_code = None
    case.decision_note = note
    return _finish(session, case, APPROVED, staff_id, now, settings, rng, {"decision": APPROVED})


def _rejection_input(
    reason_code: str,
    note: str | None,
    failed_checks: Iterable[str],
    checklist: Mapping[str, str] | None,
) -> tuple[str | None, dict[str, str], list[str]]:
    """Validate a rejection: its reason, note and the checks that failed (as "no" answers)."""
    if reason_code not in REJECTION_REASONS:
        raise ValidationError("Choose a reason.", {"reason_code": "Choose a reason."})
    note = _clean_text(note, "note", MAX_NOTE)
    answers = validate_checklist(checklist or {}, complete=False)
    errors: dict[str, str] = {}
    failed = []
    for name in dict.fromkeys(failed_checks):
        if name not in CHECKS:
            errors["failed_checks"] = "Unknown check."
        elif answers.get(name) in (YES, NOT_APPLICABLE):
            errors[f"checklist.{name}"] = "This check is marked as failed; answer it no."
        else:
            failed.append(name)
            answers[name] = NO
    failed += [n for n, v in answers.items() if v == NO and n not in failed]
    if not failed and not (reason_code == OTHER and note):
        errors["failed_checks"] = "Name the check that failed (or choose Other and explain)."
    if errors:
        raise ValidationError("The rejection is not complete.", errors)
    return note, answers, [name for name in CHECKS if name in failed]


def reject_case(
    session: Session,
    case_id: int,
    staff_id: int,
    now: datetime,
    settings: Settings,
    *,
    reason_code: str,
    note: str | None,
    failed_checks: Iterable[str],
    rng: random.Random,
    checklist: Mapping[str, str] | None = None,
) -> VerificationCase:
    """Reject a claimed case, or with four-eyes on, propose the rejection and release it.

    Raises ValidationError unless a failed check is named (or the reason is "other" with a
    note), ConflictError when not holding the case or a rejection is already proposed.
    """
    note, answers, failed = _rejection_input(reason_code, note, failed_checks, checklist)
    case = lock_for_decision(session, case_id, staff_id)
    _refuse_pending_proposal(case)
    case.checklist = dict(case.checklist or {}) | answers
    case.decision_reason_code = reason_code
    case.decision_note = note
    details = {"decision": REJECTED, "reason_code": reason_code, "failed_checks": failed}
    if not settings.four_eyes_rejections:
        return _finish(session, case, REJECTED, staff_id, now, settings, rng, details)
    case.proposed_rejection_by_id = staff_id
    case.proposed_rejection_at = now
    case.claimed_by_id = None
    case.lease_expires_at = None
    case.updated_at = now
    record_event(
        session, "case.rejection_proposed", actor_type="staff", actor_id=staff_id,
        target_type="case", target_id=case.id, details=details, now=now,
    )  # fmt: skip
    return case


def _lock_proposal(session: Session, case_id: int, staff_id: int) -> VerificationCase:
    case = lock_for_decision(session, case_id, staff_id)
    if case.proposed_rejection_by_id is None:
        raise ConflictError("No rejection is waiting for confirmation on this case.")
    refuse_own_proposal(case, staff_id)
    return case


def confirm_rejection(
    session: Session,
    case_id: int,
    staff_id: int,
    now: datetime,
    settings: Settings,
    *,
    rng: random.Random,
) -> VerificationCase:
    """A second reviewer confirms a proposed rejection: the case becomes rejected."""
    case = _lock_proposal(session, case_id, staff_id)
    details = {
        "decision": REJECTED,
        "reason_code": case.decision_reason_code,
        "proposed_by": case.proposed_rejection_by_id,
        "failed_checks": [n for n in CHECKS if (case.checklist or {}).get(n) == NO],
    }
    return _finish(session, case, REJECTED, staff_id, now, settings, rng, details)


def overturn_rejection(
    session: Session, case_id: int, staff_id: int, now: datetime, *, note: str | None
) -> VerificationCase:
    """A second reviewer sets a proposed rejection aside; the case stays with them in review."""
    note = _clean_text(note, "note", MAX_NOTE)
    case = _lock_proposal(session, case_id, staff_id)
    proposer = case.proposed_rejection_by_id
    case.proposed_rejection_by_id = None
    case.proposed_rejection_at = None
    case.decision_reason_code = None
    case.decision_note = note
    case.updated_at = now
    record_event(
        session, "case.rejection_overturned", actor_type="staff", actor_id=staff_id,
        target_type="case", target_id=case.id, details={"proposed_by": proposer}, now=now,
    )  # fmt: skip
    return case


def clean_resubmission(kinds: Iterable[str], message: str | None) -> tuple[list[str], str]:
    """Validate the documents asked for again and the message to the customer."""
    chosen = [kind for kind in DOCUMENT_KINDS if kind in set(kinds)]
    errors = {}
    if not chosen or set(kinds) - set(DOCUMENT_KINDS):
        errors["kinds"] = "Choose the documents the customer should send again."
    try:
        text = _clean_text(message, "message", MAX_MESSAGE)
    except ValidationError as exc:
        errors |= exc.fields
        text = None
    if not text and "message" not in errors:
        errors["message"] = "Tell the customer what to change."
    if errors:
        raise ValidationError("The request for new documents is not complete.", errors)
    assert text is not None  # an empty message is one of the errors above
    return chosen, text


def check_resubmission_allowed(case: VerificationCase, settings: Settings) -> None:
    if case.resubmission_count >= settings.max_resubmissions:
        raise ConflictError(
            f"This case has had {case.resubmission_count} new upload(s), the most allowed: "
            "only approve or reject now."
        )


def send_back(
    session: Session,
    case: VerificationCase,
    kinds: list[str],
    message: str,
    *,
    actor_id: int,
    now: datetime,
    reopen: Reopen,
    details: dict[str, Any] | None = None,
) -> None:
    """Move a case to resubmission_requested for `kinds`, free it, and reopen the link."""
    case.resubmission_kinds = kinds
    case.resubmission_message = message
    case.resubmission_count += 1
    case.claimed_by_id = None
    case.lease_expires_at = None
    change_status(
        session, case, RESUBMISSION_REQUESTED, actor_type="staff", actor_id=actor_id, now=now,
        details={"kinds": kinds, "count": case.resubmission_count} | (details or {}),
    )  # fmt: skip
    reopen(case)


def request_resubmission(
    session: Session,
    case_id: int,
    staff_id: int,
    now: datetime,
    settings: Settings,
    *,
    kinds: Iterable[str],
    message: str,
    reopen: Reopen,
) -> VerificationCase:
    """Ask the customer for new documents of `kinds`; `reopen` emails a fresh link.

    Raises ConflictError once `settings.max_resubmissions` is reached.
    """
    kinds = list(kinds)
    chosen, text = clean_resubmission(kinds, message)
    case = lock_for_decision(session, case_id, staff_id)
    _refuse_pending_proposal(case)
    check_resubmission_allowed(case, settings)
    send_back(session, case, chosen, text, actor_id=staff_id, now=now, reopen=reopen)
    return case
