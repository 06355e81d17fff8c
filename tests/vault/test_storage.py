"""Encrypted blob store: confidentiality, integrity, binding, rotation, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from verifier.errors import StorageError
from verifier.vault import storage
from verifier.vault.storage import Keyring

PLAINTEXT = b"JPEG-ish bytes; holder JANE Q CUSTOMER; distinctive-marker-7f3a " * 200


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    # The real uploads/ folder keeps these in git; the store must ignore them.
    (folder / ".gitignore").write_text("*\n!.gitignore\n!.gitkeep\n")
    (folder / ".gitkeep").write_bytes(b"")
    return folder


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(current_id="k1", keys={"k1": storage.generate_master_key()})


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".git"))


def blob_file(uploads: Path, blob: storage.StoredBlob) -> Path:
    return uploads / blob.blob_name[:2] / blob.blob_name


def test_round_trip(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)

    assert blob.key_id == "k1"
    assert len(blob.blob_name) == 32
    read = storage.read_blob(uploads, keyring, "doc-1", blob.blob_name, blob.wrapped_key, "k1")
    assert read == PLAINTEXT


def test_blob_on_disk_is_not_the_plaintext(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)

    raw = blob_file(uploads, blob).read_bytes()
    assert raw.startswith(storage.BLOB_HEADER)
    assert b"distinctive-marker" not in raw
    assert b"JANE Q CUSTOMER" not in raw
    assert PLAINTEXT[:64] not in raw


def test_each_document_gets_its_own_name_and_data_key(uploads: Path, keyring: Keyring) -> None:
    first = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    second = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)

    assert first.blob_name != second.blob_name
    assert first.wrapped_key != second.wrapped_key
    assert blob_file(uploads, first).read_bytes() != blob_file(uploads, second).read_bytes()


def test_blob_file_mode_is_0600(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)

    assert stat.S_IMODE(blob_file(uploads, blob).stat().st_mode) == 0o600


@pytest.mark.parametrize("offset", [0, len(storage.BLOB_HEADER) + 3, 500, -1])
def test_tampered_byte_fails_authentication(uploads: Path, keyring: Keyring, offset: int) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    path = blob_file(uploads, blob)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))

    with pytest.raises(StorageError):
        storage.read_blob(uploads, keyring, "doc-1", blob.blob_name, blob.wrapped_key, "k1")


def test_blob_swapped_between_documents_fails(uploads: Path, keyring: Keyring) -> None:
    mine = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    theirs = storage.put_blob(uploads, keyring, "doc-2", b"someone else's passport")

    # Another document's blob file copied over mine on disk.
    blob_file(uploads, mine).write_bytes(blob_file(uploads, theirs).read_bytes())
    with pytest.raises(StorageError, match="authentication"):
        storage.read_blob(uploads, keyring, "doc-1", mine.blob_name, mine.wrapped_key, "k1")
    # The database row pointed at another document's blob, or its wrapped key reused.
    with pytest.raises(StorageError):
        storage.read_blob(uploads, keyring, "doc-1", theirs.blob_name, mine.wrapped_key, "k1")
    with pytest.raises(StorageError):
        storage.read_blob(uploads, keyring, "doc-1", theirs.blob_name, theirs.wrapped_key, "k1")


def test_unknown_or_wrong_key_id_fails(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    two_keys = Keyring(current_id="k1", keys={**keyring.keys, "k2": os.urandom(32)})

    with pytest.raises(StorageError, match="Unknown master key"):
        storage.read_blob(uploads, keyring, "doc-1", blob.blob_name, blob.wrapped_key, "k9")
    with pytest.raises(StorageError, match="authentication"):
        storage.read_blob(uploads, two_keys, "doc-1", blob.blob_name, blob.wrapped_key, "k2")
    replaced = Keyring(current_id="k1", keys={"k1": os.urandom(32)})
    with pytest.raises(StorageError, match="authentication"):
        storage.read_blob(uploads, replaced, "doc-1", blob.blob_name, blob.wrapped_key, "k1")


def test_missing_blob_fails(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    blob_file(uploads, blob).unlink()

    with pytest.raises(StorageError, match="missing"):
        storage.read_blob(uploads, keyring, "doc-1", blob.blob_name, blob.wrapped_key, "k1")


def test_rewrap_under_new_master_key_still_decrypts(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    rotated = Keyring(current_id="k2", keys={**keyring.keys, "k2": storage.generate_master_key()})

    wrapped, key_id = storage.rewrap_key(rotated, "doc-1", blob.wrapped_key, blob.key_id)

    assert key_id == "k2"
    assert wrapped != blob.wrapped_key
    # The old master key can now be retired: only k2 is needed to read.
    only_new = Keyring(current_id="k2", keys={"k2": rotated.keys["k2"]})
    assert storage.read_blob(uploads, only_new, "doc-1", blob.blob_name, wrapped, key_id) == (
        PLAINTEXT
    )
    with pytest.raises(StorageError):
        storage.rewrap_key(rotated, "doc-2", blob.wrapped_key, blob.key_id)


@pytest.mark.parametrize("step", ["write", "fsync", "rename", "dirsync"])
def test_fault_at_any_write_step_leaves_no_file(uploads: Path, keyring: Keyring, step: str) -> None:
    def fault(current: str) -> None:
        if current == step:
            raise OSError(28, "No space left on device")

    with pytest.raises(StorageError):
        storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT, _fault=fault)

    assert files_under(uploads) == []
    assert list(storage.iter_temp_files(uploads)) == []


def test_delete_blob(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)

    assert storage.delete_blob(uploads, blob.blob_name) is True
    assert not blob_file(uploads, blob).exists()
    assert storage.delete_blob(uploads, blob.blob_name) is False


@pytest.mark.parametrize(
    "name", ["../secret", "..", "ab/cdef", "/etc/passwd", "", ".gitkeep", "a" * 31 + "/", "A" * 32]
)
def test_delete_blob_refuses_traversal_and_foreign_names(uploads: Path, name: str) -> None:
    victim = uploads.parent / "secret"
    victim.write_text("keep me")

    with pytest.raises(StorageError, match="invalid blob name"):
        storage.delete_blob(uploads, name)
    assert victim.exists()
    assert (uploads / ".gitkeep").exists()


def test_iterators_list_blobs_and_leftovers_only(uploads: Path, keyring: Keyring) -> None:
    blob = storage.put_blob(uploads, keyring, "doc-1", PLAINTEXT)
    leftover = uploads / blob.blob_name[:2] / ".tmp-abandoned"
    leftover.write_bytes(b"half a blob")
    (uploads / "notes.txt").write_text("operator's file")

    assert [name for name, _ in storage.iter_blobs(uploads)] == [blob.blob_name]
    temps = list(storage.iter_temp_files(uploads))
    assert [name for name, _ in temps] == [f"{blob.blob_name[:2]}/.tmp-abandoned"]
    assert isinstance(temps[0][1], float)

    assert storage.delete_temp_file(uploads, temps[0][0]) is True
    assert not leftover.exists()
    with pytest.raises(StorageError):
        storage.delete_temp_file(uploads, "../.tmp-x")
    assert (uploads / ".gitignore").exists() and (uploads / "notes.txt").exists()


def test_safe_uploads_dir(tmp_path: Path) -> None:
    assert storage.safe_uploads_dir(tmp_path) == tmp_path.resolve()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad in ["", "   ", None, "/", Path.home(), Path.home().parent, a_file, tmp_path / "nope"]:
        with pytest.raises(StorageError):
            storage.safe_uploads_dir(bad)


def test_keyring_validates_and_hides_keys() -> None:
    key = storage.generate_master_key()
    ring = Keyring(current_id="k1", keys={"k1": key})

    assert key.hex() not in repr(ring) and repr(key) not in repr(ring)
    with pytest.raises(StorageError):
        Keyring(current_id="k1", keys={"k1": b"short"})
    with pytest.raises(StorageError):
        Keyring(current_id="k2", keys={"k1": key})
