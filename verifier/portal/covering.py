"""Covering a card photo's numbers on the server's own preview: paint, re-encode, re-encrypt.

For card photos the browser cannot show (HEIC, PDF) the customer paints over the preview the
server rendered; the boxes (fractions of each page) are painted onto the stored pages here.
The pages are our own clean JPEGs, not the customer's bytes, so this runs in-process. Like
`accept_upload` it ends its transaction itself, so new blobs follow the commit.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw
from sqlalchemy.orm import Session

from verifier.core.audit import record_event
from verifier.core.i18n import N_
from verifier.core.settings import Settings
from verifier.errors import UploadRejected
from verifier.models import Document
from verifier.portal.submissions import CARD_KINDS, OPEN_FOR_UPLOAD, load_case, portal_state
from verifier.vault.storage import Keyring, delete_blob, put_blob, read_blob

Box = tuple[float, float, float, float]
MAX_BOXES = 50
JPEG_QUALITY = 88


def parse_boxes(raw: str | None) -> dict[str, list[Box]]:
    """`{"<document id>": [[x, y, w, h], ...]}` in fractions of the page; raises UploadRejected."""
    try:
        data = json.loads(raw or "{}")
        boxes = {str(doc_id): [_box(b) for b in items] for doc_id, items in dict(data).items()}
    except (ValueError, TypeError) as exc:
        raise UploadRejected(N_("The covered areas could not be read. Please try again."),
                             code="bad_boxes") from exc  # fmt: skip
    if sum(len(b) for b in boxes.values()) > MAX_BOXES:
        raise UploadRejected(N_("Too many covered areas. Please start again."), code="bad_boxes")
    return boxes


def _box(raw: object) -> Box:
    x, y, w, h = (float(v) for v in raw)  # type: ignore[attr-defined]
    if not all(0 <= v <= 1 for v in (x, y, w, h)):
        raise ValueError("outside the page")
    return x, y, min(w, 1 - x), min(h, 1 - y)


def paint_boxes(jpeg: bytes, boxes: list[Box]) -> bytes:
    """The page with every box filled black, re-encoded as a metadata-free JPEG."""
    with Image.open(io.BytesIO(jpeg)) as source:
        image = source.convert("RGB")
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        draw.rectangle(
            (x * image.width, y * image.height, (x + w) * image.width, (y + h) * image.height),
            fill=(0, 0, 0),
        )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def cover_documents(
    session: Session,
    case_id: int,
    kind: str,
    boxes: dict[str, list[Box]],
    *,
    settings: Settings,
    uploads_dir: Path,
    keyring: Keyring,
    now: datetime,
) -> list[Document]:
    """Paint `boxes` over the case's `kind` card pages, store them re-encrypted, commit.

    With no boxes at all the customer states the numbers were covered by hand ("declared").
    Raises UploadRejected when the case is closed or there is no card photo to cover.
    """
    case = load_case(session, case_id, for_update=True)
    if case.status not in OPEN_FOR_UPLOAD or kind not in CARD_KINDS:
        raise UploadRejected(N_("There is nothing to cover here now."), code="case_closed")
    docs = portal_state(session, case_id, settings).uploaded.get(kind, [])
    if not docs or set(boxes) - {d.id for d in docs}:
        raise UploadRejected(N_("Upload the card photo first."), code="no_file")
    painted = any(boxes.values())
    written, stale = [], []
    try:
        for doc in docs:
            if not boxes.get(doc.id):
                continue
            assert doc.blob_name and doc.wrapped_key and doc.key_id  # active documents
            plain = read_blob(uploads_dir, keyring, doc.id, doc.blob_name, doc.wrapped_key,
                              doc.key_id)  # fmt: skip
            data = paint_boxes(plain, boxes[doc.id])
            blob = put_blob(uploads_dir, keyring, doc.id, data)
            written.append(blob.blob_name)
            stale.append(doc.blob_name)
            doc.blob_name, doc.wrapped_key = blob.blob_name, blob.wrapped_key
            doc.key_id = blob.key_id
            doc.byte_size = len(data)
        for doc in docs:
            doc.cover = "preview" if painted else "declared"
        record_event(
            session, "document.covered", actor_type="customer", actor_id=f"case:{case_id}",
            target_type="case", target_id=case_id,
            details={"kind": kind, "boxes": sum(len(b) for b in boxes.values())}, now=now,
        )  # fmt: skip
        session.commit()
    except Exception:
        session.rollback()
        for name in written:
            delete_blob(uploads_dir, name)
        raise
    for name in stale:
        delete_blob(uploads_dir, name)
    return docs
