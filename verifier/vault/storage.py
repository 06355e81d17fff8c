"""Encrypted blob store: one AES-256-GCM blob per document under its own wrapped data key.

Envelope encryption: each document gets a fresh random 256-bit data key; the blob is
encrypted with it (the document id bound as associated data), and the data key is wrapped
by the current master key (document id and key id bound as associated data). The database
keeps the blob name, the wrapped key and the master key id; the master keys live outside
it. Deleting the wrapped key is enough to make the blob unreadable (crypto-shredding), and
purge deletes both.

On disk a blob is ``uploads_dir/<first two hex chars>/<32 hex chars>``: the fan-out keeps
directories small, and the name is generated here, never taken from a user.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from verifier.errors import DocumentUnreadable, StorageError, StorageFull

log = logging.getLogger(__name__)
KEY_BYTES = 32
NONCE_BYTES = 12
# Blob file: magic + format version, then the nonce, then ciphertext with its GCM tag.
BLOB_HEADER = b"VRFB\x01"
# Wrapped data key: format version, nonce, then the encrypted data key with its tag.
WRAP_VERSION = b"\x01"
WRAPPED_KEY_BYTES = len(WRAP_VERSION) + NONCE_BYTES + KEY_BYTES + 16

_BLOB_PURPOSE = b"verifier/document-blob/v1"
_WRAP_PURPOSE = b"verifier/data-key/v1"
_BLOB_NAME = re.compile(r"[0-9a-f]{32}")
_FANOUT_DIR = re.compile(r"[0-9a-f]{2}")
_TEMP_PREFIX = ".tmp-"

Fault = Callable[[str], None]
"""Test hook: called with "write", "fsync", "rename" and "dirsync" as a blob is written."""


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; new wraps use ``current_id``, older ids stay for reads and rotation."""

    current_id: str
    keys: dict[str, bytes]

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise StorageError(f"The current master key id {self.current_id!r} has no key.")
        for key_id, key in self.keys.items():
            if not key_id or "\x00" in key_id:
                raise StorageError("Master key ids must be non-empty and contain no NUL.")
            if len(key) != KEY_BYTES:
                raise StorageError(f"Master key {key_id!r} must be {KEY_BYTES} bytes.")

    def __repr__(self) -> str:
        # Never let a log line or traceback print key material.
        return f"Keyring(current_id={self.current_id!r}, key_ids={sorted(self.keys)!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Keyring:
        """The keyring of an app's settings (MASTER_KEY_ID and MASTER_KEYS from config.py)."""
        return cls(config["MASTER_KEY_ID"], config["MASTER_KEYS"])

    def key(self, key_id: str) -> bytes:
        """Return the master key for ``key_id`` or raise StorageError if it is unknown."""
        try:
            return self.keys[key_id]
        except KeyError:
            raise StorageError(f"Unknown master key id {key_id!r}.") from None


@dataclass(frozen=True)
class StoredBlob:
    """What the database keeps about a stored blob."""

    blob_name: str
    wrapped_key: bytes
    key_id: str

    def __repr__(self) -> str:
        return f"StoredBlob(blob_name={self.blob_name!r}, key_id={self.key_id!r})"


def generate_master_key() -> bytes:
    """Return a new random 256-bit master key."""
    return secrets.token_bytes(KEY_BYTES)


def safe_uploads_dir(path: str | os.PathLike[str] | None) -> Path:
    """Resolve ``path`` and return it, raising StorageError for empty, root, home or non-dirs."""
    if path is None or not str(path).strip():
        raise StorageError("The uploads directory is not set.")
    resolved = Path(path).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise StorageError(f"Refusing to use the filesystem root {resolved} for uploads.")
    home = Path.home().resolve()
    # Also refuses /home and the like: a sweep there could reach other users' files.
    if home.is_relative_to(resolved):
        raise StorageError(f"Refusing to use {resolved} (the home directory or above it).")
    if not resolved.is_dir():
        raise StorageError(f"The uploads directory {resolved} does not exist or is not a folder.")
    return resolved


