"""Master-key rotation: rotate midway, abort, resume; everything opens with the new key alone."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.auth_helpers import make_app
from tests.retention_helpers import add_document, jpeg_bytes, make_case
from verifier.commands import SEALED_COLUMNS
from verifier.db import new_session
from verifier.models import Document, OutboxEmail, StaffUser
from verifier.staff import totp
from verifier.vault.rotation import key_usage, rotate_master_key
from verifier.vault.secretbox import EMAIL_BODY_PURPOSE, email_body_binding, open_sealed, seal
from verifier.vault.storage import Keyring, generate_master_key, read_blob

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Crash(Exception):
    pass


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_rotation_aborted_midway_resumes_and_retires_the_old_key(app, tmp_path, admin_user):
    old_key = app.config["MASTER_KEYS"][app.config["MASTER_KEY_ID"]]
    old = Keyring.from_config(app.config)
    uploads = Path(app.config["UPLOADS_DIR"])
    with new_session(app) as session:
        case = make_case(session, "R-1", "in_review")
        docs = [add_document(session, uploads, old, case, seed=n) for n in range(5)]
        doc_ids = [d.id for d in docs]
        user = session.get(StaffUser, admin_user.id)
        user.totp_secret = totp.seal_secret(old, user.id, "JBSWY3DPEHPK3PXP")
        binding = email_body_binding(case.id, "invitation")
        text_body = seal(old, EMAIL_BODY_PURPOSE, "link t", binding)
        html_body = seal(old, EMAIL_BODY_PURPOSE, "<p>link t</p>", binding)
        session.add(OutboxEmail(kind="invitation", case_id=case.id, to_address="a@example.com",
                                subject="s", text_body=text_body, html_body=html_body))  # fmt: skip
        session.commit()

    new_key = generate_master_key()
    (tmp_path / "new").mkdir()
    rotated = make_app(tmp_path / "new", app.config["DATABASE_URL"],
                       {"VERIFIER_MASTER_KEY": b64(new_key),
                        "VERIFIER_OLD_MASTER_KEYS": b64(old_key),
                        "VERIFIER_UPLOADS_DIR": str(uploads)})  # fmt: skip
    both = Keyring.from_config(rotated.config)
    assert set(both.keys) == {old.current_id, both.current_id}

    def crash_after_two(batch: int) -> None:
        if batch == 2:
            raise Crash

    with pytest.raises(Crash):
        rotate_master_key(lambda: new_session(rotated), both, SEALED_COLUMNS, now=NOW, batch=2,
                          _after_batch=crash_after_two)  # fmt: skip
    with new_session(rotated) as session:
        usage = key_usage(session, SEALED_COLUMNS)
    # Two committed batches of two documents moved; the rest still under the old key.
    assert usage == {both.current_id: 4, old.current_id: 1 + 1 + 2}

    result = rotated.test_cli_runner().invoke(args=["rotate-master-key", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert f"Key {old.current_id} is no longer used" in result.output
    status = rotated.test_cli_runner().invoke(args=["rotate-master-key", "--status"])
    assert f"{both.current_id}  current        8 row(s)" in status.output

    # The new key alone opens everything: documents, the TOTP secret, the queued email.
    alone = Keyring(both.current_id, {both.current_id: new_key})
    with new_session(rotated) as session:
        rows = session.scalars(select(Document).where(Document.id.in_(doc_ids))).all()
        for row in rows:
            n = doc_ids.index(row.id)
            plain = read_blob(uploads, alone, row.id, row.blob_name, row.wrapped_key, row.key_id)
            assert plain == jpeg_bytes(n)
        user = session.get(StaffUser, admin_user.id)
        assert totp.open_secret(alone, user.id, user.totp_secret) == "JBSWY3DPEHPK3PXP"
        email = session.scalar(select(OutboxEmail))
        assert open_sealed(alone, EMAIL_BODY_PURPOSE, email.text_body, binding) == "link t"
        actions = [
            a for (a,) in session.execute(
                select(__import__("verifier.models", fromlist=["AuditEvent"]).AuditEvent.action)
            )
        ]  # fmt: skip
    assert actions.count("keys.rotation_started") == 2
    assert "keys.rotation_finished" in actions
    rotated.extensions["verifier.engine"].dispose()


def test_rotation_names_a_key_that_is_not_configured(app, tmp_path):
    uploads = Path(app.config["UPLOADS_DIR"])
    with new_session(app) as session:
        case = make_case(session, "R-2", "in_review")
        add_document(session, uploads, Keyring.from_config(app.config), case)
        session.commit()
    # The old key was dropped too early: the run stops and says which key it needs.
    (tmp_path / "other").mkdir()
    other = make_app(tmp_path / "other", app.config["DATABASE_URL"],
                     {"VERIFIER_UPLOADS_DIR": str(uploads)})  # fmt: skip
    result = other.test_cli_runner().invoke(args=["rotate-master-key"])
    assert result.exit_code == 1
    assert app.config["MASTER_KEY_ID"] in result.output
    other.extensions["verifier.engine"].dispose()
