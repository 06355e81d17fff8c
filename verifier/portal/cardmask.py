"""Card numbers painted over inside the decoder, before a page is encrypted.

A page is read with RapidOCR (PP-OCRv4 models shipped in the rapidocr-onnxruntime wheel, so
nothing is downloaded at run time) on a downscaled copy. Digits are chained along each text
line and across neighbouring words, so 4-4-4-4, 4-6-5 and any other grouping reads as one
run. A run of 13-19 digits that passes the Luhn check is painted over with solid boxes except
its last four digits, in any slot; on the card slots a run of that length is painted even
when Luhn fails (one misread digit must not leave a number readable). On a card back every
group of two or more digits (the security code, a printed number) is painted too; the rest,
the signature strip included, is left; a back on which no lone 3-4 digit group was found is
read again from a locally equalised (CLAHE) copy, for a dark code on a dark card. Nothing
here imports Flask or writes to disk.
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

CARD_SLOTS = frozenset({"card_front", "card_back"})
# The OCR copy's longest edge: recognition crops its lines from this copy, detection works on
# a smaller one still (DETECT_EDGE). Card digits are 4-7 % of a card's width, so at 800 px
# they are 20-40 px tall, enough for PP-OCR; more costs time and finds nothing more.
OCR_EDGE = 800
DETECT_EDGE = 512
THREADS = 1
# Lines recognised per page at most (the tallest): a card has fewer; bounds the cost of a
# page full of text (about 0.1 s a line).
MAX_LINES = 8
READ_BUDGET = 80.0  # sum of the lines' length / height: a card is 40-60
# A card number, however grouped, is at most about 20 line heights long; body text more.
MAX_LINE_LENGTH = 26.0
MIN_RUN, MAX_RUN, KEEP = 13, 19, 4
CODE_DIGITS = (3, 4)  # a security code's length
# The card-back second reading: equalisation's clip limit and tiles across the copy (at
# 800 px, tiles of about 33 px, a code's height).
CLAHE_CLIP = 8.0
CLAHE_TILES = 24
_BOX_FILL = (24, 24, 24)
# Characters OCR reads for digits on embossed or stylised card fonts.
_LOOKALIKE = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "l": "1", "I": "1",
                            "|": "1", "i": "1", "Z": "2", "S": "5", "s": "5", "B": "8",
                            "G": "6", "b": "6", "g": "9", "q": "9", "A": "4"})  # fmt: skip


class OcrUnavailable(RuntimeError):
    """The OCR engine cannot be loaded: pages cannot be checked for card numbers."""


@dataclass(frozen=True)
class Glyph:
    """One recognised character with its box in the OCR copy, and where words and lines begin."""

    char: str
    box: tuple[int, int, int, int]
    word: int
    line: int


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn (mod 10) check."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def find_card_runs(
    digits: str, *, strict: bool, groups: frozenset[int] | None = None
) -> list[tuple[int, int]]:
    """The [start, end) spans of card numbers in a digit chain: 13-19 digits passing Luhn,
    longest first, not overlapping.

    `groups` holds the offsets where a printed group (an OCR word) begins; when `strict`
    (a slot that is not a card) a span must start and end on them, since a card number is
    whole groups: a 14-digit reference fails Luhn as a whole, and one of its 13-digit slices
    passing by chance (1 in 10) is no card. Not strict (the card slots), any slice counts,
    and a chain of 12-21 digits is covered whole, Luhn or not: OCR misread, added or dropped
    a digit of the number.
    """
    if not strict and MIN_RUN - 1 <= len(digits) <= MAX_RUN + 2:
        # The whole chain, so a digit OCR added or dropped cannot shift the cover off it.
        return [(0, len(digits))]
    bounds = (groups or frozenset()) | {0, len(digits)}
    found: list[tuple[int, int]] = []
    start = 0
    while start + MIN_RUN <= len(digits):
        if strict and start not in bounds:
            start += 1
            continue
        for length in range(min(MAX_RUN, len(digits) - start), MIN_RUN - 1, -1):
            if strict and start + length not in bounds:
                continue
            if luhn_ok(digits[start : start + length]):
                found.append((start, start + length))
                start += length
                break
        else:
            start += 1
    return found


def mask_page(image: Image.Image, kind: str | None) -> tuple[Image.Image, int]:
    """Paint over card numbers (and on a card back every digit group) in `image`, in place;
    returns the image and how many numbers or groups were covered. Raises OcrUnavailable."""
    glyphs, scale = read_glyphs(image)
    items = covered_items(glyphs, kind)
    boxes = plan_boxes(glyphs, items, wide=kind == "card_back")
    count = len(items)
    if kind == "card_back" and not _has_code(glyphs):
        # No lone group of 3-4 digits: the code may be printed dark on a dark card, where
        # detection sees nothing. A second reading of a locally equalised copy finds it.
        again, _ = read_glyphs(image, equalise=True)
        more = covered_items(again, kind)
        count += sum(1 for item in more if not _already_covered(again, item, boxes))
        boxes += plan_boxes(again, more, wide=True)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.rectangle(_to_page(box, scale, image.size), fill=_BOX_FILL)
    return image, count


def _has_code(glyphs: list[Glyph]) -> bool:
    """Whether a digit group that reads as a security code (3 or 4 digits on their own) was
    found."""
    return any(CODE_DIGITS[0] <= len(chain) <= CODE_DIGITS[1] for chain in _digit_chains(glyphs))


def _already_covered(
    glyphs: list[Glyph], item: set[int], boxes: list[tuple[int, int, int, int]]
) -> bool:
    return all(any(_overlap(glyphs[i].box, box) > 0.5 for box in boxes) for i in item)


def plan_boxes(
    glyphs: list[Glyph], items: list[set[int]], *, wide: bool = False
) -> list[tuple[int, int, int, int]]:
    """Boxes (OCR-copy pixels) to paint: per OCR word, the digits that must not be seen;
    `wide` reaches a character further each side (a security code's digit OCR missed)."""
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for index in sorted(set().union(*items) if items else ()):
        groups.setdefault(glyphs[index].word, []).append(glyphs[index].box)
    return [_pad(_union(boxes), wide) for boxes in groups.values()]


def covered_items(glyphs: list[Glyph], kind: str | None) -> list[set[int]]:
    items: list[set[int]] = []
    strict = kind not in CARD_SLOTS
    for chain in _digit_chains(glyphs):
        digits = "".join(glyphs[i].char for i in chain)
        groups = frozenset(
            n for n in range(1, len(chain)) if glyphs[chain[n]].word != glyphs[chain[n - 1]].word
        )
        for start, end in find_card_runs(digits, strict=strict, groups=groups):
            items.append(set(chain[start : end - KEEP]))
    if kind == "card_back":
        covered = set().union(*items) if items else set()
        words: dict[int, list[int]] = {}
        for index, glyph in enumerate(glyphs):
            if glyph.char.isdigit():
                words.setdefault(glyph.word, []).append(index)
        for indexes in words.values():
            if len(indexes) >= 2 and not set(indexes) <= covered:
                items.append(set(indexes))
    return items


def _digit_chains(glyphs: list[Glyph]) -> list[list[int]]:
    """Indexes of digits that read as one number: consecutive on a line, across words that are
    separated only by spaces or dashes and a gap of at most two character widths."""
    chains: list[list[int]] = []
    current: list[int] = []
    for index, glyph in enumerate(glyphs):
        char = glyph.char
        if char.isdigit():
            if current and not _continues(glyphs[current[-1]], glyph):
                chains.append(current)
                current = []
            current.append(index)
        elif char not in "-\u2013" and current:
            chains.append(current)
            current = []
    if current:
        chains.append(current)
    return _join_chains(glyphs, chains)


def _join_chains(glyphs: list[Glyph], chains: list[list[int]]) -> list[list[int]]:
    """Join chains that OCR put on different lines although one reads on from the other (a
    tilted number cut in two, with the expiry date read in between)."""
    joined = True
    while joined:
        joined = False
        for a, b in itertools.permutations(range(len(chains)), 2):
            first, second = chains[a], chains[b]
            while second and _overlap(glyphs[first[-1]].box, glyphs[second[0]].box) > 0.5:
                second = second[1:]  # the same digit, read on both lines
            if (
                second
                and glyphs[first[-1]].line != glyphs[second[0]].line
                and _continues(glyphs[first[-1]], glyphs[second[0]])
            ):
                chains[a] = first + second
                del chains[b]
                joined = True
                break
    return chains


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The share of the smaller box that the two boxes have in common."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / max(smaller, 1)


def _continues(previous: Glyph, glyph: Glyph) -> bool:
    """Whether `glyph` reads on from `previous`: the same word, or the next word to its right
    on the same line (OCR may cut one printed line into several), within a gap."""
    if previous.word == glyph.word:
        return True
    height = max(previous.box[3] - previous.box[1], glyph.box[3] - glyph.box[1], 1)
    gap = glyph.box[0] - previous.box[2]
    if not -0.5 * height <= gap <= 2.5 * height:
        return False
    # Up to about 15 degrees of tilt between neighbouring digits, plus half a line of slack.
    rise = abs((glyph.box[1] + glyph.box[3]) - (previous.box[1] + previous.box[3])) / 2
    return rise <= 0.5 * height + 0.3 * max(gap, 0)


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


def _pad(box: tuple[int, int, int, int], wide: bool = False) -> tuple[int, int, int, int]:
    # Symbol boxes hug the ink; embossed digits carry a shadow beyond it.
    x0, y0, x1, y1 = box
    pad = max(3, (y1 - y0) // 4)
    side = pad + (y1 - y0) if wide else pad
    return x0 - side, y0 - pad, x1 + side, y1 + pad


def _to_page(
    box: tuple[int, int, int, int], scale: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (round(v / scale) for v in box)
    return max(0, x0), max(0, y0), min(size[0] - 1, x1), min(size[1] - 1, y1)


def read_glyphs(image: Image.Image, *, equalise: bool = False) -> tuple[list[Glyph], float]:
    """OCR a downscaled copy of `image`: its characters, and the copy's scale. `equalise`
    reads a copy whose contrast was equalised locally (CLAHE) first."""
    scale = min(1.0, OCR_EDGE / max(image.size))
    small = image.convert("RGB")
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = small.resize(size, Image.Resampling.BILINEAR)
    if equalise:
        small = _equalise(small)
    return _engine().read(small), scale


def _equalise(image: Image.Image) -> Image.Image:
    """Contrast-limited adaptive histogram equalisation of the lightness, in tiles about the
    size of a security code, so dark print on a dark card stands out from it."""
    import cv2
    import numpy as np

    lab = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_TILES, CLAHE_TILES))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


class _RapidOcr:
    """RapidOCR (PP-OCRv4 detection and recognition in ONNX Runtime, models in the wheel), one
    per process, loaded once; calls are serialised."""

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]
            from rapidocr_onnxruntime.ch_ppocr_det.utils import (  # type: ignore[import-untyped]
                DetPreProcess,
            )
        except ImportError as exc:  # the wheel or ONNX Runtime is missing or broken
            raise OcrUnavailable(f"rapidocr-onnxruntime cannot be loaded: {exc}") from exc
        self._lock = threading.Lock()
        # No angle classifier: it only tells upright from upside-down text, which a photo
        # turned by the phone's EXIF already is. One ONNX thread per session: the decoders
        # already run side by side, one per core, and more threads only spin against them.
        self._ocr = RapidOCR(
            use_cls=False,
            det_limit_side_len=DETECT_EDGE,
            det_limit_type="max",
            intra_op_num_threads=THREADS,
            inter_op_num_threads=1,
        )
        detector = self._ocr.text_det
        # RapidOCR 1.4 turns a "max" limit into 960 px or more whatever is configured, so the
        # 800 px copy was detected at 800: the limit is applied here as configured.
        fixed = DetPreProcess(DETECT_EDGE, "max", detector.mean, detector.std)
        detector.get_preprocess = lambda _longest: fixed
        self._batch_rec = self._ocr.text_rec
        self._ocr.text_rec = _SingleLines(self._batch_rec)
        detect = self._ocr.auto_text_det

        def largest_lines(image: Any) -> tuple[Any, float]:
            # Recognition cost grows faster than a line's length (its model mixes the whole
            # line): a long line of body text takes a second or more, a page of them many. A
            # card's number is among its largest text and short, so the tallest short lines are
            # read, up to a budget of lengths (in line heights) that a whole card fits in.
            boxes, elapsed = detect(image)
            if boxes is None:
                return boxes, elapsed
            sizes = [_extent(box) for box in boxes]
            keep: list[int] = []
            budget = READ_BUDGET
            for i in sorted(range(len(boxes)), key=lambda i: -sizes[i][1]):
                length = sizes[i][0] / max(sizes[i][1], 1.0)
                if length > MAX_LINE_LENGTH or len(keep) >= MAX_LINES or length > budget:
                    continue
                keep.append(i)
                budget -= length
            if not keep:
                return None, elapsed
            return [boxes[i] for i in sorted(keep)], elapsed

        self._ocr.auto_text_det = largest_lines

    def read(self, image: Image.Image) -> list[Glyph]:
        import numpy as np

        with self._lock:
            result, _ = self._ocr(np.asarray(image), use_cls=False, return_word_box=True)
        glyphs: list[Glyph] = []
        word = 0
        for line, entry in enumerate(result or ()):
            if len(entry) < 5:
                continue
            quads, chars = entry[3], entry[4]
            word += 1
            for quad, char in zip(quads, chars, strict=False):
                char = str(char).strip()
                if not char:
                    word += 1
                    continue
                xs, ys = [p[0] for p in quad], [p[1] for p in quad]
                box = (int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1)
                glyphs.append(Glyph(char, box, word, line))
        return _read_lookalikes(glyphs)


