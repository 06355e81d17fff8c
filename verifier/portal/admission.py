"""Admission by cost: refuse, from headers and bounded inflation alone, a file that would buy
a long decode for a few bytes (a forged canvas, a decompression bomb, a PDF of 300 MB of
drawing operators). Runs in the decoder process before any pixel is decoded."""

from __future__ import annotations

import re
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
