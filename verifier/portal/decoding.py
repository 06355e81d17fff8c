"""Pixel work of the upload pipeline: sniff, decode or render, normalise, re-encode, check.

Everything here touches hostile bytes, so `verifier.portal.documents` normally runs it in a
decoder process (`run_job`, forked after `preload`); `decode_upload` also runs in-process for
tests and simple callers. Nothing here imports Flask or writes to disk.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import resource
import struct
import threading
import time
import warnings
from dataclasses import dataclass, field

import magic
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image, ImageFilter, ImageStat

from verifier.core.i18n import N_
from verifier.errors import UploadRejected
from verifier.portal import admission, cardmask, heap

MIB = 1024 * 1024

# Sniffed MIME type -> (source type we report, the only Pillow formats allowed to open it).
# MPO is how Pillow presents multi-picture JPEGs from phones; HEIF is pillow_heif's format.
_IMAGE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "image/jpeg": ("image/jpeg", ("JPEG", "MPO")),
    "image/png": ("image/png", ("PNG",)),
    "image/webp": ("image/webp", ("WEBP",)),
    "image/heic": ("image/heic", ("HEIF",)),
    "image/heif": ("image/heic", ("HEIF",)),
}
PDF_TYPE = "application/pdf"
SOURCE_TYPES = frozenset({t for t, _ in _IMAGE_TYPES.values()} | {PDF_TYPE})

# What a failed decode looks like from Pillow and its plugins on hostile or damaged bytes.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)

# Quality thresholds, calibrated on synthetic text pages, cards and photos at 1024 px: the
# Laplacian variance of sharp ones was 39 (a photo with no edges) to 2700 (text), of the
# same after a Gaussian blur of radius 3 px 2-21, of radius 5 px under 5.
_ANALYSIS_EDGE = 1024
_BLUR_VARIANCE_MIN = 30.0
_DARK_MEAN_MAX = 40.0
_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)

# PDFium is not thread-safe; in-process callers may be threads of a web worker.
_PDFIUM_LOCK = threading.Lock()
_HEIF_LOCK = threading.Lock()
_heif_registered = False


@dataclass(frozen=True)
class PipelineLimits:
    """Caps and targets for one upload; worker_* apply to the pool's processes."""

    max_bytes: int = 15 * MIB
    max_pixels: int = 50_000_000
    # 2048 px is ample to read a card or an ID, and lets libjpeg decode a 12 MP phone photo
    # (4032 px) at half scale directly, the largest saving of the whole pipeline.
    max_edge: int = 2048
    max_pdf_pages: int = 3
    pdf_render_dpi: int = 150
    min_edge: int = 600
    jpeg_quality: int = 88
    # Admission by cost, decided before any pixel is decoded: an image above
    # sparse_check_pixels must bring at least min_bytes_per_megapixel of file for each
    # megapixel it declares (a real 12 MP photo brings 200,000+; a 1 KB JPEG claiming
    # 50 MP brings 20), and a PDF's compressed streams may inflate to at most
    # max_pdf_inflated_bytes in all (a page of text is well under 1 MB).
    sparse_check_pixels: int = 4_000_000
    min_bytes_per_megapixel: int = 10_000
    max_pdf_inflated_bytes: int = 48 * MIB
    # Every heavy file is answered within 10 s: the wall-clock budget of one decode
    # (card masking included), after which the decoder is killed and replaced.
    decode_timeout_s: float = 9.0
    # Address space, not resident memory: ONNX Runtime's arenas and threads (card masking)
    # reserve far more than they touch; under 1.5 GiB its first inference fails (bad_alloc).
    worker_memory_bytes: int = 2560 * MIB
    worker_cpu_seconds: int = 30
    # The slot the upload is for: card numbers are covered in every slot, and on a card back
    # every digit group too (verifier.portal.cardmask).
    document_kind: str | None = None


DEFAULT_LIMITS = PipelineLimits()


