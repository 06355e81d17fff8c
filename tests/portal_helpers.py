"""Helpers for portal tests: flagged orders with their links, and real image files."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime

from PIL import Image, ImageDraw

from tests.factories import order_payload
from verifier.core.policies import create_policy_version


def flag_everything(db_session, **settings) -> None:
    """Make the next orders all flagged (100 % random), with optional settings changes."""
    create_policy_version(
        db_session,
        changes={"rate_bp": 10_000, "settings": settings},
        reason="test",
        actor_label="test",
        actor_id=None,
        now=datetime.now(UTC),
    )
    db_session.commit()


def create_flagged_order(client, auth, external_id: str = "A-1001") -> dict:
    resp = client.post("/api/v1/orders", json=order_payload(external_id=external_id), headers=auth)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["case"]["upload_url"], body
    return body


def token_path(body: dict) -> str:
    url = body["case"]["upload_url"]
    return url[url.index("/u/") :]


def jpeg_bytes(size=(1200, 800), *, noise: bool = False, quality: int = 90) -> bytes:
    """A realistic photo-like JPEG: text-like strokes (sharp), or random noise (large file)."""
    if noise:
        img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        img = Image.new("RGB", size, (235, 232, 220))
        draw = ImageDraw.Draw(img)
        for i in range(0, size[1], 24):
            draw.text((20, i), "VERIFIER 1234 5678 ABCDEFGH " * 4, fill=(20, 20, 20))
            draw.line((0, i + 18, size[0], i + 18), fill=(120, 40, 40), width=2)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def upload(
    client,
    kind: str,
    data: bytes,
    filename: str = "photo.jpg",
    *,
    json: bool = True,
    cover: str | None = "painted",
):
    """POST one file as the page's script does; card photos say how they were covered."""
    headers = {"Accept": "application/json"} if json else {}
    form = {"file": (io.BytesIO(data), filename)}
    if cover and kind.startswith("card_"):
        form["cover"] = cover
    return client.post(
        f"/portal/documents/{kind}",
        data=form,
        headers=headers,
        content_type="multipart/form-data",
    )


def email_body(keyring, email, part: str = "text_body") -> str:
    """An outbox email's body as the worker opens it: asserting the stored one is sealed."""
    from verifier.vault.secretbox import EMAIL_BODY_PURPOSE, email_body_binding, open_sealed

    stored = getattr(email, part)
    assert stored.startswith("v1:") and "http" not in stored
    body = open_sealed(keyring, EMAIL_BODY_PURPOSE, stored,
                       email_body_binding(email.case_id, email.kind))  # fmt: skip
    # Never the link in plaintext. The sealed text is base64, which may hold "/u/" by chance,
    # so look for each link's token rather than for the path.
    for token in re.findall(r"/u/([A-Za-z0-9_-]{16,})", body):
        assert token not in stored
    return body