def put_blob(
    uploads_dir: Path,
    keyring: Keyring,
    document_id: str,
    plaintext: bytes,
    *,
    _fault: Fault | None = None,
) -> StoredBlob:
    """Encrypt ``plaintext`` under a new data key and write it atomically as a new 0600 blob."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = AESGCM(data_key).encrypt(nonce, plaintext, _blob_aad(document_id))
    blob_name = secrets.token_hex(16)
    wrapped_key = _wrap(keyring.key(keyring.current_id), keyring.current_id, document_id, data_key)
    _write_atomically(_blob_path(uploads_dir, blob_name), BLOB_HEADER + nonce + body, _fault)
    return StoredBlob(blob_name=blob_name, wrapped_key=wrapped_key, key_id=keyring.current_id)


def read_blob(
    uploads_dir: Path,
    keyring: Keyring,
    document_id: str,
    blob_name: str,
    wrapped_key: bytes,
    key_id: str,
) -> bytes:
    """Return the decrypted blob, raising StorageError if missing, unknown key or tampered."""
    data_key = _unwrap(keyring.key(key_id), key_id, document_id, wrapped_key)
    path = _blob_path(uploads_dir, blob_name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StorageError(f"Blob {blob_name} is missing.") from None
    except OSError as exc:
        raise StorageError(f"Blob {blob_name} could not be read: {exc.strerror}.") from exc
    header_end = len(BLOB_HEADER) + NONCE_BYTES
    if len(raw) < header_end + 16 or not raw.startswith(BLOB_HEADER):
        raise StorageError(f"Blob {blob_name} is not a valid blob file.")
    try:
        return AESGCM(data_key).decrypt(
            raw[len(BLOB_HEADER) : header_end], raw[header_end:], _blob_aad(document_id)
        )
    except InvalidTag:
        raise StorageError(f"Blob {blob_name} failed authentication.") from None


FULL_MESSAGE = (
    "We can't store your file right now: our storage is full. Nothing was saved; please "
    "try again in a little while. The team has been alerted."
)
UNREADABLE_MESSAGE = (
    "This document can't be shown: its stored copy is damaged. The team has been alerted; "
    "a new copy can be asked for."
)


def open_document(
    uploads_dir: Path, keyring: Keyring, document_id: str, blob_name: str,
    wrapped_key: bytes, key_id: str,
) -> bytes:  # fmt: skip
    """`read_blob` for showing a document to a person. A blob that is missing, unreadable or
    fails authentication is logged as an integrity alert naming the document, and raised as
    DocumentUnreadable, whose message says so plainly (no blob names, no crypto words)."""
    try:
        return read_blob(uploads_dir, keyring, document_id, blob_name, wrapped_key, key_id)
    except StorageError as exc:
        log.error("integrity alert: document %s cannot be read back: %s", document_id, exc.message)
        raise DocumentUnreadable(UNREADABLE_MESSAGE) from None


def delete_blob(uploads_dir: Path, blob_name: str) -> bool:
    """Remove a blob file and fsync its directory; return False if it was already gone."""
    path = _blob_path(uploads_dir, blob_name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"Blob {blob_name} could not be deleted: {exc.strerror}.") from exc
    _fsync_dir(path.parent)
    return True


def delete_blobs(
    uploads_dir: Path, blob_names: Iterable[str]
) -> tuple[dict[str, bool], dict[str, StorageError]]:
    """Remove many blob files, then fsync each folder they were in once.

    Returns ({name: removed, or False when it was already gone}, {name: error}) so one
    undeletable file holds back only itself.
    """
    removed: dict[str, bool] = {}
    failed: dict[str, StorageError] = {}
    folders: set[Path] = set()
    for name in blob_names:
        try:
            path = _blob_path(uploads_dir, name)
            path.unlink()
        except FileNotFoundError:
            removed[name] = False
        except StorageError as exc:
            failed[name] = exc
        except OSError as exc:
            failed[name] = StorageError(f"Blob {name} could not be deleted: {exc.strerror}.")
        else:
            removed[name] = True
            folders.add(path.parent)
    for folder in folders:
        _fsync_dir(folder)
    return removed, failed


def delete_temp_file(uploads_dir: Path, relative_name: str) -> bool:
    """Remove one ``.tmp-*`` leftover named as ``iter_temp_files`` yields it."""
    parts = relative_name.split("/")
    # Two parts, a fan-out folder and a .tmp- name: no room for "..", "/" or an absolute path.
    if not (
        len(parts) == 2 and _FANOUT_DIR.fullmatch(parts[0]) and parts[1].startswith(_TEMP_PREFIX)
    ):
        raise StorageError(f"Refusing to delete {relative_name!r}: not a blob temp file.")
    path = Path(uploads_dir) / parts[0] / parts[1]
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(path.parent)
    return True


def rewrap_key(
    keyring: Keyring, document_id: str, wrapped_key: bytes, key_id: str
) -> tuple[bytes, str]:
    """Re-wrap a document's data key under the current master key; return (wrapped, key id)."""
    data_key = _unwrap(keyring.key(key_id), key_id, document_id, wrapped_key)
    current = keyring.current_id
    return _wrap(keyring.key(current), current, document_id, data_key), current


