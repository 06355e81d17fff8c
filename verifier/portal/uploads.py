"""Taking one upload for one document kind: decode and re-encode, encrypt, record.

This is the one domain call that ends transactions itself, for two reasons: the read
transaction must end before the slow decode (decoding must hold no lock), and the blob
files must follow the commit (new ones removed when it fails, replaced ones only after it
succeeds), so no plaintext and no orphan outlives a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from verifier.core.settings import Settings
from verifier.errors import UploadRejected
from verifier.models import Document
from verifier.portal.documents import DecoderPool, PipelineLimits, process_upload
from verifier.portal.submissions import (
    CARD_KINDS,
    COVER_REQUIRED,
    COVER_STATES,
    discard_blobs,
    encrypt_pages,
    store_upload,
)
from verifier.vault.storage import Keyring, delete_blob

log = logging.getLogger(__name__)


def accept_upload(
    session: Session,
    case_id: int,
    kind: str,
    data: bytes,
    *,
    settings: Settings,
    limits: PipelineLimits,
    pool: DecoderPool,
    uploads_dir: Path,
    keyring: Keyring,
    now: Callable[[], datetime],
    cover: str | None = None,
) -> list[Document]:
    """Store `data` as the case's `kind` document (one row a page) and commit; returns the rows.

    Raises UploadRejected for an empty, hostile or refused file, a card photo whose `cover`
    is not one of COVER_STATES, or a case that takes no more.
    `now` is called when the rows are written, after the decode.
    """
    if kind in CARD_KINDS and cover not in COVER_STATES:
        # Refused before the decode: nothing to undo, and the message says what to do.
        raise UploadRejected(COVER_REQUIRED[kind], code="cover_required")
    session.commit()
    try:
        processed = process_upload(data, replace(limits, document_kind=kind), pool=pool)
    except UploadRejected as exc:
        if exc.code == "masking_unavailable":
            # Fail closed: without OCR a card number could be stored readable. Operators act.
            log.error("upload refused: card masking OCR cannot load (%s); see /readyz",
                      exc.__cause__ or "in the decoder")  # fmt: skip
        raise
    blobs = encrypt_pages(processed, uploads_dir=uploads_dir, keyring=keyring)
    try:
        docs, stale = store_upload(
            session, case_id, kind, processed, blobs, settings=settings, now=now(), cover=cover
        )
        session.commit()
    except Exception:
        session.rollback()
        discard_blobs(uploads_dir, [blob for _, blob in blobs])
        raise
    for name in stale:
        delete_blob(uploads_dir, name)
    return docs