@dataclass(frozen=True)
class ProcessedImage:
    """One clean page: a metadata-free JPEG re-encoded from decoded pixels."""

    data: bytes = field(repr=False)
    width: int
    height: int
    content_type: str = "image/jpeg"
    masked: int = 0  # card numbers (or a card back's digit groups) painted over


@dataclass(frozen=True)
class QualityWarning:
    """A hint for the customer (not a rejection); ``page`` is 1-based like Document.page."""

    code: str
    message: str
    page: int = 1


@dataclass(frozen=True)
class ProcessedUpload:
    """The result of the pipeline: what was sent, the clean pages, and quality hints."""

    source_type: str
    pages: list[ProcessedImage]
    warnings: list[QualityWarning]


def reject(code: str, **details: object) -> UploadRejected:
    """Return the UploadRejected for ``code`` with its customer-facing message."""
    error = UploadRejected(_MESSAGES[code].format(**details), code=code)
    # The portal translates the template and fills it again (verifier.portal.views).
    error.template, error.details = _MESSAGES[code], details
    return error


_MESSAGES = {
    "empty_file": N_("The file is empty. Please choose the photo or PDF again and re-upload it."),
    "too_large": N_(
        "This file is too large (the limit is {megabytes} MB). Please upload a smaller "
        "photo, or a PDF under {megabytes} MB."
    ),
    "type_not_allowed": N_(
        "This type of file isn't accepted. Please upload a photo (JPEG, PNG, WebP or HEIC) "
        "or a PDF."
    ),
    "too_many_pixels": N_(
        "This image has too many pixels for us to process. Please upload a smaller photo, "
        "or a screenshot of the document."
    ),
    "unreadable": N_(
        "We couldn't read this file; it may be damaged or incomplete. Please take the photo "
        "again (or save the file again) and re-upload it."
    ),
    "pdf_encrypted": N_(
        "This PDF is password-protected. Please upload a copy without a password, "
        "or a photo or screenshot of the document."
    ),
    "too_many_pages": N_(
        "This PDF has more pages than we accept. Please upload only the pages we asked for "
        "(at most {pages}), or a photo of each page."
    ),
    "decoder_limit": N_(
        "We're already processing several of your files. Please wait until they finish, "
        "then send this one again; nothing is wrong with it."
    ),
    "decoder_busy": N_(
        "We're processing a lot of files right now. Please wait a moment and send this one "
        "again; nothing is wrong with it."
    ),
    "decoder_failed": N_(
        "We couldn't process this file. Please try again, or upload a different photo or "
        "a PDF of the document."
    ),
    "masking_unavailable": N_(
        "We can't take documents right now because of a problem on our side. Nothing is "
        "wrong with your file; please try again later."
    ),
}

_WARNINGS = {
    "too_small": N_(
        "This image is quite small, so the details may be hard to read. If you can, "
        "upload a larger photo or scan."
    ),
    "too_dark": N_("This image looks very dark. If you can, take the photo again in better light."),
    "blurry": N_(
        "This image looks blurry. If you can, take the photo again with the document in "
        "focus, holding the camera steady."
    ),
}


def sniff_type(data: bytes) -> str:
    """Return the sniffed MIME type if it is on the allow-list, else raise UploadRejected."""
    mime = magic.from_buffer(data[: 64 * 1024], mime=True)
    if mime != PDF_TYPE and mime not in _IMAGE_TYPES:
        raise reject("type_not_allowed")
    return mime


def decode_upload(data: bytes, limits: PipelineLimits = DEFAULT_LIMITS) -> ProcessedUpload:
    """Turn uploaded bytes into clean JPEG pages plus quality warnings; raise UploadRejected."""
    mime = sniff_type(data)
    if mime == PDF_TYPE:
        admission.check_pdf_cost(data, limits.max_pdf_inflated_bytes)
        source_type, images = PDF_TYPE, _render_pdf(data, limits)
    else:
        source_type, formats = _IMAGE_TYPES[mime]
        images = [_decode_image(data, formats, limits)]
    pages, found = [], []
    for number, image in enumerate(images, start=1):
        # Orientation is applied after downscaling: rotating the smaller image is cheaper.
        clean = _apply_orientation(image, _normalise(image, limits.max_edge))
        found.extend(check_quality(clean, limits, page=number))
        masked = _mask_cards(clean, limits.document_kind)
        pages.append(_encode_jpeg(clean, limits.jpeg_quality, masked))
    return ProcessedUpload(source_type=source_type, pages=pages, warnings=found)


