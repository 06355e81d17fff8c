"""The settings pages over HTTP: access, every validation message, preview, save, history."""

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from tests.auth_helpers import csrf_admin_client, csrf_token
from verifier.core.policies import current_policy
from verifier.models import SamplingPolicy

VALID = {
    "base_version": "1", "rate": "5", "amount_threshold": "", "document_requirement": "card_or_id",
    "repeat_exemption_days": "", "link_lifetime_days": "7", "reminder_before_hours": "48",
    "review_target_hours": "24", "lease_minutes": "15", "max_resubmissions": "3",
    "max_uploads_per_case": "40", "quality_sample_percent": "0", "retention_decided_days": "30",
    "retention_expired_days": "7", "anonymise_after_days": "", "reason": "Testing",
}  # fmt: skip


def _versions(db_session) -> int:
    db_session.rollback()
    return db_session.scalar(select(func.count()).select_from(SamplingPolicy))


@pytest.fixture
def admin_client(client, admin_user, login, db_session):
    current_policy(db_session)  # version 1, as the first order or save would create it
    db_session.commit()
    login(client, admin_user)
    return client


@pytest.mark.parametrize(
    ("path", "anonymous", "reviewer_status", "admin_status"),
    [
        ("/admin/settings/", 302, 403, 200),
        ("/admin/settings/history", 302, 403, 200),
        ("/admin/dashboard/", 302, 403, 200),
        ("/admin/dashboard/daily.csv", 302, 403, 200),
        ("/review/quality/", 302, 200, 200),
    ],
)
def test_access(app, reviewer, admin_user, login, path, anonymous, reviewer_status, admin_status):
    anonymous_response = app.test_client().get(path)
    assert anonymous_response.status_code == anonymous
    assert "/staff/login" in anonymous_response.headers["Location"]
    for user, expected in ((reviewer, reviewer_status), (admin_user, admin_status)):
        client = app.test_client()
        login(client, user)
        assert client.get(path).status_code == expected, (user.role, path)


def test_post_is_refused_to_a_reviewer(client, reviewer, login, db_session):
    login(client, reviewer)
    assert client.post("/admin/settings/", data=VALID | {"save": "1"}).status_code == 403
    assert _versions(db_session) <= 1


