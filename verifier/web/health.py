"""Readiness: can this process serve, that is, reach its database and write its uploads?"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import Engine


def check_database(engine: Engine) -> str | None:
    """None when a round trip to the database works, else what went wrong (no secrets)."""
    try:
        # A plain DBAPI round trip: no transaction, so it never waits for SQLite's write lock.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
    except Exception as exc:  # whatever the driver raises: this check must answer, not fail
        return f"unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})"
    return None


def check_uploads(uploads_dir: Path | str) -> str | None:
    """None when the uploads volume takes a file (written, synced and removed), else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=uploads_dir, prefix=".tmp-ready-") as probe:
            probe.write(b"ready")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return f"not writable ({exc.strerror or type(exc).__name__})"
    return None