def check_quality(
    image: Image.Image, limits: PipelineLimits = DEFAULT_LIMITS, *, page: int = 1
) -> list[QualityWarning]:
    """Return warnings for a small, dark or blurry image, measured on a grayscale thumbnail."""
    found = []
    if max(image.size) < limits.min_edge:
        found.append(QualityWarning("too_small", _WARNINGS["too_small"], page))
    gray = image.convert("L")
    if max(gray.size) > _ANALYSIS_EDGE:
        # A fixed analysis size keeps the blur threshold independent of the upload's size.
        gray.thumbnail((_ANALYSIS_EDGE, _ANALYSIS_EDGE), Image.Resampling.BOX)
    if ImageStat.Stat(gray).mean[0] < _DARK_MEAN_MAX:
        found.append(QualityWarning("too_dark", _WARNINGS["too_dark"], page))
    if gray.width > 2 and gray.height > 2:
        # Pillow leaves the 1-px border unfiltered; crop it or it dominates the variance.
        edges = gray.filter(_LAPLACIAN).crop((1, 1, gray.width - 1, gray.height - 1))
        if ImageStat.Stat(edges).var[0] < _BLUR_VARIANCE_MIN:
            found.append(QualityWarning("blurry", _WARNINGS["blurry"], page))
    return found


def _decode_image(data: bytes, formats: tuple[str, ...], limits: PipelineLimits) -> Image.Image:
    """Open with only ``formats``, refuse oversized headers before decoding, then load pixels."""
    if "HEIF" in formats:
        _register_heif()
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
        width, height = image.size
        # Decided from the header alone: nothing has been decompressed yet.
        if width * height > limits.max_pixels:
            raise reject("too_many_pixels")
        admission.check_image_cost(
            len(data), width, height, limits.sparse_check_pixels, limits.min_bytes_per_megapixel
        )
        if image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that much smaller.
            # draft() never goes below the size asked for; asking for a little less than
            # max_edge lets a 4032 px photo decode at half scale (2016 px) for a 2048 target.
            image.draft("RGB", _fit((width, height), int(limits.max_edge * _DRAFT_SLACK)))
        image.load()
        return image
    except Image.DecompressionBombError:
        raise reject("too_many_pixels") from None
    except _DECODE_ERRORS as exc:
        raise reject("unreadable") from exc


_ORIENTATION_TAG = 0x0112
_DRAFT_SLACK = 0.9
_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(source: Image.Image, image: Image.Image) -> Image.Image:
    """Turn `image` (a downscaled copy of `source`) the way `source`'s EXIF says to show it."""
    try:
        orientation = source.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        # A broken EXIF block is no reason to refuse a readable photo; metadata is dropped.
        return image
    for method in _TRANSPOSE.get(orientation, ()):
        image = image.transpose(method)
    return image


def _render_pdf(data: bytes, limits: PipelineLimits) -> list[Image.Image]:
    """Render each page (at most max_pdf_pages) to an RGB image fitting max_edge."""
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code in (pdfium_raw.FPDF_ERR_PASSWORD, pdfium_raw.FPDF_ERR_SECURITY):
                raise reject("pdf_encrypted") from None
            raise reject("unreadable") from exc
        try:
            count = len(pdf)
            if count == 0:
                raise reject("unreadable")
            if count > limits.max_pdf_pages:
                raise reject("too_many_pages", pages=limits.max_pdf_pages)
            return [_render_page(pdf, number, limits) for number in range(count)]
        except pdfium.PdfiumError as exc:
            raise reject("unreadable") from exc
        finally:
            pdf.close()