class _Inputs(HTMLParser):
    """The values a browser would submit from the settings form."""

    def __init__(self):
        super().__init__()
        self.data = {}
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") not in ("submit",):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.data[attrs["name"]] = attrs.get("value", "")
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.data[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def test_form_shows_the_policy_in_force_and_saving_it_unchanged_saves_nothing(
    admin_client, db_session
):
    page = admin_client.get("/admin/settings/")
    assert page.status_code == 200
    parser = _Inputs()
    parser.feed(page.get_data(as_text=True))
    assert parser.data["rate"] == "5"
    assert parser.data["document_requirement"] == "card_or_id"
    assert "amount_rule" not in parser.data
    response = admin_client.post(
        "/admin/settings/", data=parser.data | {"reason": "no change", "save": "1"}
    )
    assert response.status_code == 303
    assert "Nothing changed" in admin_client.get("/admin/settings/").get_data(as_text=True)
    assert _versions(db_session) == 1


def test_saving_makes_a_version_that_the_history_shows(admin_client, admin_user, db_session):
    data = VALID | {"rate": "7.5", "amount_rule": "y", "amount_threshold": "1,000",
                    "anonymise": "y", "anonymise_after_days": "90",
                    "reason": "Fraud wave in <November>", "save": "1"}  # fmt: skip
    # Anonymising is destructive: the first save states what it does and saves nothing.
    response = admin_client.post("/admin/settings/", data=data)
    assert response.status_code == 200 and _versions(db_session) == 1
    confirm = re.search(r'name="confirm" value="([0-9a-f]+)"', response.get_data(as_text=True))
    response = admin_client.post("/admin/settings/", data=data | {"confirm": confirm[1]})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/settings/history")

    db_session.rollback()
    policy = current_policy(db_session)
    assert (policy.version, policy.rate_bp, policy.amount_threshold_minor) == (2, 750, 100_000)
    assert policy.settings == {"anonymise_after_days": 90}
    assert (policy.created_by_id, policy.created_by_label) == (admin_user.id, admin_user.email)

    history = admin_client.get("/admin/settings/history").get_data(as_text=True)
    assert "Saved as policy version 2" in history
    assert "Fraud wave in &lt;November&gt;" in history
    assert "admin@example.test" in history
    assert re.search(r"Random sampling rate</th><td class=\"old\">5 %</td><td class=\"new\">"
                     r"7.5 %</td>", history)  # fmt: skip
    assert "orders of 1,000.00 or more" in history
    assert "after 90 days" in history


def test_preview_shows_the_load_and_saves_nothing(admin_client, db_session):
    response = admin_client.post(
        "/admin/settings/", data=VALID | {"rate": "20", "reason": "", "preview": "1"}
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Preview: nothing is saved yet" in text
    assert "Random sampling rate</strong>: 5 % → 20 %" in text
    assert "3 minutes per case, a stated default" in text
    assert 'value="20"' in text  # the form keeps what was typed
    assert _versions(db_session) == 1


def test_an_edit_from_a_stale_page_that_clashes_is_refused(admin_client, db_session):
    admin_client.post("/admin/settings/", data=VALID | {"rate": "8", "save": "1"})
    response = admin_client.post("/admin/settings/", data=VALID | {"rate": "9", "save": "1"})
    assert response.status_code == 409
    assert "Someone else changed the random sampling rate" in response.get_data(as_text=True)
    assert _versions(db_session) == 2


# (field, value, extra form data, the message the admin reads)
MESSAGES = [
    ("rate", "abc", {}, "Give a percentage from 0 to 100 with at most two decimals."),
    ("rate", "100.01", {}, "Give a percentage from 0 to 100 with at most two decimals."),
    ("rate", "2.555", {}, "Give a percentage from 0 to 100 with at most two decimals."),
    ("amount_threshold", "lots", {"amount_rule": "y"}, "Give an amount such as 500 or 1,250.00."),
    ("amount_threshold", "0", {"amount_rule": "y"},
     "Give an amount above 0 and at most 1,000,000,000.00."),
    ("repeat_exemption_days", "0", {"repeat_exemption": "y"},
     "Give a whole number of days from 1 to 3650."),
    ("document_requirement", "passport", {}, "Choose which documents customers must send."),
    ("link_lifetime_days", "61", {}, "Give a whole number of days from 1 to 60."),
    ("link_lifetime_days", "7.5", {}, "Give a whole number of days from 1 to 60."),
    ("reminder_before_hours", "721", {}, "Give a whole number of hours from 0 to 720."),
    ("reminder_before_hours", "24", {"link_lifetime_days": "1"},
     "The reminder must come before the link expires: use fewer than 24 hours, or 0 for no "
     "reminder."),
    ("review_target_hours", "0", {}, "Give a whole number of hours from 1 to 336."),
    ("lease_minutes", "-5", {}, "Give a whole number of minutes from 1 to 240."),
    ("max_resubmissions", "11", {}, "Give a whole number from 0 to 10."),
    ("max_uploads_per_case", "3", {}, "Give a whole number from 4 to 200."),
    ("quality_sample_percent", "101", {}, "Give a whole percentage from 0 to 100."),
    ("retention_decided_days", "", {}, "Give a whole number of days from 1 to 3650."),
    ("retention_expired_days", "x", {}, "Give a whole number of days from 1 to 3650."),
    ("anonymise_after_days", "29", {"anonymise": "y"},
     "Give a whole number of days from 30 to 3650."),
    ("reason", "", {}, "Say why you are changing the settings; it is kept in the history."),
    ("reason", "x" * 501, {}, "Use at most 500 characters."),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "extra", "message"), MESSAGES)
def test_every_setting_says_what_is_wrong(admin_client, db_session, field, value, extra, message):
    data = VALID | extra | {field: value, "save": "1"}
    response = admin_client.post("/admin/settings/", data=data)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in text
    assert f'id="{field}-error"' in text  # tied to its field by aria-describedby
    assert _versions(db_session) == 1


@pytest.mark.parametrize(
    ("switch_off", "field", "value"),
    [("amount_rule", "amount_threshold", "lots"),
     ("repeat_exemption", "repeat_exemption_days", "0"),
     ("anonymise", "anonymise_after_days", "5")],
)  # fmt: skip
def test_a_number_behind_a_switch_that_is_off_is_ignored(admin_client, db_session, switch_off,
                                                         field, value):  # fmt: skip
    response = admin_client.post(
        "/admin/settings/", data=VALID | {field: value, "rate": "6", "save": "1"}
    )
    assert response.status_code == 303
    db_session.rollback()
    policy = current_policy(db_session)
    assert policy.version == 2 and policy.amount_threshold_minor is None
    assert "repeat_exemption_days" not in policy.settings


def test_csrf_token_is_required_when_csrf_is_on(tmp_path, database_url, admin_user):
    app, client = csrf_admin_client(tmp_path, database_url, admin_user)
    refused = client.post("/admin/settings/", data=VALID | {"rate": "9", "save": "1"})
    assert refused.status_code == 400
    page = client.get("/admin/settings/").get_data(as_text=True)
    token = csrf_token(page)
    accepted = client.post(
        "/admin/settings/", data=VALID | {"rate": "9", "save": "1", "csrf_token": token}
    )
    assert accepted.status_code == 303
    app.extensions["verifier.engine"].dispose()
