"""The dashboard page and its CSV export over HTTP."""

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from tests.stats_helpers import add_order
from verifier.core.sampling import RULE_COUNTRY
from verifier.models import APPROVED, DECLINED, IN_REVIEW, REJECTED

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def admin_client(client, admin_user, login):
    login(client, admin_user)
    return client


def _seed(db_session, random_ended: int) -> datetime:
    now = datetime.now(UTC)
    for i in range(random_ended):
        status = REJECTED if i % 10 == 0 else APPROVED
        decided = now - timedelta(days=3, hours=i % 24)
        add_order(db_session, at=decided - timedelta(hours=6), reason="random", draw=10,
                  status=status, submitted_at=decided - timedelta(hours=2),
                  decided_at=decided)  # fmt: skip
    add_order(db_session, at=now - timedelta(days=2), reason="random", draw=10, status=DECLINED,
              submitted_at=now - timedelta(days=1))  # fmt: skip
    add_order(db_session, at=now - timedelta(hours=5), reason="random", draw=10, status=IN_REVIEW,
              submitted_at=now - timedelta(hours=4))  # fmt: skip
    for _ in range(4):
        add_order(db_session, at=now - timedelta(days=4), reason=RULE_COUNTRY, draw=9_999,
                  status=REJECTED, decided_at=now - timedelta(days=3))  # fmt: skip
    for _ in range(20):
        add_order(db_session, at=now - timedelta(days=1))
    db_session.commit()
    return now


def test_dashboard_renders_accessible_charts_with_their_numbers(admin_client, db_session):
    _seed(db_session, random_ended=40)
    response = admin_client.get("/admin/dashboard/")
    assert response.status_code == 200
    text = response.get_data(as_text=True)

    svgs = re.findall(r"<svg .*?</svg>", text, flags=re.S)
    assert len(svgs) >= 6
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed XML
        assert root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title.text and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    # Each chart has a table of its numbers beside it (the two daily charts share one).
    assert text.count("<table") >= 5

    # The estimate, in words: 41 random cases ended (4 rejected, 1 declined).
    text = " ".join(text.split())
    assert "Of the 41 randomly sampled orders decided in this period, 4 were rejected" in text
    assert "1 more were never verified" in text
    assert "95 % confidence" in text
    assert "1 randomly sampled case still open" in text
    assert "4 rule-forced cases ended in this period, 4 rejected" in text
    # Decision times come from buckets, and the page says how close they are.
    assert "Medians and 90th percentiles are approximate (within ±5 %)" in text


def test_dashboard_says_when_the_sample_is_too_small(admin_client, db_session):
    _seed(db_session, random_ended=10)
    text = " ".join(admin_client.get("/admin/dashboard/").get_data(as_text=True).split())
    assert "Too few to say: only 11 randomly sampled orders" in text
    assert "chart-estimate" not in text


def test_dashboard_period_is_checked(admin_client):
    response = admin_client.get("/admin/dashboard/?first=2026-05-10&last=2026-05-01")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "The end of the period must not come before its start." in text
    assert 'aria-describedby="last-error"' in text
    too_long = admin_client.get("/admin/dashboard/?first=2024-01-01&last=2026-01-01")
    assert "Choose at most 366 days." in too_long.get_data(as_text=True)


def test_csv_export_of_the_daily_numbers(admin_client, db_session):
    now = _seed(db_session, random_ended=3)
    first = (now - timedelta(days=6)).date()
    last = now.date()
    response = admin_client.get(f"/admin/dashboard/daily.csv?first={first}&last={last}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="verifier-daily-{first}-to-{last}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["date"] for r in rows] == [str(first + timedelta(days=i)) for i in range(7)]
    assert sum(int(r["received"]) for r in rows) == 3 + 1 + 1 + 4 + 20
    assert sum(int(r["flagged_rule"]) for r in rows) == 4
    assert sum(int(r["rejected"]) for r in rows) == 1 + 4


def test_dashboard_shows_false_approvals(admin_client, db_session):
    from verifier.core.outcomes import OrderOutcome

    now = datetime.now(UTC)
    approved = add_order(db_session, at=now - timedelta(days=3), reason="random", draw=10,
                         status=APPROVED, decided_at=now - timedelta(days=2))  # fmt: skip
    rejected = add_order(db_session, at=now - timedelta(days=3), reason="random", draw=10,
                         status=REJECTED, decided_at=now - timedelta(days=2))  # fmt: skip
    cleared = add_order(db_session, at=now - timedelta(days=3))
    fine = add_order(db_session, at=now - timedelta(days=3), reason="random", draw=10,
                     status=APPROVED, decided_at=now - timedelta(days=2))  # fmt: skip
    db_session.flush()
    for order, outcome in [(approved, "chargeback"), (approved, "confirmed_fraud"),
                           (rejected, "confirmed_fraud"), (cleared, "chargeback"),
                           (fine, "delivered_ok")]:  # fmt: skip
        db_session.add(OrderOutcome(order_id=order.id, outcome=outcome, recorded_at=now))
    db_session.commit()
    text = admin_client.get("/admin/dashboard/").get_data(as_text=True)
    assert "reported 3 as charged back or confirmed fraud" in text
    section = text[text.index('id="outcomes-title"') :]
    assert re.search(r"False approvals: approved by a reviewer</th><td>1<", section)
    assert re.search(r"Not sampled \(cleared without review\)</th><td>1<", section)
    assert re.search(r"Stopped: rejected, declined or expired</th><td>1<", section)
