"""The uploads folder's sweep: blobs no row references, and temp files of interrupted writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.models import Document
from verifier.vault.storage import delete_blob, delete_temp_file, iter_blobs, iter_temp_files

# The upload path writes a blob before its row commits; younger files may still get a row.
ORPHAN_MIN_AGE = timedelta(hours=1)


def orphan_candidates(
    session_factory: Callable[[], Session], uploads: Path, now: datetime
) -> list[str]:
    """Blob names with no Document row whose file is older than ORPHAN_MIN_AGE at ``now``."""
    cutoff = (now - ORPHAN_MIN_AGE).timestamp()
    old = [name for name, mtime in iter_blobs(uploads) if mtime <= cutoff]
    orphans: list[str] = []
    with session_factory() as session:
        for start in range(0, len(old), 500):
            chunk = old[start : start + 500]
            known = set(
                session.scalars(select(Document.blob_name).where(Document.blob_name.in_(chunk)))
            )
            orphans.extend(name for name in chunk if name not in known)
        session.rollback()
    return orphans


def old_temp_files(uploads: Path, now: datetime) -> list[str]:
    """``xx/.tmp-*`` files left by interrupted writes, older than ORPHAN_MIN_AGE at ``now``."""
    cutoff = (now - ORPHAN_MIN_AGE).timestamp()
    return [name for name, mtime in iter_temp_files(uploads) if mtime <= cutoff]


def sweep_uploads(
    session_factory: Callable[[], Session], uploads: Path, now: datetime
) -> tuple[int, int]:
    """Delete blobs no row references and ``.tmp-*`` files, both older than an hour."""
    orphans = orphan_candidates(session_factory, uploads, now)
    removed = sum(delete_blob(uploads, name) for name in orphans)
    temps = sum(delete_temp_file(uploads, n) for n in old_temp_files(uploads, now))
    return removed, temps