def _render_page(pdf: pdfium.PdfDocument, number: int, limits: PipelineLimits) -> Image.Image:
    page = pdf[number]
    try:
        width_pt, height_pt = page.get_size()
        longest_pt = max(width_pt, height_pt, 1.0)
        scale = min(limits.pdf_render_dpi / 72, limits.max_edge / longest_pt)
        bitmap = page.render(scale=scale, may_draw_forms=False)
        try:
            # to_pil() shares the bitmap's buffer; copy before the bitmap is freed.
            shared: Image.Image = bitmap.to_pil()
            return shared.convert("RGB")
        finally:
            bitmap.close()
    finally:
        page.close()


def _normalise(image: Image.Image, max_edge: int) -> Image.Image:
    """Return a fresh RGB image (no info, no metadata), alpha on white, longest edge <= max."""
    rgb = _to_rgb(image)
    size = _fit(rgb.size, max_edge)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    # A new image carries no info dict: no EXIF, ICC, XMP or JPEG comment can ride along
    # (Pillow's JPEG writer copies im.info["comment"], which is where polyglots hide).
    clean = Image.new("RGB", rgb.size)
    clean.paste(rgb)
    return clean


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # 16-bit scans: scale to 8 bits instead of letting convert() clip them to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "P" or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _fit(size: tuple[int, int], max_edge: int) -> tuple[int, int]:
    width, height = size
    longest = max(width, height)
    if longest <= max_edge:
        return width, height
    ratio = max_edge / longest
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _mask_cards(image: Image.Image, kind: str | None) -> int:
    """Paint over card numbers in place (before any encoding); fail closed without OCR."""
    try:
        return cardmask.mask_page(image, kind)[1]
    except cardmask.OcrUnavailable as exc:
        raise reject("masking_unavailable") from exc


def _encode_jpeg(image: Image.Image, quality: int, masked: int = 0) -> ProcessedImage:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return ProcessedImage(out.getvalue(), image.width, image.height, masked=masked)


def _register_heif() -> None:
    global _heif_registered
    with _HEIF_LOCK:
        if not _heif_registered:
            import pillow_heif  # deferred: loads libheif only where HEIC is actually decoded

            pillow_heif.register_heif_opener()
            _heif_registered = True


def preload() -> None:
    """In the decoder supervisor, once: load the decoder libraries, the magic database and
    the OCR engine, so every decoder forked from it shares them (copy on write)."""
    heap.limit_arenas()
    # A core file of a decoder would put a customer's document on disk in plaintext.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _register_heif()
    magic.from_buffer(b"\xff\xd8\xff", mime=True)
    with contextlib.suppress(cardmask.OcrUnavailable):  # then each job is refused, and says why
        cardmask.load_engine()
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def sandbox(memory_bytes: int, cpu_seconds: int) -> None:
    """In a decoder, before its first job: cap address space and CPU time, no core dumps."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _arm_cpu_limit(cpu_seconds)


def run_job(data: bytes, limits: PipelineLimits) -> ProcessedUpload:
    """Worker entry point: re-arm the CPU budget and pixel cap, then run decode_upload."""
    _arm_cpu_limit(limits.worker_cpu_seconds)
    # Safe to set per job: a worker process runs one job at a time.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    # The job's peak (a decoded photo, OCR's tensors: ~150 MB) goes back to the system once
    # the decoder is idle, or it would keep it resident: 280 MB at rest instead of 140 MB.
    with heap.job():
        return decode_upload(data, limits)


def _arm_cpu_limit(cpu_seconds: int) -> None:
    # RLIMIT_CPU counts the process's whole life, so each job gets its budget on top of
    # what earlier jobs used; SIGXCPU at the soft limit kills the worker.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _crash_for_test() -> None:
    """Test hook: die the way a segfaulting decoder would, without cleanup."""
    os._exit(70)


def _sleep_for_test(seconds: float) -> None:
    """Test hook: hang like a decoder stuck on a hostile file."""
    time.sleep(seconds)
