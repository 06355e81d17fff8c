"""Passkeys on the server side: options, refusals of bad or foreign answers, removal, and the
second sign-in step. A real ceremony runs in Chromium (tests/browser/test_passkeys_browser.py)."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from tests.auth_helpers import actions, events
from tests.conftest import STAFF_PASSWORDS
from verifier.web.passkeys import StaffPasskey

BASE = "http://localhost"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def stored_key(app, reviewer, db_session):
    """A passkey row for the reviewer (a made-up credential: enough to reach the checks)."""
    key = StaffPasskey(
        user_id=reviewer.id, credential_id=_b64(b"credential-one"), public_key=_b64(b"not-a-key"),
        sign_count=0, name="Laptop",
    )  # fmt: skip
    db_session.add(key)
    db_session.commit()
    return key


def _client(app):
    client = app.test_client()
    client.environ_base["HTTP_HOST"] = "localhost"
    return client


def _password_step(client, user):
    return client.post(
        "/staff/login", data={"email": user.email, "password": STAFF_PASSWORDS[user.email]}
    )


def _fake_assertion(raw_id: bytes) -> dict:
    client_data = json.dumps(
        {"type": "webauthn.get", "challenge": _b64(b"x" * 32), "origin": BASE}
    ).encode()
    return {
        "id": _b64(raw_id), "rawId": _b64(raw_id), "type": "public-key",
        "response": {"clientDataJSON": _b64(client_data), "authenticatorData": _b64(b"\0" * 37),
                     "signature": _b64(b"sig")},
        "clientExtensionResults": {},
    }  # fmt: skip


def test_a_passkey_makes_sign_in_ask_for_the_second_step(app, reviewer, stored_key):
    client = _client(app)
    response = _password_step(client, reviewer)
    assert response.headers["Location"].endswith("/staff/login/code")
    page = client.get("/staff/login/code").get_data(as_text=True)
    assert "Sign in with a passkey" in page and "Six-digit code" not in page


def test_sign_in_options_name_only_the_users_own_keys(app, reviewer, stored_key):
    client = _client(app)
    _password_step(client, reviewer)
    options = client.post("/staff/login/passkey/options").get_json()
    assert options["rpId"] == "localhost"
    assert [c["id"] for c in options["allowCredentials"]] == [stored_key.credential_id]
    assert len(options["challenge"]) >= 43


def test_a_forged_answer_is_refused_and_counted(app, reviewer, stored_key, db_session):
    client = _client(app)
    _password_step(client, reviewer)
    client.post("/staff/login/passkey/options")
    refused = client.post("/staff/login/passkey", json=_fake_assertion(b"credential-one"))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "That passkey could not be checked. Try again."}
    (failure,) = events(db_session, "staff.login_failed")
    assert failure.details["reason"] == "bad_passkey"
    with client.session_transaction() as flask_session:
        assert "_user_id" not in flask_session and "staff_pending" in flask_session


def test_an_answer_needs_a_fresh_challenge_each_time(app, reviewer, stored_key):
    client = _client(app)
    _password_step(client, reviewer)
    # No options asked for: there is no challenge to answer.
    refused = client.post("/staff/login/passkey", json=_fake_assertion(b"credential-one"))
    assert refused.status_code == 401 and "expired" in refused.get_json()["error"]


def test_someone_elses_passkey_is_not_accepted(app, reviewer, second_reviewer, db_session):
    db_session.add(
        StaffPasskey(user_id=second_reviewer.id, credential_id=_b64(b"theirs"),
                     public_key=_b64(b"k"), sign_count=0, name="Theirs")
    )  # fmt: skip
    db_session.add(
        StaffPasskey(user_id=reviewer.id, credential_id=_b64(b"mine"),
                     public_key=_b64(b"k"), sign_count=0, name="Mine")
    )  # fmt: skip
    db_session.commit()
    client = _client(app)
    _password_step(client, reviewer)
    client.post("/staff/login/passkey/options")
    refused = client.post("/staff/login/passkey", json=_fake_assertion(b"theirs"))
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "That passkey is not registered to your account."


def test_garbage_is_a_clear_refusal_not_a_crash(app, reviewer, stored_key):
    client = _client(app)
    _password_step(client, reviewer)
    client.post("/staff/login/passkey/options")
    for body in ({}, {"rawId": 5}, "not json"):
        response = client.post("/staff/login/passkey", json=body)
        assert response.status_code == 401 and response.get_json()["error"]
        client.post("/staff/login/passkey/options")


def test_registration_options_and_refusals(app, reviewer, login, db_session):
    client = _client(app)
    login(client, reviewer)
    options = client.post("/staff/passkeys/options").get_json()
    assert options["rp"]["id"] == "localhost" and options["user"]["name"] == reviewer.email
    assert client.post("/staff/passkeys", json={}).status_code == 400
    unnamed = client.post("/staff/passkeys", json={"credential": {}, "name": " "})
    assert unnamed.status_code == 422 and unnamed.get_json()["field"] == "name"
    bad = client.post("/staff/passkeys", json={"credential": {"id": "x"}, "name": "Laptop"})
    assert bad.status_code == 422
    assert db_session.scalars(select(StaffPasskey)).all() == []


def test_remove_own_passkey_but_not_someone_elses(
    app, reviewer, second_reviewer, login, db_session
):
    theirs = StaffPasskey(user_id=second_reviewer.id, credential_id=_b64(b"theirs"),
                          public_key=_b64(b"k"), sign_count=0, name="Theirs")  # fmt: skip
    db_session.add(theirs)
    db_session.commit()
    client = _client(app)
    login(client, reviewer)
    mine = StaffPasskey(user_id=reviewer.id, credential_id=_b64(b"mine"),
                        public_key=_b64(b"k"), sign_count=0, name="Mine")  # fmt: skip
    db_session.add(mine)
    db_session.commit()
    assert client.post(f"/staff/passkeys/{theirs.id}/remove").status_code == 404
    page = client.get("/staff/two-factor").get_data(as_text=True)
    assert "Mine" in page and "Theirs" not in page
    response = client.post(f"/staff/passkeys/{mine.id}/remove")
    assert response.status_code == 302
    assert "Passkey \u201cMine\u201d removed." in client.get("/staff/two-factor").get_data(
        as_text=True
    )
    db_session.rollback()
    assert [k.name for k in db_session.scalars(select(StaffPasskey))] == ["Theirs"]
    assert "staff.passkey_removed" in actions(db_session)


def test_admin_reset_removes_passkeys_too(app, reviewer, admin_user, stored_key, login, db_session):
    admin = app.test_client()
    login(admin, admin_user)
    assert ">passkey<" in admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post(f"/admin/staff/{reviewer.id}/reset-two-factor")
    assert response.status_code == 302
    db_session.rollback()
    assert db_session.scalars(select(StaffPasskey)).all() == []
    (event,) = events(db_session, "staff.totp_reset")
    assert event.details["passkeys"] == 1
    # Without a second factor the reviewer signs in with the password alone again.
    client = _client(app)
    assert _password_step(client, reviewer).headers["Location"].endswith("/review/")
