"""The admin audit page: filters, keyset paging, readable details, export; list_events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from verifier.core.audit import AuditFilters, list_events, record_event
from verifier.db import new_session

DAY = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _text(response) -> str:
    return response.get_data(as_text=True)


def _ids(page_html: str) -> list[int]:
    return [int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", page_html)]


@pytest.fixture
def trail(app, admin_user, reviewer):
    """A small, known audit trail over three days (besides the two staff.created events)."""
    session = new_session(app)
    rows = [
        ("case.opened", "system", None, "case", 7, {"order": "A-1"}, DAY),
        ("case.status_changed", "staff", reviewer.id, "case", 7, {"to": "approved"}, DAY),
        ("staff.role_changed", "staff", admin_user.id, "staff", reviewer.id, {}, DAY),
        ("api_key.created", "cli", "cli", "api_key", 1, {"name": "<b>shop</b>"}, DAY),
        ("case.opened", "system", None, "case", 8, {}, DAY + timedelta(days=1)),
        ("case.status_changed", "staff", admin_user.id, "case", 8, {}, DAY + timedelta(days=2)),
    ]
    for action, actor_type, actor_id, target_type, target_id, details, at in rows:
        record_event(
            session, action, actor_type=actor_type, actor_id=actor_id, target_type=target_type,
            target_id=target_id, details=details, now=at,
        )  # fmt: skip
    session.commit()
    session.close()


@pytest.fixture
def admin_client(client, admin_user, login):
    login(client, admin_user)
    return client


def _actions(admin_client, **query) -> list[str]:
    response = admin_client.get("/admin/audit", query_string=query)
    assert response.status_code == 200
    return re.findall(r"<td><code>([a-z_.]+)</code></td>", _text(response))


@pytest.mark.usefixtures("trail")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "case."}, ["case.status_changed", "case.opened", "case.status_changed",
                               "case.opened"]),
        ({"action": "case.op"}, ["case.opened", "case.opened"]),
        ({"actor_type": "cli", "action": "api"}, ["api_key.created"]),
        ({"actor": "reviewer@example.test"}, ["case.status_changed"]),
        ({"actor": "cli", "action": "api_key"}, ["api_key.created"]),
        ({"target_type": "case", "target_id": "8"}, ["case.status_changed", "case.opened"]),
        ({"action": "case.", "since": "2026-11-21", "until": "2026-11-21"}, ["case.opened"]),
        ({"action": "case.", "until": "2026-11-20"}, ["case.status_changed", "case.opened"]),
        ({"action": "case%"}, []),  # a LIKE wildcard is taken literally
    ],
)  # fmt: skip
def test_filters(admin_client, query, expected):
    assert _actions(admin_client, **query) == expected


@pytest.mark.usefixtures("trail")
def test_newest_first_with_staff_emails_and_escaped_readable_details(admin_client):
    page = _text(admin_client.get("/admin/audit"))
    ids = _ids(page)
    assert ids == sorted(ids, reverse=True)
    # The sign-in of the admin who is looking is the newest event.
    assert re.search(r"<code>staff\.login</code>", page)
    assert "admin@example.test" in page and "reviewer@example.test" in page
    # Details as labelled text, escaped, never as JSON.
    assert "<dt>Name</dt><dd>&lt;b&gt;shop&lt;/b&gt;</dd>" in page
    assert "<dt>To</dt><dd>approved</dd>" in page
    assert "<b>shop</b>" not in page
    assert "&#34;name&#34;" not in page and '{"' not in page


def test_keyset_paging_by_id(app, admin_client):
    session = new_session(app)
    for n in range(120):
        record_event(session, "test.event", actor_type="system", details={"n": n}, now=DAY)
    session.commit()
    session.close()

    first = _text(admin_client.get("/admin/audit", query_string={"action": "test."}))
    first_ids = _ids(first)
    assert len(first_ids) == 50 and "Newer events" not in first
    older = re.search(r'href="(/admin/audit\?[^"]*before=\d+[^"]*)"', first).group(1)
    second = _text(admin_client.get(older.replace("&amp;", "&")))
    second_ids = _ids(second)
    assert len(second_ids) == 50 and max(second_ids) < min(first_ids)
    assert "action=test." in older
    newer = re.search(r'href="(/admin/audit\?[^"]*after=\d+[^"]*)"', second).group(1)
    assert _ids(_text(admin_client.get(newer.replace("&amp;", "&")))) == first_ids
    third = re.search(r'href="(/admin/audit\?[^"]*before=\d+[^"]*)"', second).group(1)
    third_page = _text(admin_client.get(third.replace("&amp;", "&")))
    assert len(_ids(third_page)) == 20 and "Older events" not in third_page


def test_bad_filter_values_are_explained(admin_client):
    response = admin_client.get("/admin/audit", query_string={"since": "yesterday"})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in _text(response)


def test_list_events_pages_without_gaps_or_repeats(app, db_session):
    session = new_session(app)
    for n in range(7):
        record_event(session, "x.step", actor_type="system", details={"n": n}, now=DAY)
    record_event(session, "y.other", actor_type="system", now=DAY)
    session.commit()
    session.close()

    filters = AuditFilters(action_prefix="x.")
    seen, before = [], None
    while True:
        page = list_events(db_session, filters, before_id=before, limit=3)
        seen += [e.details["n"] for e in page.events]
        if page.older_before_id is None:
            break
        before = page.older_before_id
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    last = list_events(db_session, filters, before_id=before, limit=3)
    assert last.newer_after_id is not None
    back = list_events(db_session, filters, after_id=last.newer_after_id, limit=3)
    assert [e.details["n"] for e in back.events] == [3, 2, 1]


@pytest.mark.usefixtures("trail")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_downloads_the_chosen_days_with_their_hashes_and_is_audited(
    app, admin_client, db_session, fmt
):
    import csv
    import io
    import json

    page = _text(admin_client.get("/admin/audit", query_string={"since": "2026-11-21"}))
    assert f"/admin/audit/export?format={fmt}&amp;since=2026-11-21" in page
    response = admin_client.get(
        "/admin/audit/export",
        query_string={"format": fmt, "since": "2026-11-21", "until": "2026-11-21"},
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body)))
    else:
        rows = [json.loads(line) for line in body.splitlines()]
    assert [(r["action"], str(r["target_id"])) for r in rows] == [("case.opened", "8")]
    assert len(rows[0]["hash"]) == 64 and len(rows[0]["prev_hash"]) == 64
    db_session.rollback()
    from sqlalchemy import select

    from verifier.models import AuditEvent

    exported = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit.exported")
    ).all()
    assert [e.details["format"] for e in exported] == [fmt]


def test_export_refuses_an_unknown_format(admin_client):
    assert admin_client.get("/admin/audit/export?format=xml").status_code == 422
