"""The review domain: claims and leases, decisions, four-eyes, resubmission, bulk, PCI erase."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.review_helpers import (
    ALL_YES,
    NOW,
    add_document,
    app_keyring,
    jpeg_bytes,
    make_case,
    make_staff,
)
from verifier.core.cases import change_status
from verifier.core.settings import Settings
from verifier.db import new_session
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import (
    APPROVED,
    AWAITING_DOCUMENTS,
    IN_REVIEW,
    REJECTED,
    RESUBMISSION_REQUESTED,
    AuditEvent,
    Document,
    QualityReview,
    VerificationCase,
    WebhookEvent,
)
from verifier.review.bulk import bulk_extend_links, bulk_reassign, bulk_release
from verifier.review.claims import (
    claim_case,
    claim_next_case,
    holder_label,
    release_case,
    renew_lease,
)
from verifier.review.decisions import (
    approve_case,
    confirm_rejection,
    overturn_rejection,
    reject_case,
    request_resubmission,
    save_checklist,
)
from verifier.review.documents import MASKED_PHOTO_MESSAGE, erase_document, view_document

SETTINGS = Settings(lease_minutes=15, max_resubmissions=2)
FOUR_EYES = Settings(lease_minutes=15, four_eyes_rejections=True)


@pytest.fixture
def session(app):
    session = new_session(app)
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def staff(session):
    people = (
        make_staff(session, "priya@shop.test"),
        make_staff(session, "tom@shop.test"),
        make_staff(session, "ada@shop.test", role="admin"),
    )
    session.commit()
    return people


def rng():
    return random.Random(7)


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def events(session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- claiming ---------------------------------------------------------------------------


def test_a_claimed_case_cannot_be_claimed_by_someone_else(session, staff):
    priya, tom, _ = staff
    case = make_case(session, "A-1")
    claimed = claim_case(session, case.id, priya.id, NOW, SETTINGS)
    assert claimed.claimed_by_id == priya.id
    assert claimed.lease_expires_at == NOW + timedelta(minutes=15)
    with pytest.raises(ConflictError) as exc:
        claim_case(session, case.id, tom.id, NOW + timedelta(minutes=5), SETTINGS)
    assert exc.value.message == "priya@shop.test is reviewing this case until 12:15 UTC."
    assert session.get(VerificationCase, case.id).claimed_by_id == priya.id
    assert [e.actor_id for e in events(session, "case.claimed")] == [str(priya.id)]


def test_a_claim_released_between_attempt_and_answer_is_told_as_free_not_a_crash(session, staff):
    # claim_case names the holder after a failed take; when the holder's release commits in
    # between, the case has no lease left and the answer says it is free again.
    priya, _, _ = staff
    case = make_case(session, "A-2")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    case.claimed_by_id, case.lease_expires_at = None, None
    assert "released" in holder_label(session, case)


def test_claiming_again_extends_the_own_lease_without_a_second_audit_event(session, staff):
    priya, _, _ = staff
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    again = claim_case(session, case.id, priya.id, NOW + timedelta(minutes=10), SETTINGS)
    assert again.lease_expires_at == NOW + timedelta(minutes=25)
    assert len(events(session, "case.claimed")) == 1


def test_an_expired_lease_can_be_taken_over_and_the_first_reviewer_can_no_longer_decide(
    session, staff
):
    priya, tom, _ = staff
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    later = NOW + timedelta(minutes=16)
    assert claim_case(session, case.id, tom.id, later, SETTINGS).claimed_by_id == tom.id
    with pytest.raises(ConflictError, match=r"tom@shop\.test is reviewing"):
        approve_case(session, case.id, priya.id, later, SETTINGS, checklist=ALL_YES, rng=rng())
    with pytest.raises(ConflictError, match=r"tom@shop\.test"):
        renew_lease(session, case.id, priya.id, later, SETTINGS)


def test_only_cases_in_review_can_be_claimed(session, staff):
    case = make_case(session, "A-1", status=AWAITING_DOCUMENTS)
    with pytest.raises(ConflictError, match="awaiting documents"):
        claim_case(session, case.id, staff[0].id, NOW, SETTINGS)
    with pytest.raises(NotFoundError):
        claim_case(session, 999_999, staff[0].id, NOW, SETTINGS)


def test_renew_and_release(session, staff):
    priya, tom, admin = staff
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    until = renew_lease(session, case.id, priya.id, NOW + timedelta(minutes=10), SETTINGS)
    assert until == NOW + timedelta(minutes=25)
    assert release_case(session, case.id, tom.id, NOW) is False
    assert release_case(session, case.id, priya.id, NOW) is True
    assert session.get(VerificationCase, case.id).claimed_by_id is None
    with pytest.raises(ConflictError, match="released"):
        renew_lease(session, case.id, priya.id, NOW, SETTINGS)
    claim_case(session, case.id, tom.id, NOW, SETTINGS)
    assert release_case(session, case.id, admin.id, NOW, force=True) is True
    released = events(session, "case.released")
    assert released[-1].details == {"holder": tom.id}


def test_claim_next_takes_the_oldest_free_case_and_returns_a_held_one_first(session, staff):
    priya, tom, _ = staff
    newest = make_case(session, "A-3", created_at=NOW - timedelta(hours=1))
    oldest = make_case(session, "A-1", created_at=NOW - timedelta(hours=3))
    middle = make_case(session, "A-2", created_at=NOW - timedelta(hours=2))
    make_case(session, "A-0", created_at=NOW - timedelta(hours=9), status=AWAITING_DOCUMENTS)
    claim_case(session, oldest.id, tom.id, NOW, SETTINGS)
    assert claim_next_case(session, priya.id, NOW, SETTINGS).id == middle.id
    # Asking again gives the case already held, not a second one.
    assert claim_next_case(session, priya.id, NOW, SETTINGS).id == middle.id
    assert claim_next_case(session, tom.id, NOW, SETTINGS).id == oldest.id
    release_case(session, oldest.id, tom.id, NOW)
    release_case(session, middle.id, priya.id, NOW)
    claim_case(session, middle.id, tom.id, NOW, SETTINGS)
    assert claim_next_case(session, priya.id, NOW, SETTINGS).id == oldest.id
    # Tom's lease on the middle case runs out: it is the oldest free one again.
    release_case(session, oldest.id, priya.id, NOW)
    claim_case(session, oldest.id, priya.id, NOW, SETTINGS)
    assert claim_next_case(session, priya.id, NOW, SETTINGS).id == oldest.id
    late = NOW + timedelta(minutes=20)
    assert claim_next_case(session, staff[2].id, late, SETTINGS).id == oldest.id
    assert claim_next_case(session, priya.id, late, SETTINGS).id == middle.id
    assert claim_next_case(session, tom.id, late, SETTINGS).id == newest.id
    assert claim_next_case(session, staff[2].id, late, SETTINGS).id == oldest.id


def test_claim_next_returns_none_when_nothing_is_free(session, staff):
    case = make_case(session, "A-1")
    claim_case(session, case.id, staff[1].id, NOW, SETTINGS)
    assert claim_next_case(session, staff[0].id, NOW, SETTINGS) is None


def test_concurrent_reviewers_never_get_the_same_case(app, session, staff):
    """Four reviewers, each in its own thread and session, work the queue until it is empty."""
    cases = [
        make_case(session, f"C-{i}", created_at=NOW - timedelta(minutes=100 - i)) for i in range(24)
    ]
    reviewers = [*staff, make_staff(session, "kim@shop.test")]
    session.commit()
    barrier = threading.Barrier(len(reviewers))
    taken: dict[int, list[int]] = {r.id: [] for r in reviewers}
    errors: list[BaseException] = []

    def work(staff_id: int) -> None:
        own = new_session(app)
        try:
            barrier.wait()
            while True:
                case = claim_next_case(own, staff_id, NOW, SETTINGS)
                own.commit()
                if case is None:
                    return
                taken[staff_id].append(case.id)
                approve_case(own, case.id, staff_id, NOW, SETTINGS, checklist=ALL_YES, rng=rng())
                own.commit()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(r.id,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    claimed = [case_id for ids in taken.values() for case_id in ids]
    assert sorted(claimed) == sorted(c.id for c in cases)  # each case exactly once
    session.expire_all()
    assert count(session, VerificationCase, VerificationCase.status == APPROVED) == 24
    assert count(session, WebhookEvent) == 24
    assert len(events(session, "case.claimed")) == 24


# --- decisions --------------------------------------------------------------------------


def test_approve_records_the_decision_once_with_audit_and_webhook(session, staff):
    priya, _, _ = staff
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    decided = approve_case(
        session, case.id, priya.id, NOW, SETTINGS, checklist=ALL_YES, rng=rng(), note="All good"
    )
    assert (decided.status, decided.decided_at, decided.decided_by_id) == (APPROVED, NOW, priya.id)
    assert decided.claimed_by_id is None and decided.lease_expires_at is None
    assert decided.checklist == ALL_YES
    session.commit()
    with pytest.raises(ConflictError, match="already approved"):
        approve_case(session, case.id, priya.id, NOW, SETTINGS, checklist=ALL_YES, rng=rng())
    with pytest.raises(ConflictError, match="already approved"):
        reject_case(
            session,
            case.id,
            priya.id,
            NOW,
            SETTINGS,
            reason_code="other",
            note="x",
            failed_checks=[],
            rng=rng(),
        )
    webhooks = list(session.scalars(select(WebhookEvent)))
    assert len(webhooks) == 1
    assert webhooks[0].payload["data"]["status"] == APPROVED
    changed = events(session, "case.status_changed")
    assert changed[0].details == {"from": IN_REVIEW, "to": APPROVED, "decision": APPROVED}


def test_two_simultaneous_approvals_decide_once(app, session, staff):
    """A double click sends two requests at once: one decides, the other gets a conflict."""
    priya = staff[0]
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)
    session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click() -> None:
        own = new_session(app)
        try:
            barrier.wait()
            approve_case(own, case.id, priya.id, NOW, SETTINGS, checklist=ALL_YES, rng=rng())
            own.commit()
            outcomes.append("approved")
        except ConflictError:
            own.rollback()
            outcomes.append("conflict")
        finally:
            own.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["approved", "conflict"]
    session.expire_all()
    assert count(session, WebhookEvent) == 1
    assert len(events(session, "case.status_changed")) == 1


def test_deciding_needs_the_claim(session, staff):
    case = make_case(session, "A-1")
    with pytest.raises(ConflictError, match="Claim this case"):
        approve_case(session, case.id, staff[0].id, NOW, SETTINGS, checklist=ALL_YES, rng=rng())


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({k: v for k, v in ALL_YES.items() if k != "id_not_expired"}, "checklist.id_not_expired"),
        (ALL_YES | {"card_name_matches": "no"}, "checklist.card_name_matches"),
        (ALL_YES | {"card_name_matches": "maybe"}, "checklist.card_name_matches"),
        (ALL_YES | {"shoe_size": "yes"}, "checklist.shoe_size"),
    ],
)
def test_approval_needs_every_check_answered_and_none_failed(session, staff, answers, field):
    case = make_case(session, "A-1")
    claim_case(session, case.id, staff[0].id, NOW, SETTINGS)
    with pytest.raises(ValidationError) as exc:
        approve_case(session, case.id, staff[0].id, NOW, SETTINGS, checklist=answers, rng=rng())
    assert field in exc.value.fields
    assert session.get(VerificationCase, case.id).status == IN_REVIEW


def test_a_partial_checklist_can_be_saved(session, staff):
    case = make_case(session, "A-1")
    claim_case(session, case.id, staff[0].id, NOW, SETTINGS)
    save_checklist(session, case.id, staff[0].id, {"card_name_matches": "yes"}, NOW)
    saved = save_checklist(session, case.id, staff[0].id, {"id_not_expired": "no"}, NOW)
    assert saved.checklist == {"card_name_matches": "yes", "id_not_expired": "no"}


def test_a_rejection_must_name_the_failed_check(session, staff):
    priya = staff[0]
    case = make_case(session, "A-1")
    claim_case(session, case.id, priya.id, NOW, SETTINGS)

    def reject(**kwargs):
        args = {"reason_code": "documents_do_not_match", "note": None, "failed_checks": []}
        return reject_case(session, case.id, priya.id, NOW, SETTINGS, rng=rng(), **args | kwargs)

    with pytest.raises(ValidationError) as exc:
        reject()
    assert "failed_checks" in exc.value.fields
    with pytest.raises(ValidationError):
        reject(reason_code="other")  # "other" needs a note
    with pytest.raises(ValidationError) as exc:
        reject(reason_code="because")
    assert "reason_code" in exc.value.fields
    with pytest.raises(ValidationError) as exc:
        reject(failed_checks=["card_name_matches"], checklist={"card_name_matches": "yes"})
    assert "checklist.card_name_matches" in exc.value.fields
    with pytest.raises(ValidationError) as exc:
        reject(failed_checks=["card_name_matches"], note="card 4111 1111 1111 1111")
    assert "note" in exc.value.fields
    rejected = reject(failed_checks=["card_last4_matches"], note="Last four differ")
    assert rejected.status == REJECTED
    assert rejected.checklist == {"card_last4_matches": "no"}
    assert rejected.decision_reason_code == "documents_do_not_match"
    changed = events(session, "case.status_changed")[-1]
    assert changed.details["failed_checks"] == ["card_last4_matches"]
    assert count(session, WebhookEvent) == 1


def test_other_with_a_note_is_a_complete_rejection(session, staff):
    case = make_case(session, "A-1")
    claim_case(session, case.id, staff[0].id, NOW, SETTINGS)
    rejected = reject_case(
        session,
        case.id,
        staff[0].id,
        NOW,
        SETTINGS,
        reason_code="other",
        note="Customer says the card was stolen",
        failed_checks=[],
        rng=rng(),
    )
    assert rejected.status == REJECTED and rejected.decision_note.startswith("Customer")


def test_quality_review_sampling(session, staff):
    always = Settings(quality_sample_percent=100)
    never = Settings(quality_sample_percent=0)
    sampled, skipped = make_case(session, "A-1"), make_case(session, "A-2")
    for case, settings in ((sampled, always), (skipped, never)):
        claim_case(session, case.id, staff[0].id, NOW, settings)
        approve_case(session, case.id, staff[0].id, NOW, settings, checklist=ALL_YES, rng=rng())
    reviews = list(session.scalars(select(QualityReview)))
    assert [(r.case_id, r.first_reviewer_id) for r in reviews] == [(sampled.id, staff[0].id)]


# --- four-eyes --------------------------------------------------------------------------


def _propose(session, case, staff_id):
    claim_case(session, case.id, staff_id, NOW, FOUR_EYES)
    return reject_case(
        session,
        case.id,
        staff_id,
        NOW,
        FOUR_EYES,
        reason_code="suspected_altered_document",
        note="Font differs",
        failed_checks=["id_name_matches"],
        rng=rng(),
    )


def test_four_eyes_a_second_reviewer_confirms_the_rejection(session, staff):
    priya, tom, _ = staff
    case = make_case(session, "A-1")
    proposed = _propose(session, case, priya.id)
    assert proposed.status == IN_REVIEW
    assert (proposed.proposed_rejection_by_id, proposed.proposed_rejection_at) == (priya.id, NOW)
    assert proposed.claimed_by_id is None
    assert count(session, WebhookEvent) == 0
    assert len(events(session, "case.rejection_proposed")) == 1
    # The proposer can neither take it back through "next" nor claim it to confirm it.
    assert claim_next_case(session, priya.id, NOW, FOUR_EYES) is None
    with pytest.raises(ConflictError, match="second reviewer"):
        claim_case(session, case.id, priya.id, NOW, FOUR_EYES)
    assert claim_next_case(session, tom.id, NOW, FOUR_EYES).id == case.id
    with pytest.raises(ConflictError, match="Confirm or overturn"):
        approve_case(session, case.id, tom.id, NOW, FOUR_EYES, checklist=ALL_YES, rng=rng())
    rejected = confirm_rejection(session, case.id, tom.id, NOW, FOUR_EYES, rng=rng())
    assert (rejected.status, rejected.decided_by_id) == (REJECTED, tom.id)
    assert rejected.decision_reason_code == "suspected_altered_document"
    assert count(session, WebhookEvent) == 1
    assert events(session, "case.status_changed")[-1].details["proposed_by"] == priya.id


def test_four_eyes_the_proposer_cannot_confirm_even_when_assigned(session, staff):
    priya, _, admin = staff
    case = make_case(session, "A-1")
    _propose(session, case, priya.id)
    results = bulk_reassign(session, [case.id], priya.id, admin.id, NOW, FOUR_EYES)
    assert not results[0].ok and "different one" in results[0].message
    with pytest.raises(ConflictError):
        confirm_rejection(session, case.id, priya.id, NOW, FOUR_EYES, rng=rng())


def test_four_eyes_a_second_reviewer_can_overturn_and_approve(session, staff):
    priya, tom, _ = staff
    case = make_case(session, "A-1")
    _propose(session, case, priya.id)
    claim_case(session, case.id, tom.id, NOW, FOUR_EYES)
    overturned = overturn_rejection(session, case.id, tom.id, NOW, note="ID is genuine")
    assert overturned.proposed_rejection_by_id is None and overturned.claimed_by_id == tom.id
    with pytest.raises(ConflictError, match="No rejection"):
        confirm_rejection(session, case.id, tom.id, NOW, FOUR_EYES, rng=rng())
    approved = approve_case(session, case.id, tom.id, NOW, FOUR_EYES, checklist=ALL_YES, rng=rng())
    assert approved.status == APPROVED
    assert len(events(session, "case.rejection_overturned")) == 1


# --- resubmission -----------------------------------------------------------------------


def test_resubmission_reopens_the_link_and_is_capped(session, staff):
    priya = staff[0]
    case = make_case(session, "A-1")
    reopened: list[int] = []

    def ask(**kwargs):
        claim_case(session, case.id, priya.id, NOW, SETTINGS)
        return request_resubmission(
            session,
            case.id,
            priya.id,
            NOW,
            SETTINGS,
            kinds=["card_back", "card_front"],
            message="The back is blurred.",
            reopen=lambda c: reopened.append(c.id),
            **kwargs,
        )

    for round_number in (1, 2):
        sent = ask()
        assert sent.status == RESUBMISSION_REQUESTED
        assert sent.resubmission_kinds == ["card_front", "card_back"]
        assert sent.resubmission_message == "The back is blurred."
        assert sent.resubmission_count == round_number and sent.claimed_by_id is None
        # The customer uploads again (the portal's move).
        change_status(session, sent, IN_REVIEW, actor_type="customer", actor_id=None, now=NOW)
    assert reopened == [case.id, case.id]
    with pytest.raises(ConflictError, match="only approve or reject now"):
        ask()
    assert session.get(VerificationCase, case.id).status == IN_REVIEW


@pytest.mark.parametrize(
    ("kinds", "message", "field"),
    [
        ([], "Please resend", "kinds"),
        (["passport"], "Please resend", "kinds"),
        (["photo_id"], "  ", "message"),
        (["photo_id"], "Your card 4111111111111111 is visible", "message"),
    ],
)
def test_resubmission_validation(session, staff, kinds, message, field):
    case = make_case(session, "A-1")
    claim_case(session, case.id, staff[0].id, NOW, SETTINGS)
    with pytest.raises(ValidationError) as exc:
        request_resubmission(
            session,
            case.id,
            staff[0].id,
            NOW,
            SETTINGS,
            kinds=kinds,
            message=message,
            reopen=lambda c: None,
        )
    assert field in exc.value.fields


# --- bulk -------------------------------------------------------------------------------


def test_bulk_release_reviewer_own_only_admin_any(session, staff):
    priya, tom, admin = staff
    mine, theirs, free = (make_case(session, f"A-{i}") for i in range(3))
    claim_case(session, mine.id, priya.id, NOW, SETTINGS)
    claim_case(session, theirs.id, tom.id, NOW, SETTINGS)
    results = bulk_release(
        session, [mine.id, theirs.id, free.id, 424242], priya.id, NOW, as_admin=False
    )
    assert [(r.case_id, r.ok) for r in results] == [
        (mine.id, True),
        (theirs.id, False),
        (free.id, False),
        (424242, False),
    ]
    assert "admin" in results[1].message
    results = bulk_release(session, [theirs.id], admin.id, NOW, as_admin=True)
    assert results[0].ok
    assert session.get(VerificationCase, theirs.id).claimed_by_id is None


def test_bulk_reassign_and_extend_links(session, staff):
    priya, tom, admin = staff
    reviewing = make_case(session, "A-1")
    waiting = make_case(session, "A-2", status=AWAITING_DOCUMENTS)
    claim_case(session, reviewing.id, priya.id, NOW, SETTINGS)
    results = bulk_reassign(session, [reviewing.id, waiting.id], tom.id, admin.id, NOW, SETTINGS)
    assert [r.ok for r in results] == [True, False]
    moved = session.get(VerificationCase, reviewing.id)
    assert moved.claimed_by_id == tom.id
    assert moved.lease_expires_at == NOW + timedelta(hours=SETTINGS.review_target_hours)
    assert events(session, "case.reassigned")[0].details["from"] == priya.id
    with pytest.raises(NotFoundError):
        bulk_reassign(session, [reviewing.id], 987654, admin.id, NOW, SETTINGS)

    extended: list[int] = []

    def extend(case):
        extended.append(case.id)
        return NOW + timedelta(days=7)

    results = bulk_extend_links(session, [reviewing.id, waiting.id], admin.id, NOW, extend=extend)
    assert [r.ok for r in results] == [False, True]
    assert extended == [waiting.id]
    assert "2026-11-30" in results[1].message
    with pytest.raises(ConflictError):
        bulk_release(session, [], admin.id, NOW, as_admin=True)


# --- documents: viewing and PCI erase ----------------------------------------------------


def test_view_document_decrypts_and_audits(app, session, staff):
    case = make_case(session, "A-1")
    document = add_document(session, app, case, data=jpeg_bytes((1, 2, 3)))
    found, data = view_document(
        session,
        document.id,
        staff[0].id,
        NOW,
        uploads_dir=app.config["UPLOADS_DIR"],
        keyring=app_keyring(app),
    )
    assert found.id == document.id and data == jpeg_bytes((1, 2, 3))
    viewed = events(session, "document.viewed")
    assert viewed[0].target_id == document.id and viewed[0].actor_id == str(staff[0].id)
    with pytest.raises(NotFoundError):
        view_document(
            session,
            "0" * 32,
            staff[0].id,
            NOW,
            uploads_dir=app.config["UPLOADS_DIR"],
            keyring=app_keyring(app),
        )


def test_pci_erase_leaves_no_blob_and_no_key_and_asks_for_a_masked_photo(app, session, staff):
    uploads = app.config["UPLOADS_DIR"]
    case = make_case(session, "A-1")
    front = add_document(session, app, case, "card_front", upload_id="u" * 32)
    second_page = add_document(session, app, case, "card_front", upload_id="u" * 32, page=2)
    back = add_document(session, app, case, "card_back")
    blob_paths = [uploads / d.blob_name[:2] / d.blob_name for d in (front, second_page, back)]
    assert all(p.exists() for p in blob_paths)
    reopened: list[int] = []

    result = erase_document(
        session,
        front.id,
        staff[0].id,
        NOW,
        uploads,
        "security_code_visible",
        settings=SETTINGS,
        reopen=lambda c: reopened.append(c.id),
    )
    assert result.pages == 2 and result.resubmission_requested
    assert not blob_paths[0].exists() and not blob_paths[1].exists() and blob_paths[2].exists()
    for page in (front, second_page):
        row = session.get(Document, page.id)
        assert (row.status, row.blob_name, row.wrapped_key, row.key_id) == (
            "erased",
            None,
            None,
            None,
        )
        assert row.erased_at == NOW
    case = session.get(VerificationCase, case.id)
    assert case.status == RESUBMISSION_REQUESTED
    assert case.resubmission_kinds == ["card_front"]
    assert case.resubmission_message == MASKED_PHOTO_MESSAGE
    assert reopened == [case.id]
    erased = events(session, "document.erased")[0]
    assert erased.details == {
        "case": case.id,
        "kind": "card_front",
        "reason": "security_code_visible",
        "pages": 2,
    }
    assert not any(ch.isdigit() for ch in str(erased.details["reason"]) + erased.details["kind"])
    with pytest.raises(NotFoundError):
        view_document(
            session, front.id, staff[0].id, NOW, uploads_dir=uploads, keyring=app_keyring(app)
        )

    # The back shows the code too: it joins the same request, with a fresh link.
    result = erase_document(
        session,
        back.id,
        staff[0].id,
        NOW,
        uploads,
        "full_card_number_visible",
        settings=SETTINGS,
        reopen=lambda c: reopened.append(c.id),
    )
    assert result.resubmission_requested and not blob_paths[2].exists()
    assert session.get(VerificationCase, case.id).resubmission_kinds == ["card_front", "card_back"]
    assert len(reopened) == 2


def test_pci_erase_refusals_and_the_resubmission_cap(app, session, staff):
    uploads = app.config["UPLOADS_DIR"]
    case = make_case(session, "A-1")
    photo_id = add_document(session, app, case, "photo_id")
    front = add_document(session, app, case, "card_front")
    with pytest.raises(ConflictError, match="Only card images"):
        erase_document(
            session,
            photo_id.id,
            staff[0].id,
            NOW,
            uploads,
            "security_code_visible",
            settings=SETTINGS,
            reopen=lambda c: None,
        )
    with pytest.raises(ValidationError):
        erase_document(
            session,
            front.id,
            staff[0].id,
            NOW,
            uploads,
            "looked_odd",
            settings=SETTINGS,
            reopen=lambda c: None,
        )
    capped = Settings(max_resubmissions=0)
    result = erase_document(
        session,
        front.id,
        staff[0].id,
        NOW,
        uploads,
        "security_code_visible",
        settings=capped,
        reopen=lambda c: None,
    )
    assert not result.resubmission_requested and "only approve or reject" in result.message
    assert session.get(Document, front.id).wrapped_key is None
    assert session.get(VerificationCase, case.id).status == IN_REVIEW
