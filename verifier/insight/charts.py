"""A small server-side SVG chart builder: bars (stacked), horizontal bars and intervals.

Charts are plain SVG markup with a <title> and <desc> (role="img"), colours from CSS
classes (dashboard.css; no inline styles under the CSP), and a <title> on every bar so a
pointer or screen reader can read the exact value. The numbers also go in a table beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 560  # viewBox width: readable when scaled to a phone or to a wide column


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str  # colour, from dashboard.css
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1
    power: float = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-9:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _fmt(value: float) -> str:
    """Coordinates with at most one decimal, so the markup stays small."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(chart_id: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for item in series:
        parts.append(
            f'<rect class="{item.css_class}" x="{_fmt(x)}" y="{_fmt(y - 10)}" '
            'width="12" height="12" rx="2"/>'
        )
        parts.append(
            f'<text class="legend" x="{_fmt(x + 16)}" y="{_fmt(y)}">{escape(item.name)}</text>'
        )
        x += 28 + 10 * len(item.name)  # room for the text at the phone's larger font
    return parts


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = WIDTH,
    height: int = 240,
    max_labels: int = 8,
) -> Markup:
    """Vertical bars, one per label, with the series stacked bottom to top."""
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value per label")
    left, right, top, bottom = 44, 10, 30, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top_value = nice_ceiling(max(totals, default=0))
    parts = _open(chart_id, title, desc, width, height)
    parts += _legend(series, left, 16)
    for tick in range(5):
        value = top_value * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.7, 1)
    every = max(1, math.ceil(len(labels) / max_labels))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        base: float = top + plot_h
        for item in series:
            value = item.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top_value
            base -= h
            parts.append(
                f'<rect class="bar {item.css_class}" x="{_fmt(x)}" y="{_fmt(base)}" '
                f'width="{_fmt(bar_w)}" height="{_fmt(h)}">'
                f"<title>{escape(label)}: {_number(value)} {escape(item.name)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{_fmt(x + bar_w / 2)}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" '
        f'y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def value_bars(
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, float | None, str]],
    *,
    maximum: float | None = None,
    css_class: str = "series-a",
    width: int = WIDTH,
) -> Markup:
    """Horizontal bars, one row each: (label, value or None for no data, the value as text).

    Each row reads as a line of text (label left, value right) above its bar, so long labels
    fit a phone. Bars are scaled to `maximum` (default: the largest value).
    """
    row_h, top = 46, 4
    height = top + row_h * max(len(rows), 1)
    scale = maximum or max((v for _, v, _ in rows if v is not None), default=0) or 1
    parts = _open(chart_id, title, desc, width, height)
    for i, (label, value, text) in enumerate(rows):
        y = top + row_h * i
        parts.append(f'<text class="label" x="0" y="{y + 15}">{escape(label)}</text>')
        parts.append(
            f'<text class="value" x="{width}" y="{y + 15}" text-anchor="end">'
            f"{escape(text if value is not None else 'no data')}</text>"
        )
        parts.append(f'<rect class="track" x="0" y="{y + 22}" width="{width}" height="16" rx="3"/>')
        if value is None:
            continue
        w = width * min(max(value / scale, 0.0), 1.0)
        parts.append(
            f'<rect class="bar {css_class}" x="0" y="{y + 22}" width="{_fmt(w)}" '
            f'height="16" rx="3"><title>{escape(label)}: {escape(text)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def share_bars(
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, float | None]],
    *,
    css_class: str = "series-a",
    width: int = WIDTH,
) -> Markup:
    """Horizontal bars of shares between 0 and 1, each labelled with its percentage."""
    return value_bars(
        chart_id,
        title,
        desc,
        [(label, share, "" if share is None else f"{share * 100:.1f} %") for label, share in rows],
        maximum=1.0,
        css_class=css_class,
        width=width,
    )


def interval_chart(
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, float, float, float]],
    *,
    width: int = WIDTH,
) -> Markup:
    """Point estimates with their interval whiskers on a shared 0-to-max percentage axis.

    `rows` are (label, share, low, high) with shares between 0 and 1; each label sits above
    its whisker.
    """
    side, row_h, top, bottom = 16, 50, 4, 24
    plot_w = width - 2 * side
    height = top + bottom + row_h * max(len(rows), 1)
    axis_max = nice_ceiling(max((high for *_, high in rows), default=0.01) * 100) / 100
    parts = _open(chart_id, title, desc, width, height)

    def x_of(share: float) -> float:
        return side + plot_w * share / axis_max

    for tick in range(5):
        share = axis_max * tick / 4
        x = x_of(share)
        parts.append(
            f'<line class="grid" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{top}" y2="{height - bottom}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_fmt(x)}" y="{height - 6}" text-anchor="middle">'
            f"{_number(share * 100)} %</text>"
        )
    for i, (label, share, low, high) in enumerate(rows):
        y = top + row_h * i + 34
        text = f"{share * 100:.1f} % (95 % interval {low * 100:.1f} % to {high * 100:.1f} %)"
        parts.append(
            f'<text class="label" x="{side}" y="{_fmt(y - 16)}">{escape(label)}: '
            f"{low * 100:.1f} % to {high * 100:.1f} %</text>"
        )
        parts.append(
            f'<g class="interval"><title>{escape(label)}: {text}</title>'
            f'<line class="whisker" x1="{_fmt(x_of(low))}" x2="{_fmt(x_of(high))}" '
            f'y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
            f'<line class="whisker" x1="{_fmt(x_of(low))}" x2="{_fmt(x_of(low))}" '
            f'y1="{_fmt(y - 7)}" y2="{_fmt(y + 7)}"/>'
            f'<line class="whisker" x1="{_fmt(x_of(high))}" x2="{_fmt(x_of(high))}" '
            f'y1="{_fmt(y - 7)}" y2="{_fmt(y + 7)}"/>'
            f'<circle class="point" cx="{_fmt(x_of(share))}" cy="{_fmt(y)}" r="5"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
