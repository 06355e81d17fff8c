"""Admission by cost and host-wide / per-case decode slots."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image

from verifier.errors import UploadRejected
from verifier.portal import admission
from verifier.portal.capacity import HostSlots, decode_caps
from verifier.portal.documents import DecoderPool, process_upload


def test_small_png_declaring_a_huge_canvas_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("1", (7000, 7000), 1).save(buf, "PNG")
    with pytest.raises(UploadRejected) as caught:
        process_upload(buf.getvalue())
    assert caught.value.code == "image_too_sparse"
    assert "7000 x 7000" in caught.value.message


def test_pdf_inflating_past_the_budget_is_refused():
    stream = zlib.compress(b"0 0 m 1 1 l S\n" * 5_000_000, 9)  # ~70 MB of operators
    with pytest.raises(UploadRejected) as caught:
        admission.check_pdf_cost(b"1 0 obj\n<<>>\nstream\n" + stream + b"\nendstream", 48 << 20)
    assert caught.value.code == "pdf_too_complex"
    admission.check_pdf_cost(b"stream\n" + zlib.compress(b"q Q\n" * 1000) + b"\nendstream", 1 << 20)


def test_host_slots_are_shared_across_pools(tmp_path):
    first = HostSlots(tmp_path, "decode", 1)
    second = HostSlots(tmp_path, "decode", 1)  # another web worker on the same host
    fd = first.try_acquire()
    assert fd is not None
    assert second.try_acquire() is None
    pool = DecoderPool(max_workers=1, lane_wait_s=0.2, host_slots=second)
    try:
        with pytest.raises(UploadRejected) as caught:
            pool.process(b"\xff\xd8\xff")
        assert caught.value.code == "decoder_busy"
    finally:
        pool.shutdown()
        first.release(fd)
    assert second.try_acquire() is not None


def test_per_case_cap(tmp_path):
    with decode_caps(7, "10.0.0.1", tmp_path), decode_caps(7, "10.0.0.2", tmp_path):
        with pytest.raises(UploadRejected) as caught, decode_caps(7, "10.0.0.3", tmp_path):
            pass
        assert caught.value.code == "decoder_limit"
        with decode_caps(8, "10.0.0.3", tmp_path):  # another case is not held back
            pass
