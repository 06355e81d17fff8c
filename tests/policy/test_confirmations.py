"""A settings change that destroys or exposes something says what, and needs a confirmation."""

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.stats_helpers import add_order
from verifier.core.policies import current_policy
from verifier.core.settings import Settings
from verifier.models import APPROVED, Document, SamplingPolicy
from verifier.policy.consequences import consequences_of
from verifier.policy.preview import preview_policy

VALID = {
    "base_version": "1", "rate": "5", "amount_threshold": "", "document_requirement": "card_or_id",
    "repeat_exemption_days": "", "link_lifetime_days": "7", "reminder_before_hours": "48",
    "review_target_hours": "24", "lease_minutes": "15", "max_resubmissions": "3",
    "max_uploads_per_case": "40", "quality_sample_percent": "0", "retention_decided_days": "30",
    "retention_expired_days": "7", "anonymise_after_days": "", "reason": "Testing",
}  # fmt: skip
DEFAULTS = {"rate_bp": 500, "amount_threshold_minor": None, "rule_country_mismatch": False,
            "rule_name_mismatch": False} | asdict(Settings())  # fmt: skip


def _documents(session, case_id, n):
    for i in range(n):
        document = Document(case_id=case_id, kind="card_front", page=i + 1, key_id="k1",
                            wrapped_key=b"k" * 40, blob_name=f"b{case_id}-{i}", width=10,
                            content_type="image/jpeg", source_type="image/jpeg", height=10,
                            byte_size=100)  # fmt: skip
        session.add(document)


def _seed(session, now):
    """3 documents of a case decided 10 days ago, 2 of one decided yesterday."""
    old = add_order(session, at=now - timedelta(days=11), reason="random", draw=1,
                    status=APPROVED, decided_at=now - timedelta(days=10))  # fmt: skip
    new = add_order(session, at=now - timedelta(days=2), reason="random", draw=1,
                    status=APPROVED, decided_at=now - timedelta(days=1))  # fmt: skip
    _documents(session, old.case.id, 3)
    _documents(session, new.case.id, 2)
    current_policy(session)
    session.commit()


def _versions(db_session) -> int:
    db_session.rollback()
    return db_session.scalar(select(func.count()).select_from(SamplingPolicy))


@pytest.fixture
def admin_client(client, admin_user, login, db_session):
    current_policy(db_session)
    db_session.commit()
    login(client, admin_user)
    return client


def test_shorter_retention_counts_the_documents_that_become_due(db_session):
    now = datetime.now(UTC)
    _seed(db_session, now)
    shorter = DEFAULTS | {"retention_decided_days": 5}
    preview = preview_policy(db_session, current=DEFAULTS, proposed=shorter, now=now)
    found = consequences_of(
        db_session, current=DEFAULTS, proposed=shorter, preview=preview, now=now
    )
    assert [c.text.split(" due")[0] for c in found] == ["3 documents become"]
    none = consequences_of(
        db_session, current=DEFAULTS, proposed=DEFAULTS, preview=preview, now=now
    )
    assert none == []


@pytest.mark.parametrize(
    ("change", "phrase"),
    [({"rate_bp": 100}, "The random sample falls from 5 % to 1 %"),
     ({"repeat_exemption_days": 30}, "skipped the random draw as repeat customers"),
     ({"anonymise_after_days": 30}, "anonymised at the next purge"),
     ({"four_eyes_rejections": False}, "one reviewer decides alone")],
)  # fmt: skip
def test_each_risky_change_is_stated(db_session, change, phrase):
    now = datetime.now(UTC)
    current = DEFAULTS | {"four_eyes_rejections": True, "rule_country_mismatch": True}
    proposed = current | change
    preview = preview_policy(db_session, current=current, proposed=proposed, now=now)
    found = consequences_of(
        db_session, current=current, proposed=proposed, preview=preview, now=now
    )
    assert any(phrase in c.text for c in found), found
    off = current | {"rule_country_mismatch": False}
    preview = preview_policy(db_session, current=current, proposed=off, now=now)
    found = consequences_of(db_session, current=current, proposed=off, preview=preview, now=now)
    assert any("A rule is switched off" in c.text for c in found)


def test_saving_a_shorter_retention_needs_the_box_for_exactly_this_change(admin_client, db_session):
    _seed(db_session, datetime.now(UTC))
    data = VALID | {"retention_decided_days": "5", "save": "1"}
    first = admin_client.post("/admin/settings/", data=data)
    text = first.get_data(as_text=True)
    assert first.status_code == 200
    assert "3 documents become due at the next purge" in text
    assert "Nothing is saved yet" in text
    assert _versions(db_session) == 1
    token = re.search(r'name="confirm" value="([0-9a-f]+)"', text)[1]

    # A confirmation of 5 days does not cover 4 days, nor a forged value.
    for other in ({"retention_decided_days": "4", "confirm": token}, {"confirm": "0" * 32}):
        again = admin_client.post("/admin/settings/", data=data | other)
        assert again.status_code == 200 and _versions(db_session) == 1

    saved = admin_client.post("/admin/settings/", data=data | {"confirm": token})
    assert saved.status_code == 303
    assert _versions(db_session) == 2


def test_a_harmless_change_saves_at_once(admin_client, db_session):
    response = admin_client.post("/admin/settings/", data=VALID | {"rate": "8", "save": "1"})
    assert response.status_code == 303 and _versions(db_session) == 2


def test_preview_shows_the_backtest_and_what_the_change_does(admin_client, db_session):
    now = datetime.now(UTC)
    _seed(db_session, now)
    data = VALID | {"rate": "1", "preview": "1",
                    "backtest_first": (now - timedelta(days=20)).date().isoformat(),
                    "backtest_last": now.date().isoformat()}  # fmt: skip
    text = admin_client.post("/admin/settings/", data=data).get_data(as_text=True)
    assert "Backtest on stored orders" in text
    assert "The 2 orders received from" in text
    assert "The random sample falls from 5 % to 1 %" in text
    too_long = data | {"backtest_first": (now - timedelta(days=400)).date().isoformat()}
    text = admin_client.post("/admin/settings/", data=too_long).get_data(as_text=True)
    assert "Choose a window of at most 366 days." in text
    assert "Backtest on stored orders" not in text


def test_orders_exempted_from_the_draw_are_stated(db_session):
    # What a rule that exempts orders from the draw does to the preview's loads.
    from verifier.policy.preview import Load, Preview, ReviewTime

    now = datetime.now(UTC)

    def load(forced, expected):
        return Load(rule_forced=forced, repeat_exempt=0, random_expected=expected, days=30,
                    review_minutes=3)  # fmt: skip

    def found(proposed_load):
        preview = Preview(now - timedelta(days=30), now, 30, 600, load(0, 30.0), proposed_load,
                          ReviewTime(3, False, 0))  # fmt: skip
        return consequences_of(db_session, current=DEFAULTS, proposed=DEFAULTS, preview=preview,
                               now=now)  # fmt: skip

    # 600 orders at 5 %, all in the draw now; the change exempts 100 of them.
    exempting = found(load(0, 25.0))
    assert [c.field for c in exempting] == ["exempt"]
    assert exempting[0].text.startswith("100 orders of the last 30 days would be exempt")
    # A rule that forces review takes orders out of the draw too, but exempts none.
    assert found(load(100, 25.0)) == []