class _SingleLines:
    """RapidOCR's recogniser, given one line at a time at its own width. Batched, every line is
    padded to the widest of its batch and to at least 320 px (a 3-digit code read as wide as
    the card number): the model's cost is the padded width, so most of it went on padding."""

    def __init__(self, recogniser: Any) -> None:
        self._rec = recogniser
        recogniser.rec_batch_num = 1
        channels, height, _ = recogniser.rec_image_shape
        recogniser.rec_image_shape = [channels, height, height]  # pad to a square at most

    def __call__(self, crops: list[Any], return_word_box: bool = False) -> tuple[list[Any], float]:
        results: list[Any] = []
        elapsed = 0.0
        for crop in crops:
            result, seconds = self._rec([crop], return_word_box)
            results.extend(result)
            elapsed += seconds
        return results, elapsed


def _extent(box: Any) -> tuple[float, float]:
    """Width and height of a detected line's quadrilateral."""
    xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
    return max(xs) - min(xs), max(ys) - min(ys)


def _read_lookalikes(glyphs: list[Glyph]) -> list[Glyph]:
    """In words that are mostly digits, read O as 0, l as 1, S as 5 and so on."""
    words: dict[int, list[Glyph]] = {}
    for glyph in glyphs:
        words.setdefault(glyph.word, []).append(glyph)
    out = []
    for members in words.values():
        digits = sum(g.char.isdigit() for g in members)
        mostly = digits >= 2 and digits * 2 >= len(members)
        for g in members:
            char = g.char.translate(_LOOKALIKE) if mostly and len(g.char) == 1 else g.char
            out.append(Glyph(char, g.box, g.word, g.line))
    return out


_engine_lock = threading.Lock()
_engine_instance: _RapidOcr | None = None


def _engine() -> _RapidOcr:
    global _engine_instance
    with _engine_lock:
        if _engine_instance is None:
            _engine_instance = _RapidOcr()
        return _engine_instance


def load_engine() -> None:
    """Load the OCR engine now (a decoder's start-up), so the first upload does not pay for
    it; raises OcrUnavailable."""
    _engine()


def check_engine() -> str | None:
    """None when the OCR engine and its models are installed, else what is missing; cheap
    (nothing is loaded), for a readiness probe of a web process."""
    origins = {}
    for package in ("onnxruntime", "rapidocr_onnxruntime"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return f"{package} is not installed: card photos are refused"
        origins[package] = spec.origin
    models = Path(origins["rapidocr_onnxruntime"]).parent / "models"
    if not any(models.glob("*det*.onnx")) or not any(models.glob("*rec*.onnx")):
        return "the OCR models are missing: card photos are refused"
    return None
