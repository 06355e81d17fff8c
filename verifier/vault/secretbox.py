"""Small secrets sealed at rest under the master key: AES-256-GCM with a key derived per purpose.

A sealed value is text that fits an ordinary string column:
``v1:<master key id>:<base64 of nonce + ciphertext + tag>``. The AES key is derived from the
master key with HKDF-SHA256 and a purpose label, so one purpose's key never opens another's
values; the associated data binds a value to its row (``staff:42``), so a value copied to
another row does not open. The key id names the master key that sealed it: after a rotation
the previous key, kept in VERIFIER_OLD_MASTER_KEYS, still opens it.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from verifier.errors import VerifierError
from verifier.vault.storage import Keyring

VERSION = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretUnreadable(VerifierError):
    """A sealed value could not be opened; the message says why and never holds the value."""

    code = "secret_unreadable"
    status = 500


def seal(keyring: Keyring, purpose: bytes, plaintext: str, bound_to: str) -> str:
    """Encrypt `plaintext` under the current master key for the row named by `bound_to`."""
    key_id = keyring.current_id
    if ":" in key_id:
        raise SecretUnreadable("Master key ids used for sealed values cannot contain ':'.")
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(_derive(keyring.key(key_id), purpose)).encrypt(
        nonce, plaintext.encode(), bound_to.encode()
    )
    return f"{VERSION}:{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def open_sealed(keyring: Keyring, purpose: bytes, sealed: str, bound_to: str) -> str:
    """The plaintext of a value from `seal`; raises SecretUnreadable (format, key or row)."""
    parts = (sealed or "").split(":")
    if len(parts) != 3 or parts[0] != VERSION or not parts[1]:
        raise SecretUnreadable(f"The stored value is not in the {VERSION} sealed format.")
    _version, key_id, payload = parts
    if key_id not in keyring.keys:
        raise SecretUnreadable(
            f"It was sealed under master key id {key_id}, which is not configured "
            "(add that key to VERIFIER_OLD_MASTER_KEYS)."
        )
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise SecretUnreadable("The stored value is not valid base64.") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SecretUnreadable("The stored value is too short.")
    try:
        plaintext = AESGCM(_derive(keyring.key(key_id), purpose)).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode()
        )
    except InvalidTag:
        raise SecretUnreadable(
            f"It failed authentication for {bound_to}: altered, or copied from another row."
        ) from None
    return plaintext.decode()


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    # No salt: the master key is already uniformly random (RFC 5869 section 3.1).
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(master_key)


# Customer emails wait in the outbox with their upload link in the body: sealed at rest,
# opened only by the worker that sends them (DESIGN: tokens are never stored in plaintext).
EMAIL_BODY_PURPOSE = b"verifier/outbox-email-body/v1"


def email_body_binding(case_id: int | None, kind: str) -> str:
    """What a sealed email body is bound to, so it cannot be moved to another row."""
    return f"outbox-email:{case_id}:{kind}"


def is_sealed(value: str) -> bool:
    return value.startswith(f"{VERSION}:") and value.count(":") == 2
