"""The rules pages over HTTP: add, edit, reorder, delete, rates; errors on their fields; CSRF."""

import re

import pytest
from sqlalchemy import func, select

from tests.auth_helpers import csrf_admin_client, csrf_token
from verifier.core.policies import current_policy
from verifier.models import SamplingPolicy

RULE = {"base_version": "1", "name": "Big EUR", "action": "review", "amount_op": ">=",
        "amount": "500", "amount_currency": "EUR"}  # fmt: skip


@pytest.fixture
def admin_client(client, admin_user, login, db_session):
    current_policy(db_session)
    db_session.commit()
    login(client, admin_user)
    return client


def _current(db_session):
    db_session.rollback()
    return current_policy(db_session)


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([\w-]+)-error">([^<]*)</p>', html))


def test_adding_a_rule_saves_a_version_and_lists_it(admin_client, db_session):
    page = admin_client.get("/admin/settings/rules/")
    assert page.status_code == 200 and "No rules yet" in page.get_data(as_text=True)
    form = admin_client.get("/admin/settings/rules/new")
    assert form.status_code == 200
    saved = admin_client.post("/admin/settings/rules/new", data=RULE | {
        "velocity_key": "email", "velocity_hours": "24", "velocity_at_least": "3",
        "email_domain_op": "in", "email_domain": "example.com, shop.test"})  # fmt: skip
    assert saved.status_code == 303
    policy = _current(db_session)
    assert policy.version == 2
    assert policy.rules == [{"name": "Big EUR", "action": "review", "conditions": [
        {"type": "amount", "op": ">=", "amount": "500.00", "currency": "EUR"},
        {"type": "email_domain", "op": "in", "values": ["example.com", "shop.test"]},
        {"type": "velocity", "key": "email", "hours": 24, "at_least": 3}]}]  # fmt: skip
    assert policy.reason == "Rule 'Big EUR' added"
    listing = admin_client.get("/admin/settings/rules/").get_data(as_text=True)
    assert "Big EUR" in listing and "amount &gt;= 500.00 EUR" in listing
    assert "at least 3 orders with the same email in 24 hours" in listing
    history = admin_client.get("/admin/settings/history").get_data(as_text=True)
    assert "Big EUR (force review: amount &gt;= 500.00 EUR" in history


@pytest.mark.parametrize(
    ("changes", "field", "phrase"),
    [
        ({"name": ""}, "name", "Name the rule"),
        ({"name": "random"}, "name", "Verifier uses itself"),
        ({"action": "block"}, "action", "Choose force review"),
        ({"amount": "12.345"}, "amount", "Give an amount"),
        ({"amount_currency": "EURO"}, "amount", "three-letter code"),
        ({"billing_country": "GBR"}, "billing_country", "two-letter country code"),
        ({"email": "not-an-address"}, "email", "is not an email address"),
        ({"card": "visa"}, "card", "brand and last four"),
        ({"address": "1 High Street"}, "address", "street, postcode, country"),
        ({"velocity_key": "email", "velocity_hours": "x", "velocity_at_least": "3"},
         "velocity_hours", "whole number of hours"),
        ({"velocity_key": "email", "velocity_hours": "24", "velocity_at_least": "1"},
         "velocity_hours", "from 2 to"),
    ],
)  # fmt: skip
def test_each_mistake_is_shown_on_its_field(admin_client, db_session, changes, field, phrase):
    response = admin_client.post("/admin/settings/rules/new", data=RULE | changes)
    assert response.status_code == 422
    errors = _errors(response.get_data(as_text=True))
    assert phrase in errors.get(field, ""), errors
    assert _current(db_session).version == 1


def test_a_rule_needs_a_condition(admin_client, db_session):
    response = admin_client.post("/admin/settings/rules/new", data={
        "base_version": "1", "name": "Empty", "action": "tag"})  # fmt: skip
    assert response.status_code == 422
    assert "at least one condition" in response.get_data(as_text=True)


def _add(client, name, **extra):
    response = client.post("/admin/settings/rules/new", data=RULE | {"name": name} | extra)
    assert response.status_code == 303, _errors(response.get_data(as_text=True))


def test_edit_move_and_delete(admin_client, db_session):
    _add(admin_client, "First")
    _add(admin_client, "Second", action="exempt", base_version="2")
    form = admin_client.get("/admin/settings/rules/2").get_data(as_text=True)
    assert 'value="Second"' in form and 'value="500.00"' in form
    edited = admin_client.post("/admin/settings/rules/2", data=RULE | {
        "base_version": "3", "name": "Second", "action": "tag", "amount": "900"})  # fmt: skip
    assert edited.status_code == 303
    assert _current(db_session).rules[1]["action"] == "tag"
    moved = admin_client.post("/admin/settings/rules/2/move",
                              data={"base_version": "4", "direction": "up"})  # fmt: skip
    assert moved.status_code == 303
    policy = _current(db_session)
    assert [r["name"] for r in policy.rules] == ["Second", "First"]
    assert policy.reason == "Rule 'Second' moved up"
    deleted = admin_client.post("/admin/settings/rules/1/delete", data={"base_version": "5"})
    assert deleted.status_code == 303
    assert [r["name"] for r in _current(db_session).rules] == ["First"]
    assert admin_client.get("/admin/settings/rules/7").status_code == 404


def test_an_edit_from_an_old_page_does_not_undo_someone_elses(admin_client, db_session):
    _add(admin_client, "First")
    stale = admin_client.post("/admin/settings/rules/new", data=RULE | {"name": "Other"})
    assert stale.status_code == 409
    assert "Someone else changed the rules" in stale.get_data(as_text=True)
    gone = admin_client.post("/admin/settings/rules/1/delete", data={"base_version": "1"})
    assert gone.status_code == 303
    assert [r["name"] for r in _current(db_session).rules] == ["First"]


def test_rates_are_saved_and_checked(admin_client, db_session):
    bad = admin_client.post("/admin/settings/rules/rates", data={
        "base_version": "1", "base": "EUR", "rates": "USD = abc\nGBP 1.2"})  # fmt: skip
    assert bad.status_code == 422
    assert "write it as USD = 0.92" in _errors(bad.get_data(as_text=True))["rates"]
    good = admin_client.post("/admin/settings/rules/rates", data={
        "base_version": "1", "base": "eur", "rates": "usd = 0.92\nGBP=1.17"})  # fmt: skip
    assert good.status_code == 303
    assert _current(db_session).currency_rates == {
        "base": "EUR", "rates": {"GBP": "1.17", "USD": "0.92"}}  # fmt: skip
    page = admin_client.get("/admin/settings/rules/").get_data(as_text=True)
    assert "USD = 0.92" in page


def test_reviewers_are_refused(client, reviewer, login):
    login(client, reviewer)
    assert client.get("/admin/settings/rules/").status_code == 403
    assert client.post("/admin/settings/rules/new", data=RULE).status_code == 403


def test_csrf_token_is_required_when_csrf_is_on(tmp_path, database_url, admin_user, db_session):
    app, client = csrf_admin_client(tmp_path, database_url, admin_user)
    assert client.post("/admin/settings/rules/new", data=RULE).status_code == 400
    page = client.get("/admin/settings/rules/new").get_data(as_text=True)
    token = csrf_token(page)
    accepted = client.post("/admin/settings/rules/new", data=RULE | {"csrf_token": token})
    assert accepted.status_code == 303
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(SamplingPolicy)) == 2
    app.extensions["verifier.engine"].dispose()
