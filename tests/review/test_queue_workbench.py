"""The queue to work from: search anywhere in number, email or name, sorts, filters,
four-eyes as its own state, saved filters, hints and the case page's linked history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.review_helpers import NOW, make_case
from verifier.models import StaffUser


def _rows(body: str) -> list[str]:
    import re

    return re.findall(r'aria-label="Select order ([^"]+)"', body)


def test_search_finds_any_part_of_number_email_or_name(client, reviewer, login, db_session):
    make_case(db_session, "WEB-0010212", email="ann@shop.test", name="Ann Murphy")
    make_case(db_session, "WEB-0020000", email="bob.k@mail.test", name="Bob Kim")
    db_session.commit()
    login(client, reviewer)
    for term, expected in (("murphy", ["WEB-0010212"]), ("10212", ["WEB-0010212"]),
                           ("K@MAIL", ["WEB-0020000"]), ("WEB-00", ["WEB-0010212", "WEB-0020000"]),
                           ("zzz", [])):  # fmt: skip
        body = client.get("/review/", query_string={"q": term, "state": "all"}).get_data(True)
        assert sorted(_rows(body)) == expected, term


def test_a_whole_email_finds_every_email_that_contains_it(client, reviewer, login, db_session):
    """A term with an "@" asks the index for its local part, then checks the whole term."""
    make_case(db_session, "E-1", email="jo.murphy@mail.test")
    make_case(db_session, "E-2", email="x.jo.murphy@mail.test.uk")
    make_case(db_session, "E-3", email="jo.murphy@other.test")
    make_case(db_session, "E-4", email="jo_murphy@mail.test")  # "_" is no wildcard
    db_session.commit()
    login(client, reviewer)
    for term, expected in (("JO.MURPHY@MAIL.TEST", ["E-1", "E-2"]),
                           ("jo.murphy@", ["E-1", "E-2", "E-3"]),
                           ("y@mail.test", ["E-1", "E-2", "E-4"]), ("o.murphy@o", ["E-3"]),
                           ("jo%murphy@mail", [])):  # fmt: skip
        body = client.get("/review/", query_string={"q": term, "state": "all"}).get_data(True)
        assert sorted(_rows(body)) == expected, term


def test_sorts_and_filters(client, reviewer, login, db_session):
    old = make_case(db_session, "S-OLD", amount_minor=500, created_at=NOW - timedelta(days=3))
    make_case(db_session, "S-BIG", amount_minor=90000, created_at=NOW - timedelta(hours=5))
    make_case(db_session, "S-NEW", amount_minor=2000,
              created_at=datetime.now(UTC) - timedelta(minutes=40),
              reason="amount_threshold")  # fmt: skip
    me = db_session.get(StaffUser, reviewer.id)
    old.claimed_by_id, old.lease_expires_at = me.id, NOW + timedelta(days=3650)
    db_session.commit()
    login(client, reviewer)

    def rows(**args):
        return _rows(client.get("/review/", query_string=args).get_data(True))

    assert rows() == ["S-OLD", "S-BIG", "S-NEW"]
    assert rows(sort="amount") == ["S-BIG", "S-NEW", "S-OLD"]
    assert rows(sort="newest") == ["S-NEW", "S-BIG", "S-OLD"]
    assert rows(amount_min="10", amount_max="100") == ["S-NEW"]
    assert rows(reason="amount_threshold") == ["S-NEW"]
    assert rows(mine="y") == ["S-OLD"]
    assert rows(late="y") == ["S-OLD", "S-BIG"]  # in review longer than the 4 h target
    page = client.get("/review/", query_string={"amount_min": "x"})
    assert page.status_code == 200 and "Enter an amount" in page.get_data(True)


def test_a_pending_four_eyes_rejection_is_its_own_state(client, reviewer, login, db_session):
    proposed = make_case(db_session, "FE-1")
    make_case(db_session, "FE-2", created_at=NOW - timedelta(hours=1))
    proposed.proposed_rejection_by_id = reviewer.id
    db_session.commit()
    login(client, reviewer)
    body = client.get("/review/", query_string={"state": "four_eyes"}).get_data(True)
    assert _rows(body) == ["FE-1"]
    assert "state-four_eyes" in client.get("/review/").get_data(True)


def test_saved_filters_are_per_reviewer(client, reviewer, second_reviewer, login, db_session):
    login(client, reviewer)
    query = "sort=amount&amount_min=100&evil=1"
    answer = client.post("/review/filters/", data={"name": "Big ones", "query": query})
    assert answer.status_code == 303 and "sort=amount" in answer.headers["Location"]
    body = client.get("/review/").get_data(True)
    assert "Big ones" in body and "amount_min=100" in body and "evil" not in body
    other = client.application.test_client()
    login(other, second_reviewer)
    assert "Big ones" not in other.get("/review/").get_data(True)
    assert client.post("/review/filters/", data={"name": " ", "query": ""}).status_code == 303
    assert "Name the filter." in client.get("/review/").get_data(True)


def test_queue_hint_and_case_page_history(client, reviewer, login, db_session):
    case = make_case(db_session, "H-1", phone="+44 20 7946 0000")
    make_case(db_session, "H-0", status="rejected", email="old@example.com",
              created_at=NOW - timedelta(days=30))  # fmt: skip
    db_session.commit()
    login(client, reviewer)
    assert "1 earlier rejection with this card" in client.get("/review/").get_data(True)
    page = client.get(f"/review/cases/{case.id}").get_data(True)
    assert "Linked history" in page and "H-0" in page and "Same card:" in page


def test_the_second_review_tab_reads_only_its_own_cases(client, reviewer, login, db_session):
    """The second-review tab and its count hold the in-review cases with a proposed rejection,
    and on SQLite read them through their partial index: the planner's own choice walked
    every in-review case (25 ms at 50,000 open cases)."""
    from sqlalchemy import event

    proposed = make_case(db_session, "FE-A", created_at=NOW - timedelta(hours=2))
    make_case(db_session, "FE-B")
    ended = make_case(db_session, "FE-C", status="rejected")
    later = make_case(db_session, "FE-D")
    for case in (proposed, ended, later):
        case.proposed_rejection_by_id = reviewer.id
    db_session.commit()
    engine = client.application.extensions["verifier.engine"]
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        if "proposed_rejection_by_id IS NOT NULL" in statement:
            seen.append((statement, parameters))

    login(client, reviewer)
    event.listen(engine, "before_cursor_execute", keep)
    try:
        body = client.get("/review/", query_string={"state": "four_eyes"}).get_data(True)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert _rows(body) == ["FE-A", "FE-D"]
    assert re.search(r"Second review\s*<span class=\"count\">2</span>", body), "its count"
    assert len(seen) == 2  # the tab's rows and its count
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            for statement, parameters in seen:
                explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plan = " ".join(row[-1] for row in explained)
                assert "USING INDEX ix_verification_cases_four_eyes" in plan, plan
                assert "status=?" not in plan, plan
