"""Clear decisions (issue 13, item 4): errors that name the check, one message per action,
erasures labelled by their cause, QA disagreements settled by admins, per-reviewer numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.review_helpers import ALL_YES, add_document, make_case, make_staff
from verifier.core.checklist import CHECKS
from verifier.core.policies import create_policy_version
from verifier.db import new_session
from verifier.errors import ConflictError, NotFoundError, ValidationError
from verifier.models import APPROVED, REJECTED, AuditEvent, QualityReview, VerificationCase
from verifier.retention.erasure import erase_customer
from verifier.review.quality import (
    list_disagreements,
    record_quality_verdict,
    resolve_disagreement,
)
from verifier.review.throughput import reviewer_throughput

NOW = datetime.now(UTC).replace(microsecond=0)


def _flashes(html: str, kind: str) -> list[str]:
    return re.findall(rf'<div class="flash flash-{kind}"[^>]*>(.*?)</div>', html, re.S)


@pytest.fixture
def claimed(app, client, reviewer, login, db_session):
    case = make_case(db_session, "WEB-30001", created_at=NOW - timedelta(hours=1))
    add_document(db_session, app, case, "card_front")
    db_session.commit()
    login(client, reviewer)
    claimed = client.post(f"/review/cases/{case.id}/claim", follow_redirects=True)
    assert claimed.status_code == 200  # and its message is shown, so later pages start clean
    return case


def test_approving_with_unanswered_checks_names_each_one_once(client, claimed):
    answers = {"card_name_matches": "yes", "card_last4_matches": "yes"}
    response = client.post(f"/review/cases/{claimed.id}/approve", data=answers)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    errors = _flashes(html, "error")
    assert len(errors) == 1, errors  # one summary, not a banner per check
    assert errors[0].startswith("Answer 3 more checks before deciding")
    for name in ("id_name_matches", "id_not_expired", "address_matches_and_recent"):
        label = CHECKS[name]
        assert label in errors[0]
        # ...and each check's own error sits in its fieldset, naming it.
        assert f'id="{name}-error">Answer “{label}”: yes, no or not applicable.' in html
    assert "Answer this check." not in html


def test_approving_a_failed_check_names_it(client, claimed):
    answers = ALL_YES | {"id_not_expired": "no"}
    html = client.post(f"/review/cases/{claimed.id}/approve", data=answers).get_data(as_text=True)
    assert _flashes(html, "error") == [
        "A case with a failed check cannot be approved: reject it instead."
    ]
    assert f"“{CHECKS['id_not_expired']}” is answered no." in html


def test_a_rejection_says_what_happened(client, claimed, db_session):
    data = ALL_YES | {"card_name_matches": "no", "reason_code": "documents_do_not_match"}
    response = client.post(f"/review/cases/{claimed.id}/reject", data=data, follow_redirects=True)
    messages = _flashes(response.get_data(as_text=True), "success")
    assert messages == [
        "Order WEB-30001 rejected (The documents do not match the order). Failed: "
        f"{CHECKS['card_name_matches']}. The shop has been told."
    ]
    assert "Done." not in response.get_data(as_text=True)


def test_a_proposed_rejection_is_one_message_too(client, claimed, db_session):
    create_policy_version(db_session, changes={"settings": {"four_eyes_rejections": True}},
                          reason="test", actor_label="test", actor_id=None, now=NOW)  # fmt: skip
    db_session.commit()
    data = {"id_name_matches": "no", "reason_code": "suspected_altered_document"}
    html = client.post(
        f"/review/cases/{claimed.id}/reject", data=data, follow_redirects=True
    ).get_data(as_text=True)
    assert _flashes(html, "success") == []
    (message,) = _flashes(html, "info")
    assert message.startswith("Rejection of order WEB-30001 proposed (A document looks altered).")
    assert "second reviewer" in message


def test_saving_answers_counts_them(client, claimed):
    html = client.post(
        f"/review/cases/{claimed.id}/checklist", data={"card_name_matches": "yes"},
        follow_redirects=True,
    ).get_data(as_text=True)  # fmt: skip
    assert _flashes(html, "success") == ["Answers saved: 1 of 5 checks answered."]


def test_approve_and_next_opens_the_next_case(client, claimed, db_session):
    later = make_case(db_session, "WEB-30002", created_at=NOW - timedelta(minutes=30))
    db_session.commit()
    response = client.post(f"/review/cases/{claimed.id}/approve", data=ALL_YES | {"then": "next"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/review/cases/{later.id}")
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert _flashes(html, "success") == ["Order WEB-30001 approved. The shop has been told."]
    assert "You are reviewing this case" in html
    # With nothing left, it goes back to the queue and says so.
    response = client.post(f"/review/cases/{later.id}/approve", data=ALL_YES | {"then": "next"})
    assert response.headers["Location"].endswith("/review/")
    html = client.get("/review/").get_data(as_text=True)
    assert "No other case is waiting for review right now." in html


def test_claim_time_is_kept_on_renewal_and_reset_by_a_new_claim(client, claimed, db_session):
    db_session.rollback()
    first = db_session.get(VerificationCase, claimed.id, populate_existing=True).claimed_at
    assert first is not None
    client.post(f"/review/cases/{claimed.id}/claim")  # renews own claim
    db_session.rollback()
    assert db_session.get(VerificationCase, claimed.id, populate_existing=True).claimed_at == first


# --- erasure labels --------------------------------------------------------------------------


def test_a_customer_requested_erasure_is_labelled_as_such(app, client, reviewer, login, db_session):
    case = make_case(db_session, "WEB-30010", created_at=NOW - timedelta(hours=1))
    add_document(db_session, app, case, "card_front")
    add_document(db_session, app, case, "photo_id")
    db_session.commit()
    erase_customer(
        lambda: new_session(app), app.config["UPLOADS_DIR"], order_external_id="WEB-30010",
        reason="Customer asked to be forgotten", actor_id=None, now=NOW,
    )  # fmt: skip
    login(client, reviewer)
    html = client.get(f"/review/cases/{case.id}").get_data(as_text=True)
    assert html.count("erased at the customer&#39;s request") == 2
    assert "security code" not in html.split("Retention")[0].split("Documents")[-1]
    assert "card number were visible" not in html


# --- quality disagreements -------------------------------------------------------------------


def _disagreement(session, first, second, status=APPROVED, external_id="Q-9"):
    case = make_case(session, external_id, status=status, created_at=NOW - timedelta(days=2))
    case.decided_at, case.decided_by_id = NOW - timedelta(days=1), first.id
    review = QualityReview(case_id=case.id, first_reviewer_id=first.id, created_at=NOW)
    session.add(review)
    session.flush()
    other = REJECTED if status == APPROVED else APPROVED
    record_quality_verdict(session, review.id, second.id, other, NOW)
    return review


def test_a_disagreement_is_raised_and_settled_once(db_session):
    ann, ben, boss = (make_staff(db_session, f"{n}@example.test") for n in ("ann", "ben", "boss"))
    review = _disagreement(db_session, ann, ben)
    db_session.commit()
    raised = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "quality.disagreement_raised")
    )
    assert raised.details["first_decision"] == APPROVED
    assert raised.details["second_verdict"] == REJECTED

    (row,) = list_disagreements(db_session, resolved=False)
    assert (row.first_decision, row.first_reviewer) == (APPROVED, "ann@example.test")
    assert (row.second_verdict, row.second_reviewer) == (REJECTED, "ben@example.test")

    with pytest.raises(ValidationError):
        resolve_disagreement(db_session, review.id, boss.id, "maybe", None, NOW)
    resolve_disagreement(db_session, review.id, boss.id, "second_right", "Expired ID", NOW)
    db_session.commit()
    assert list_disagreements(db_session, resolved=False) == []
    (done,) = list_disagreements(db_session, resolved=True)
    assert (done.resolution, done.resolution_note, done.resolved_by) == (
        "second_right", "Expired ID", "boss@example.test",
    )  # fmt: skip
    event = db_session.scalar(
        select(AuditEvent).where(AuditEvent.action == "quality.disagreement_resolved")
    )
    assert event.actor_id == str(boss.id) and event.details["resolution"] == "second_right"
    assert event.details["first_decision"] == APPROVED
    assert event.details["second_verdict"] == REJECTED
    with pytest.raises(ConflictError):
        resolve_disagreement(db_session, review.id, boss.id, "first_stands", None, NOW)


def test_an_agreeing_check_is_no_disagreement(db_session):
    ann, ben = (
        make_staff(db_session, "ann@example.test"),
        make_staff(db_session, "ben@example.test"),
    )
    case = make_case(db_session, "Q-1", status=APPROVED)
    case.decided_by_id = ann.id
    review = QualityReview(case_id=case.id, first_reviewer_id=ann.id, created_at=NOW)
    db_session.add(review)
    db_session.flush()
    record_quality_verdict(db_session, review.id, ben.id, APPROVED, NOW)
    with pytest.raises(NotFoundError):
        resolve_disagreement(db_session, review.id, ann.id, "first_stands", None, NOW)


def test_admins_settle_disagreements_on_their_page(
    client, admin_user, reviewer, second_reviewer, login, db_session
):
    review = _disagreement(
        db_session, db_session.merge(reviewer), db_session.merge(second_reviewer), status=REJECTED
    )
    db_session.commit()
    login(client, admin_user)
    html = client.get("/review/quality/disagreements").get_data(as_text=True)
    assert "Rejected</strong> by reviewer@example.test" in html
    assert "Approved</strong> by reviewer2@example.test" in html
    refused = client.post(f"/review/quality/disagreements/{review.id}/resolve", data={})
    assert refused.status_code == 422
    assert "Choose how the disagreement is settled." in refused.get_data(as_text=True)
    response = client.post(
        f"/review/quality/disagreements/{review.id}/resolve",
        data={f"r{review.id}-resolution": "first_stands", f"r{review.id}-note": "ID fine"},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "settled: The first decision was right." in html
    assert "No open disagreements" in html
    settled = client.get("/review/quality/disagreements?show=resolved").get_data(as_text=True)
    assert "ID fine" in settled and "admin@example.test" in settled


def test_a_differing_verdict_says_it_went_to_an_admin(
    client, reviewer, second_reviewer, login, db_session
):
    case = make_case(db_session, "Q-5", status=APPROVED)
    case.decided_by_id = reviewer.id
    review = QualityReview(case_id=case.id, first_reviewer_id=reviewer.id, created_at=NOW)
    db_session.add(review)
    db_session.commit()
    login(client, second_reviewer)
    html = client.post(
        f"/review/quality/{review.id}", data={"verdict": "rejected"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "raised to an admin" in html


# --- per-reviewer numbers --------------------------------------------------------------------


def test_reviewer_throughput_is_counted_per_reviewer(db_session, app, client, admin_user, login):
    ann, ben = (
        make_staff(db_session, "ann@example.test"),
        make_staff(db_session, "ben@example.test"),
    )
    for i, (who, status, minutes) in enumerate(
        [(ann, APPROVED, 4), (ann, APPROVED, 6), (ann, REJECTED, 8), (ben, APPROVED, 3)]
    ):
        case = make_case(db_session, f"T-{i}", status=status, created_at=NOW - timedelta(days=1))
        case.decided_at = NOW - timedelta(hours=2)
        case.claimed_at = case.decided_at - timedelta(minutes=minutes)
        case.decided_by_id = who.id
        if who is ann and i < 2:
            check = QualityReview(case_id=case.id, first_reviewer_id=ann.id, reviewer_id=ben.id,
                                  verdict=APPROVED, agrees=i == 0, created_at=NOW,
                                  completed_at=NOW - timedelta(hours=1))  # fmt: skip
            db_session.add(check)
    db_session.commit()
    rows = reviewer_throughput(db_session, start=NOW - timedelta(days=2), end=NOW, days=2)
    by = {r.reviewer: r for r in rows}
    assert [r.reviewer for r in rows] == ["ann@example.test", "ben@example.test"]
    a = by["ann@example.test"]
    assert (a.decided, a.approved, a.rejected, a.per_day) == (3, 2, 1, 1.5)
    assert a.minutes_per_case == pytest.approx(6, abs=0.01)
    assert (a.checked, a.agreed, a.agreement) == (2, 1, 0.5)
    assert by["ben@example.test"].minutes_per_case == pytest.approx(3, abs=0.01)
    assert by["ben@example.test"].agreement is None

    login(client, admin_user)
    html = client.get("/admin/dashboard/").get_data(as_text=True)
    assert "Reviewers" in html and "6.0 min" in html and "50.0 %" in html


def test_the_workbench_works_without_javascript(client, claimed):
    """Checks beside their documents still belong to the decision form; compare is a link."""
    html = client.get(f"/review/cases/{claimed.id}").get_data(as_text=True)
    assert html.count('form="decision-form"') == 3 * len(CHECKS)  # every answer of every check
    assert '<form method="post" action="/review/cases/' in html and 'id="decision-form"' in html
    assert 'name="then" value="next"' in html  # Approve and next is a plain submit button
    # Only a card was sent: the ID and address checks start as not applicable.
    for name in ("id_name_matches", "id_not_expired", "address_matches_and_recent"):
        assert f'<input checked form="decision-form" id="{name}-2" name="{name}"' in html
    assert '<input checked form="decision-form" id="card_name_matches' not in html
    assert 'class="workbench"' in html and f"/review/cases/{claimed.id}?compare=1" in html
    compare = client.get(f"/review/cases/{claimed.id}?compare=1").get_data(as_text=True)
    assert 'class="workbench compare"' in compare
    assert "No photo ID was sent for this case" in html


def test_asking_again_names_the_documents(client, claimed):
    html = client.post(
        f"/review/cases/{claimed.id}/resubmission",
        data={"kinds": ["card_front", "photo_id"], "message": "The photo is blurred."},
        follow_redirects=True,
    ).get_data(as_text=True)  # fmt: skip
    assert _flashes(html, "success") == [
        "Order WEB-30001 went back to the customer, who has been emailed a new link to send "
        "again: Card, front; Photo ID."
    ]
