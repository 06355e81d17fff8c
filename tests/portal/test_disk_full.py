"""A full uploads volume: the customer gets 507 and a message they understand, the operator an
error in the log, and nothing half-written stays behind. Uses a real 1 MiB tmpfs."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.portal_helpers import (
    create_flagged_order,
    flag_everything,
    jpeg_bytes,
    token_path,
    upload,
)
from verifier.models import Document


@pytest.fixture
def small_volume(app):
    """The app's uploads folder becomes a 1 MiB filesystem of its own (tmpfs, root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and this machine run as root)")
    uploads = Path(app.config["UPLOADS_DIR"])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(uploads)],
                   check=True)  # fmt: skip
    try:
        yield uploads
    finally:
        subprocess.run(["umount", str(uploads)], check=True)


def _fill(volume: Path) -> Path:
    filler = volume / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_uploads_volume_answers_507_and_loses_nothing(
    app, client, auth, db_session, small_volume, caplog
):
    flag_everything(db_session)
    assert client.get(token_path(create_flagged_order(client, auth))).status_code == 303
    filler = _fill(small_volume)
    caplog.set_level(logging.ERROR)

    answer = upload(client, "card_front", jpeg_bytes())
    assert answer.status_code == 507
    error = answer.get_json()["error"]
    assert error["code"] == "storage_full" and "storage is full" in error["message"]
    assert "Nothing was saved" in error["message"]
    assert any("uploads volume full" in r.getMessage() for r in caplog.records)
    assert db_session.scalar(select(func.count(Document.id))) == 0
    assert sorted(p.name for p in small_volume.rglob("*") if p.is_file()) == ["filler"]

    filler.unlink()  # room again: the same upload goes through
    assert upload(client, "card_front", jpeg_bytes()).status_code == 201
    db_session.rollback()  # a fresh snapshot
    assert db_session.scalar(select(func.count(Document.id))) == 1
