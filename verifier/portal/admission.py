"""Admission by cost: refuse, from headers and bounded inflation alone, a file that would buy
a long decode for a few bytes (a forged canvas, a decompression bomb, a PDF of 300 MB of
drawing operators). Runs in the decoder process before any pixel is decoded."""

from __future__ import annotations

import re
import struct
import zlib

from verifier.core.i18n import N_
from verifier.errors import UploadRejected

_MIB = 1024 * 1024
_STREAM_START = re.compile(rb"stream\r?\n")

MESSAGES = {
    "image_too_sparse": N_(
        "This file is far too small for the image size it declares ({width} x {height} "
        "pixels), so it is probably damaged or not a real photo. Please take the photo again, "
        "or upload a screenshot or a smaller scan of the document."
    ),
    "pdf_too_complex": N_(
        "This PDF holds far more drawing data than a document page needs, so we can't "
        "process it. Please upload a photo or scan of each page instead, or save the PDF "
        "again with your device's Print to PDF."
    ),
}


def check_image_cost(
    size: int, width: int, height: int, check_above_pixels: int, min_bytes_per_megapixel: int
) -> None:
    """Refuse an image above ``check_above_pixels`` whose file brings fewer than
    ``min_bytes_per_megapixel`` bytes for each megapixel its header declares."""
    pixels = width * height
    if pixels > check_above_pixels and size * 1_000_000 < pixels * min_bytes_per_megapixel:
        message = MESSAGES["image_too_sparse"].format(width=width, height=height)
        error = UploadRejected(message, code="image_too_sparse")
        error.template, error.details = (
            MESSAGES["image_too_sparse"],
            {"width": width, "height": height},
        )
        raise error


def check_pdf_cost(data: bytes, budget: int) -> None:
    """Refuse a PDF whose Flate streams inflate past ``budget`` bytes in all, before PDFium
    parses a single operator. Inflation is bounded: at most the budget plus one chunk is ever
    produced, so a 300 MB content stream is refused after 48 MB, in well under a second.
    Streams that are not Flate (JPEG images, say) fail at their first byte and cost nothing."""
    total = 0
    position = 0
    view = memoryview(data)
    while (found := _STREAM_START.search(data, position)) is not None:
        start = found.end()
        end = data.find(b"endstream", start)
        end = len(data) if end < 0 else end
        position = max(end, start)
        inflater = zlib.decompressobj()
        chunk = view[start:end]
        try:
            while chunk and total <= budget and not inflater.eof:
                total += len(inflater.decompress(chunk, _MIB))
                chunk = memoryview(inflater.unconsumed_tail)
        except zlib.error:
            continue  # not Flate, or damaged: PDFium decides what it is
        if total > budget:
            raise UploadRejected(MESSAGES["pdf_too_complex"], code="pdf_too_complex")


# An image declaring more than this many pixels, or any PDF, is "heavy" for the decoder pool
# (verifier.portal.documents): such jobs share fewer host slots than there are, so one slot
# stays free for ordinary photos however many heavy files arrive. A PDF's cost cannot be told
# from its size: 1.7 KB of stroked paths held a decoder for 14 s.
HEAVY_PIXELS = 16_000_000
# HEIC headers are boxes deep in the file; a phone's 12 MP HEIC is 1-4 MB.
HEAVY_HEIC_BYTES = 6 * _MIB


def is_heavy(data: bytes) -> bool:
    """Whether ``data`` may buy a long decode (a PDF, a large PNG/WebP/HEIC), judged from a few
    header bytes at fixed offsets, so the web worker parses nothing hostile. JPEGs are never
    heavy: libjpeg decodes them at reduced scale."""
    head = data[:64]
    if b"%PDF" in data[:1024]:
        return True
    size = _png_or_webp_size(head)
    if size is not None:
        return size[0] * size[1] > HEAVY_PIXELS
    if head[4:8] == b"ftyp":  # HEIC / HEIF
        return len(data) > HEAVY_HEIC_BYTES
    return False


def _png_or_webp_size(head: bytes) -> tuple[int, int] | None:
    """Declared (width, height) of a PNG or WebP header, else None."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP" or len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None
