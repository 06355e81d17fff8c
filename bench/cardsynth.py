"""Synthetic card photos and documents for the card-masking benchmark and tests.

Every card comes with a label image: the pixels of each digit of its number (and of a card
back's security code) carry that digit's index + 1, turned and placed exactly like the card,
so a check can tell whether each digit's ink ended under a box.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = [
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerifCondensed.ttf",
]
GROUPINGS = {13: (4, 4, 5), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}
PREFIXES = {13: "4", 15: "37", 16: "4", 19: "6"}


def font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == "pillow-default":
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(FONT_DIR / name), size)


def available_fonts() -> list[str]:
    return [name for name in FONTS if (FONT_DIR / name).exists()] + ["pillow-default"]


def luhn_number(rng: random.Random, length: int, prefix: str = "4") -> str:
    """A random number of `length` digits starting with `prefix` that passes Luhn."""
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if _luhn(body + check):
            return body + check
    raise AssertionError("unreachable")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@dataclass
class Sample:
    """One generated image, what it shows, and which label values must end up covered."""

    image: Image.Image
    kind: str
    number: str = ""
    labels: Image.Image | None = None
    hidden: list[int] = field(default_factory=list)  # label values that must be covered
    shown: list[int] = field(default_factory=list)  # label values that should stay visible
    style: str = ""


@dataclass
class Style:
    dark: bool
    embossed: bool
    font: str
    angle: float
    blur: float
    glare: bool
    scale: float


def random_style(rng: random.Random, fonts: list[str]) -> Style:
    return Style(
        dark=rng.random() < 0.45,
        embossed=rng.random() < 0.35,
        font=rng.choice(fonts),
        angle=rng.uniform(-15, 15),
        blur=rng.choice([0, 0, 0.6, 1.0, 1.4]),
        glare=rng.random() < 0.3,
        scale=rng.uniform(0.7, 1.6),
    )


def card_front(rng: random.Random, style: Style, length: int = 16, number: str = "") -> Sample:
    """A card front: bank name, chip, number in its usual grouping, name, expiry."""
    number = number or luhn_number(rng, length, PREFIXES[length])
    w, h = round(1012 * style.scale), round(638 * style.scale)
    card, labels, draw, ldraw, ink, paper = _blank_card(rng, style, w, h)
    small = font(style.font, max(12, h // 16))
    draw.text((w * 0.07, h * 0.08), rng.choice(["NORTHERN BANK", "Acme Credit", "CITY SAVINGS"]),
              font=font(style.font, h // 11), fill=ink)  # fmt: skip
    draw.rounded_rectangle((w * 0.1, h * 0.3, w * 0.22, h * 0.45), radius=8, fill=(200, 170, 90))
    size = round(w * rng.uniform(0.052, 0.068))
    number_font = font(style.font, size)
    groups = GROUPINGS[len(number)]
    while _span(number_font, len(number), len(groups)) > w * 0.86:  # long numbers print smaller
        size -= 2
        number_font = font(style.font, size)
    x, y = w * 0.08, h * 0.55
    index = 0
    for group in GROUPINGS[len(number)]:
        for _ in range(group):
            char = number[index]
            _draw_digit(draw, ldraw, (x, y), char, number_font, ink, paper, style, index + 1)
            x += number_font.getlength(char) * 1.08
            index += 1
        x += number_font.getlength("0") * 0.9
    draw.text((w * 0.08, h * 0.72), f"VALID THRU {rng.randint(1, 12):02d}/{rng.randint(26, 33)}",
              font=small, fill=ink)  # fmt: skip
    draw.text((w * 0.08, h * 0.84), rng.choice(["J SMITH", "MARIA GARCIA", "A N OTHER"]),
              font=small, fill=ink)  # fmt: skip
    image, labels = _photograph(rng, style, card, labels)
    n = len(number)
    return Sample(image, "card_front", number, labels, list(range(1, n - 3)),
                  list(range(n - 3, n + 1)), _describe(style, n))  # fmt: skip


def card_back(rng: random.Random, style: Style, cvc: str = "") -> Sample:
    """A card back: magnetic stripe, signature strip with the security code, small print."""
    cvc = cvc or "".join(rng.choice("0123456789") for _ in range(3))
    w, h = round(1012 * style.scale), round(638 * style.scale)
    card, labels, draw, ldraw, ink, paper = _blank_card(rng, style, w, h)
    draw.rectangle((0, h * 0.1, w, h * 0.28), fill=(15, 15, 15))
    draw.rectangle((w * 0.06, h * 0.38, w * 0.7, h * 0.52), fill=(235, 235, 225))
    for i in range(8):
        draw.line((w * 0.06 + i * w * 0.08, h * 0.38, w * 0.1 + i * w * 0.08, h * 0.52),
                  fill=(210, 200, 190), width=2)  # fmt: skip
    code_font = font(style.font, round(h * 0.08))
    x = w * 0.74
    for i, char in enumerate(cvc):
        _draw_digit(draw, ldraw, (x, h * 0.4), char, code_font, (20, 20, 20), paper,
                    Style(False, False, style.font, 0, 0, False, 1), i + 1)  # fmt: skip
        x += code_font.getlength(char) * 1.05
    small = font(style.font, max(11, h // 22))
    draw.text((w * 0.06, h * 0.62), "AUTHORISED SIGNATURE - NOT VALID UNLESS SIGNED",
              font=small, fill=ink)  # fmt: skip
    draw.text((w * 0.06, h * 0.72), f"Customer service 0800 {rng.randint(100, 999)} "
              f"{rng.randint(1000, 9999)}", font=small, fill=ink)  # fmt: skip
    image, labels = _photograph(rng, style, card, labels)
    return Sample(image, "card_back", cvc, labels, list(range(1, len(cvc) + 1)), [],
                  "back " + _describe(style, len(cvc)))  # fmt: skip


def _blank_card(rng: random.Random, style: Style, w: int, h: int):
    if style.dark:
        paper = tuple(rng.randint(10, 70) for _ in range(3))
        ink = (235, 235, 235) if not style.embossed else tuple(min(255, c + 70) for c in paper)
    else:
        paper = tuple(rng.randint(170, 245) for _ in range(3))
        ink = (20, 20, 40) if not style.embossed else tuple(max(0, c - 90) for c in paper)
    card = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(card)
    for _i in range(6):  # a soft printed pattern, as most cards have
        tint = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in paper)
        draw.ellipse((rng.uniform(0.3, 1) * w, rng.uniform(-0.5, 0.5) * h,
                      rng.uniform(1, 1.6) * w, rng.uniform(0.5, 1.5) * h), fill=tint)  # fmt: skip
    labels = Image.new("L", (w, h), 0)
    ldraw = ImageDraw.Draw(labels)
    ldraw.fontmode = "1"  # no anti-aliasing: every label pixel holds exactly its digit's value
    return card, labels, draw, ldraw, ink, paper


def _span(fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, digits: int, groups: int) -> float:
    zero = fnt.getlength("0")
    return digits * zero * 1.08 + (groups - 1) * zero * 0.9


def _draw_digit(draw, ldraw, xy, char, fnt, ink, paper, style, label):
    x, y = xy
    if style.embossed:
        # Raised digits: a light edge up-left, a shadow down-right, the face in the card's tint.
        off = max(1, round(fnt.size * 0.05))
        light = tuple(min(255, c + 60) for c in paper)
        dark = tuple(max(0, c - 80) for c in paper)
        draw.text((x - off, y - off), char, font=fnt, fill=light)
        draw.text((x + off, y + off), char, font=fnt, fill=dark)
    draw.text((x, y), char, font=fnt, fill=ink)
    ldraw.text((x, y), char, font=fnt, fill=label)


def _photograph(rng, style, card, labels):
    """Put the card on a table, turn it, blur it, add glare: what a phone camera gives."""
    margin = round(max(card.size) * rng.uniform(0.08, 0.25))
    table = tuple(rng.randint(60, 200) for _ in range(3))
    canvas = Image.new("RGB", (card.width + 2 * margin, card.height + 2 * margin), table)
    canvas = Image.blend(canvas, Image.effect_noise(canvas.size, 30).convert("RGB"), 0.15)
    canvas.paste(card, (margin, margin))
    lcanvas = Image.new("L", canvas.size, 0)
    lcanvas.paste(labels, (margin, margin))
    canvas = canvas.rotate(style.angle, Image.Resampling.BICUBIC, expand=True, fillcolor=table)
    lcanvas = lcanvas.rotate(style.angle, Image.Resampling.NEAREST, expand=True)
    if style.glare:
        glare = Image.new("L", canvas.size, 0)
        gx, gy = rng.uniform(0.2, 0.8) * canvas.width, rng.uniform(0.2, 0.8) * canvas.height
        r = canvas.width * rng.uniform(0.08, 0.18)
        ImageDraw.Draw(glare).ellipse((gx - r, gy - r * 0.6, gx + r, gy + r * 0.6), fill=150)
        glare = glare.filter(ImageFilter.GaussianBlur(r / 3))
        canvas = Image.composite(Image.new("RGB", canvas.size, "white"), canvas, glare)
    if style.blur:
        canvas = canvas.filter(ImageFilter.GaussianBlur(style.blur * style.scale))
    return canvas, lcanvas


def _describe(style: Style, digits: int) -> str:
    return (f"{digits} digits, {style.font}, {'dark' if style.dark else 'light'}"
            f"{', embossed' if style.embossed else ''}, {style.angle:+.0f} deg, blur {style.blur}"
            f"{', glare' if style.glare else ''}")  # fmt: skip


def not_luhn(rng: random.Random, length: int) -> str:
    while True:
        digits = "".join(rng.choice("0123456789") for _ in range(length))
        if not _luhn(digits):
            return digits


def document(rng: random.Random, fonts: list[str]) -> Sample:
    """An ID card or a bill: dates, phone numbers, amounts, reference numbers, no card number."""
    w, h = (1400, 900) if rng.random() < 0.5 else (1240, 1754)
    kind = "photo_id" if w > h else "proof_of_address"
    page = Image.new("RGB", (w, h), tuple(rng.randint(225, 255) for _ in range(3)))
    draw = ImageDraw.Draw(page)
    fnt = font(rng.choice(fonts), rng.randint(24, 34))
    lines = _id_lines(rng) if kind == "photo_id" else _bill_lines(rng)
    y = 60
    for line in lines:
        draw.text((60, y), line, font=fnt, fill=(20, 20, 20))
        y += round(fnt.size * 1.8)
        if y > h - 80:
            break
    if kind == "photo_id":
        draw.rectangle((w - 420, 60, w - 60, 520), fill=(150, 140, 130))
    angle = rng.uniform(-8, 8)
    page = page.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 90, 90))
    return Sample(page, kind, style=f"{kind}, {angle:+.0f} deg")


def _id_lines(rng: random.Random) -> list[str]:
    dob = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1950, 2004)}"
    return [
        "DRIVING LICENCE",
        f"1. SMITH  2. JOHN {rng.choice(['PAUL', 'ANN', 'LEE'])}",
        f"3. {dob} UNITED KINGDOM",
        f"4a. {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2019  4b. 11.07.2029",
        f"5. SMITH{rng.randint(100000, 999999)}JP9AB {rng.randint(10, 99)}",
        f"Document no. {not_luhn(rng, 9)}",
        "P<GBRSMITH<<JOHN<<<<<<<<<<<<<<<<<<<<<<<<<<<<",
        f"{not_luhn(rng, 9)}4GBR{dob[-2:]}0312{rng.randint(0, 9)}M290711"
        f"{rng.randint(0, 9)}<<<<<<<<<<<<<<04",
    ]  # fmt: skip


def _bill_lines(rng: random.Random) -> list[str]:
    ref = not_luhn(rng, rng.choice([10, 12, 14, 16]))
    groups = " ".join(ref[i : i + 4] for i in range(0, len(ref), 4))
    return [
        "City Energy Ltd  -  Your electricity bill",
        "Mr J Smith, 12 High Street, Leeds LS1 4AB",
        f"Bill date {rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2026",
        f"Account number {rng.randint(10_000_000, 99_999_999)}",
        f"Reference {groups}",
        f"Phone 0{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}",
        f"Sort code {rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}",
        f"Previous balance  £{rng.randint(10, 999)}.{rng.randint(0, 99):02d}",
        f"Payments received  £{rng.randint(10, 999)}.{rng.randint(0, 99):02d}",
        f"Total due  £{rng.randint(10, 999)}.{rng.randint(0, 99):02d}"
        f"  by {rng.randint(1, 28)} March 2026",
        f"Meter {rng.randint(10**9, 10**10 - 1)}  reading {rng.randint(10000, 99999)} kWh",
        f"Call us on +44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} (8am-8pm)",
    ]  # fmt: skip