def iter_blobs(uploads_dir: Path) -> Iterator[tuple[str, float]]:
    """Yield (blob_name, mtime) for every blob file, for the orphan sweep."""
    for entry in _iter_fanout_entries(safe_uploads_dir(uploads_dir)):
        if _BLOB_NAME.fullmatch(entry.name):
            yield entry.name, entry.stat(follow_symlinks=False).st_mtime


def iter_temp_files(uploads_dir: Path) -> Iterator[tuple[str, float]]:
    """Yield ("xx/.tmp-…", mtime) for temp files left by interrupted writes."""
    for entry in _iter_fanout_entries(safe_uploads_dir(uploads_dir)):
        if entry.name.startswith(_TEMP_PREFIX):
            parent = os.path.basename(os.path.dirname(entry.path))
            yield f"{parent}/{entry.name}", entry.stat(follow_symlinks=False).st_mtime


def _iter_fanout_entries(root: Path) -> Iterator[os.DirEntry[str]]:
    # Only our own two-hex-char folders are walked, so .gitignore/.gitkeep and anything
    # else an operator put there is never listed (and so never swept).
    with os.scandir(root) as top:
        subdirs = [e.path for e in top if _FANOUT_DIR.fullmatch(e.name) and e.is_dir()]
    for subdir in sorted(subdirs):
        with os.scandir(subdir) as entries:
            yield from (e for e in entries if e.is_file(follow_symlinks=False))


def _blob_path(uploads_dir: Path, blob_name: str) -> Path:
    # The strict pattern is what makes traversal impossible: no separators, no dots.
    if not isinstance(blob_name, str) or not _BLOB_NAME.fullmatch(blob_name):
        raise StorageError(f"Refusing invalid blob name {blob_name!r}.")
    return Path(uploads_dir) / blob_name[:2] / blob_name


def _blob_aad(document_id: str) -> bytes:
    return _BLOB_PURPOSE + b"\x00" + document_id.encode()


def _wrap_aad(key_id: str, document_id: str) -> bytes:
    return _WRAP_PURPOSE + b"\x00" + key_id.encode() + b"\x00" + document_id.encode()


def _wrap(master_key: bytes, key_id: str, document_id: str, data_key: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(master_key).encrypt(nonce, data_key, _wrap_aad(key_id, document_id))
    return WRAP_VERSION + nonce + sealed


def _unwrap(master_key: bytes, key_id: str, document_id: str, wrapped_key: bytes) -> bytes:
    if len(wrapped_key) != WRAPPED_KEY_BYTES or not wrapped_key.startswith(WRAP_VERSION):
        raise StorageError("The wrapped data key is malformed.")
    nonce = wrapped_key[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(master_key).decrypt(
            nonce, wrapped_key[1 + NONCE_BYTES :], _wrap_aad(key_id, document_id)
        )
    except InvalidTag:
        raise StorageError("The data key failed authentication (wrong key or document).") from None


def _write_atomically(path: Path, data: bytes, fault: Fault | None) -> None:
    """Write ``data`` to a same-directory temp file, fsync, rename over ``path``, fsync dir."""
    fault = fault or (lambda step: None)
    directory = path.parent
    renamed = False
    tmp_name = None
    try:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(directory.parent)  # make the new fan-out folder itself durable
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)  # mode 0600
        with os.fdopen(fd, "wb") as fh:
            fault("write")
            fh.write(data)
            fh.flush()
            fault("fsync")
            os.fsync(fh.fileno())
        fault("rename")
        os.replace(tmp_name, path)
        renamed = True
        fault("dirsync")
        _fsync_dir(directory)
    except BaseException as exc:
        # Leave nothing behind: the caller never learns the blob name, so a blob kept here
        # would be an orphan holding ciphertext with no key.
        for leftover in (path if renamed else None, tmp_name):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("uploads volume full: a blob could not be written in %s", directory)
            raise StorageFull(FULL_MESSAGE) from exc
        raise StorageError("The document could not be saved; please try again.") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
