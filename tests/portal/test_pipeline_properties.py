"""Property tests over the upload pipeline: any bytes, and real images with bytes changed,
come out as clean JPEG pages or an UploadRejected with a message for the customer, never
another exception. Bounded in examples; decoding runs in this process for speed (the
sandboxed pool runs the same function)."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from verifier.errors import UploadRejected
from verifier.portal.decoding import decode_upload


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((320, 240), 40).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


SEEDS = [_image("JPEG"), _image("PNG"), _image("WEBP")]


def _check(data: bytes) -> None:
    try:
        result = decode_upload(data)
    except UploadRejected as exc:
        assert exc.message and exc.code
    else:
        assert result.pages
        for page in result.pages:
            assert page.data[:3] == b"\xff\xd8\xff"  # always re-encoded as JPEG
            with Image.open(io.BytesIO(page.data)) as clean:
                assert not clean.info.get("exif") and not clean.getexif()


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=4096))
def test_any_bytes_are_refused_cleanly_or_cleaned(data):
    _check(data)


@settings(max_examples=150, deadline=None)
@given(seed=st.sampled_from(SEEDS), cuts=st.lists(st.tuples(st.integers(0, 10**6),
                                                           st.integers(0, 255)), max_size=8),
       truncate=st.integers(min_value=1, max_value=10**6))  # fmt: skip
def test_real_images_with_bytes_changed_or_cut_are_refused_cleanly_or_cleaned(seed, cuts, truncate):
    data = bytearray(seed)
    for position, value in cuts:
        data[position % len(data)] = value
    _check(bytes(data[: max(1, truncate % (len(data) + 1))]))
