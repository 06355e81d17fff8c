"""Uploads handed to decoder processes in memory (a sealed memfd over a Unix socket)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
from collections.abc import Iterator

import pytest
from PIL import Image

from verifier.errors import UploadRejected
from verifier.portal import decoding, handoff, supervisor
from verifier.portal.documents import DecoderPool, process_upload

pytestmark = pytest.mark.skipif(not handoff.available(), reason="needs Linux memfd")


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    decoder_pool = DecoderPool(max_workers=1)
    decoder_pool.warm()
    yield decoder_pool
    decoder_pool.shutdown()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _photo() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((900, 700), 40).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _kill_decoders(pool: DecoderPool) -> None:
    for pid in pool.decoder_pids():
        os.kill(pid, signal.SIGKILL)


def test_a_file_at_the_size_limit_arrives_intact(pool: DecoderPool) -> None:
    data = os.urandom(15 * 1024 * 1024)

    received = pool._call(handoff.digest_for_test, timeout=30, payload=data)

    assert received == (len(data), hashlib.sha256(data).hexdigest())


def test_the_upload_is_sealed_anonymous_memory_not_a_file() -> None:
    payload = handoff.Payload(b"\xff\xd8\xff document bytes")
    try:
        # Anonymous memory: no path on any file system, gone with its last descriptor.
        assert os.readlink(f"/proc/self/fd/{payload.fd}").startswith("/memfd:upload")
        with pytest.raises(PermissionError):  # sealed: nobody can change what is decoded
            os.pwrite(payload.fd, b"x", 0)
    finally:
        payload.close()


def test_a_job_never_reads_a_descriptor_left_for_another(pool: DecoderPool) -> None:
    # A client that handed its file over and vanished before its job was read: the next job
    # on that decoder must take its own file, never that one.
    pool._call(os.getpid, timeout=30)
    stale = handoff.Payload(b"another customer's file")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(supervisor.socket_path(pool.directory, 0)))
            socket.send_fds(sock, [b"\0\0\0\0"], [stale.fd])  # a frame cut short
    finally:
        stale.close()
    data = b"this customer's file" * 1000

    received = pool._call(handoff.digest_for_test, timeout=30, payload=data)

    assert received == (len(data), hashlib.sha256(data).hexdigest())


def test_a_decoder_killed_mid_job_fails_that_upload_cleanly_and_leaks_nothing(
    pool: DecoderPool,
) -> None:
    photo = _photo()
    assert process_upload(photo, pool=pool).pages
    before = _open_fds()
    for _ in range(3):
        with pytest.raises(UploadRejected) as caught:
            pool._call(decoding._crash_for_test, timeout=10, payload=photo)
        assert caught.value.code == "decoder_failed"
        assert process_upload(photo, pool=pool).pages  # a new decoder takes the next one

    assert _open_fds() <= before  # no descriptor, socket or memfd left behind


def test_a_result_from_a_decoder_rebuilds_no_arbitrary_object(pool: DecoderPool) -> None:
    # A subverted decoder could answer with a pickle that runs code in the web worker.
    with pytest.raises(UploadRejected) as caught:
        pool._call(_evil_outcome, timeout=10)

    assert caught.value.code == "decoder_failed"
    assert not os.path.exists("/tmp/verifier-pwned")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/verifier-pwned",))


def _evil_outcome() -> object:
    return _Evil()


def test_a_decoder_killed_while_idle_is_replaced_and_the_upload_handed_over_again(
    pool: DecoderPool,
) -> None:
    photo = _photo()
    assert process_upload(photo, pool=pool).pages
    before = _open_fds()
    for _ in range(3):
        _kill_decoders(pool)
        assert process_upload(photo, pool=pool).pages

    assert _open_fds() <= before


def test_many_uploads_leave_no_descriptor_open(pool: DecoderPool) -> None:
    photo = _photo()
    process_upload(photo, pool=pool)
    before = _open_fds()

    for _ in range(10):
        assert process_upload(photo, pool=pool).pages

    assert _open_fds() == before


def test_the_decoder_that_just_finished_takes_the_next_job() -> None:
    # The lowest free slot first: one upload after another goes to the same warm decoder.
    two = DecoderPool(max_workers=2)
    try:
        two.warm()
        pids = {two._call(os.getpid, timeout=30) for _ in range(6)}
    finally:
        two.shutdown()

    assert len(pids) == 1
