"""TOTP secrets at rest: sealed under the master key, bound to their user, open after rotation."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from tests.auth_helpers import events, fresh_user, make_app
from tests.conftest import STAFF_PASSWORDS
from verifier.config import key_id_for
from verifier.staff import totp
from verifier.staff.logins import CODE_UNCHECKABLE
from verifier.vault import secretbox
from verifier.vault.storage import Keyring


def _keyring(*keys: bytes) -> Keyring:
    """A keyring whose current key is the first of `keys`."""
    ring = {key_id_for(key): key for key in keys}
    return Keyring(key_id_for(keys[0]), ring)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _store_secret(db_session, user_id: int, sealed: str) -> None:
    user = fresh_user(db_session, user_id)
    user.totp_secret = sealed
    db_session.commit()


def _password_step(client, user) -> None:
    response = client.post(
        "/staff/login", data={"email": user.email, "password": STAFF_PASSWORDS[user.email]}
    )
    assert response.headers["Location"] == "/staff/login/code"


# --- the sealed format ------------------------------------------------------------------------


def test_a_sealed_secret_opens_only_for_its_own_row_and_purpose():
    key = secrets.token_bytes(32)
    ring = _keyring(key)
    secret = totp.new_secret()
    sealed = totp.seal_secret(ring, 7, secret)
    version, key_id, payload = sealed.split(":")
    assert (version, key_id) == ("v1", key_id_for(key))
    assert secret not in sealed and len(base64.b64decode(payload)) == 12 + len(secret) + 16
    assert totp.seal_secret(ring, 7, secret) != sealed  # a fresh nonce every time
    assert totp.open_secret(ring, 7, sealed) == secret

    with pytest.raises(secretbox.SecretUnreadable, match="staff:8"):
        totp.open_secret(ring, 8, sealed)
    with pytest.raises(secretbox.SecretUnreadable, match="failed authentication"):
        secretbox.open_sealed(ring, b"another purpose", sealed, "staff:7")
    flipped = base64.b64decode(payload)
    flipped = flipped[:-1] + bytes([flipped[-1] ^ 1])
    with pytest.raises(secretbox.SecretUnreadable, match="failed authentication"):
        totp.open_secret(ring, 7, f"v1:{key_id}:{_b64(flipped)}")


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "not in the v1 sealed format"),
        ("v2:abc:AAAA", "not in the v1 sealed format"),
        ("v1:0123456789abcdef:AAAA", "VERIFIER_OLD_MASTER_KEYS"),
        ("v1:{current}:not base64!", "not valid base64"),
        ("v1:{current}:AAAA", "too short"),
    ],
)
def test_unreadable_values_say_why(stored, message):
    ring = _keyring(secrets.token_bytes(32))
    with pytest.raises(secretbox.SecretUnreadable, match=message):
        totp.open_secret(ring, 1, stored.format(current=ring.current_id))


# --- enrolment and sign-in --------------------------------------------------------------------


def test_enrolment_stores_the_secret_sealed_and_a_code_still_signs_in(
    app, client, reviewer, login, db_session
):
    login(client, reviewer)
    client.get("/staff/two-factor")
    with client.session_transaction() as flask_session:
        secret = flask_session["staff_totp_enrol"]
    assert (
        client.post("/staff/two-factor", data={"code": pyotp.TOTP(secret).now()}).status_code == 302
    )

    stored = fresh_user(db_session, reviewer.id).totp_secret
    assert secret not in stored and secret.lower() not in stored.lower()
    assert stored.startswith(f"v1:{app.config['MASTER_KEY_ID']}:")
    assert totp.open_secret(Keyring.from_config(app.config), reviewer.id, stored) == secret

    # The enrolment code is spent; the next step's code signs in on a fresh client.
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    login(app.test_client(), reviewer, code=code)


def test_a_secret_copied_to_another_user_is_refused_and_logged(
    app, reviewer, second_reviewer, login, db_session, caplog
):
    secret = totp.new_secret()
    sealed = totp.seal_secret(Keyring.from_config(app.config), reviewer.id, secret)
    _store_secret(db_session, reviewer.id, sealed)
    _store_secret(db_session, second_reviewer.id, sealed)  # the row copied to another user
    code = pyotp.TOTP(secret).now()

    other = app.test_client()
    _password_step(other, second_reviewer)
    with caplog.at_level(logging.ERROR, logger="verifier.staff.logins"):
        refused = other.post("/staff/login/code", data={"code": code})
    assert refused.status_code == 422
    assert CODE_UNCHECKABLE in refused.get_data(as_text=True)
    with other.session_transaction() as flask_session:
        assert "_user_id" not in flask_session and "staff_pending" not in flask_session

    (record,) = [r for r in caplog.records if r.name == "verifier.staff.logins"]
    logged = record.getMessage()
    assert f"Staff user {second_reviewer.id} " in logged
    assert f"failed authentication for staff:{second_reviewer.id}" in logged
    assert secret not in logged and sealed.split(":")[2] not in logged
    (event,) = events(db_session, "staff.login_failed")
    assert event.target_id == str(second_reviewer.id)
    assert event.details["reason"] == "totp_unreadable"
    assert fresh_user(db_session, second_reviewer.id).failed_logins == 0  # not the user's fault

    # The same value on its own row still works, with the very same code.
    login(app.test_client(), reviewer, code=code)


def test_a_secret_sealed_under_an_old_master_key_still_verifies_after_rotation(
    app, tmp_path, database_url, reviewer, login, db_session, caplog
):
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    secret = totp.new_secret()
    _store_secret(db_session, reviewer.id, totp.seal_secret(_keyring(old), reviewer.id, secret))
    code = pyotp.TOTP(secret).now()

    # Without the old key (the `app` fixture has another master key) the code cannot be checked.
    stranger = app.test_client()
    _password_step(stranger, reviewer)
    with caplog.at_level(logging.ERROR, logger="verifier.staff.logins"):
        refused = stranger.post("/staff/login/code", data={"code": code})
    assert refused.status_code == 422 and CODE_UNCHECKABLE in refused.get_data(as_text=True)
    assert f"master key id {key_id_for(old)}, which is not configured" in caplog.text

    rotated = make_app(
        tmp_path,
        database_url,
        environ={"VERIFIER_MASTER_KEY": _b64(new), "VERIFIER_OLD_MASTER_KEYS": _b64(old)},
    )
    assert rotated.config["MASTER_KEY_ID"] == key_id_for(new)
    login(rotated.test_client(), reviewer, code=code)
