"""Charts drawn on the server as SVG: no script, no CDN, no inline style (the colours are
classes in static/business.css). Each chart has a title and a description for screen
readers, and the desk shows the same numbers in a table next to it.

The input is a handful of already-summed numbers per month; nothing here touches the
database."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 56
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # a class in static/business.css, e.g. "s-new"
    values: Sequence[float]


def _nice_step(span: float) -> float:
    """A round step for about four grid lines over `span`."""
    raw = span / 4 if span > 0 else 1
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _nice_at_least(value: float) -> float:
    """The smallest round number (1, 2, 2.5, 5 × a power of ten) not below `value`."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude * (1 + 1e-9):
            return factor * magnitude
    return 10 * magnitude


def bar_chart(title: str, description: str, labels: Sequence[str],
              series: Sequence[Series], *, line: Series | None = None,
              format_value=str, line_format=None) -> Markup:
    """Stacked bars per label (positive parts up, negative parts down from zero), with an
    optional line (e.g. the net movement) on top. With `line_format` the line has a scale
    of its own, labelled on the right (e.g. MRR in euros over subscriber counts); it must
    not be negative then."""
    count = max(len(labels), 1)
    ups = [sum(max(s.values[i], 0) for s in series) for i in range(len(labels))]
    downs = [sum(min(s.values[i], 0) for s in series) for i in range(len(labels))]
    own_axis = line is not None and line_format is not None
    line_values = list(line.values) if line and not own_axis else []
    top = max([0, *ups, *line_values])
    bottom = min([0, *downs, *line_values])
    step = _nice_step(top - bottom)
    top = step * math.ceil(top / step)
    bottom = -step * math.ceil(-bottom / step)
    if top == bottom:
        top = step
    plot_h = HEIGHT - TOP - BOTTOM
    right = LEFT if own_axis else RIGHT
    plot_w = WIDTH - LEFT - right

    def y(value: float) -> float:
        return TOP + (top - value) / (top - bottom) * plot_h

    slot = plot_w / count
    bar_w = max(slot * 0.7, 1)
    chart_id = next(_ids)
    legend_rows = (len(series) + (1 if line else 0) + 3) // 4
    height = HEIGHT - BOTTOM + 30 + 22 * legend_rows
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="chart-{chart_id}-title chart-{chart_id}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-{chart_id}-title">{escape(title)}</title>',
        f'<desc id="chart-{chart_id}-desc">{escape(description)}</desc>',
    ]
    # The line's own scale: as many steps as the bars' grid, so its labels sit on the grid.
    intervals = round((top - bottom) / step)
    line_top = _nice_at_least(max([0, *line.values]) / intervals) * intervals if own_axis \
        else 0

    def line_y(value: float) -> float:
        return TOP + (line_top - value) / line_top * plot_h if own_axis else y(value)

    value = bottom
    tick = 0
    while value <= top + step / 1000:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - right}" '
                     f'y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
                     f'text-anchor="end">{escape(format_value(value))}</text>')
        if own_axis:
            parts.append(f'<text class="axis {line.css}-axis" x="{WIDTH - right + 6}" '
                         f'y="{y(value) + 4:.1f}" text-anchor="start">'
                         f'{escape(line_format(line_top * tick / intervals))}</text>')
        value += step
        tick += 1
    parts.append(f'<line class="zero" x1="{LEFT}" x2="{WIDTH - right}" y1="{y(0):.1f}" '
                 f'y2="{y(0):.1f}"/>')
    every = max(1, math.ceil(count / 8))  # about eight labels: "2026-01" needs room
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) / 2
        up = down = 0.0
        for s in series:
            v = s.values[i]
            if not v:
                continue
            if v > 0:
                y1, y2 = y(up + v), y(up)
                up += v
            else:
                y1, y2 = y(down), y(down + v)
                down += v
            parts.append(
                f'<rect class="{s.css}" x="{x:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                f'height="{max(y2 - y1, 0.5):.1f}"><title>{escape(label)}: '
                f'{escape(s.name)} {escape(format_value(v))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text class="axis" x="{LEFT + i * slot + slot / 2:.1f}" '
                         f'y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    if line:
        points = " ".join(f"{LEFT + i * slot + slot / 2:.1f},{line_y(v):.1f}"
                          for i, v in enumerate(line.values))
        parts.append(f'<polyline class="{line.css}" points="{points}"/>')
        show = line_format if own_axis else format_value
        for i, v in enumerate(line.values):
            parts.append(f'<circle class="{line.css}-dot" cx="{LEFT + i * slot + slot / 2:.1f}" '
                         f'cy="{line_y(v):.1f}" r="3"><title>{escape(labels[i])}: '
                         f'{escape(line.name)} {escape(show(v))}</title></circle>')
    legend = [*series, *([line] if line else [])]
    for n, s in enumerate(legend):
        lx = LEFT + (n % 4) * 160
        ly = HEIGHT - BOTTOM + 36 + (n // 4) * 22
        parts.append(f'<rect class="{s.css} swatch" x="{lx}" y="{ly - 10}" width="12" '
                     f'height="12"/><text class="legend" x="{lx + 18}" y="{ly}">'
                     f'{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 # texts escape()d above


def heat_class(value) -> str:
    """A class heat-0 … heat-10 for a share between 0 and 1 (the cohort table); other
    cells (counts, empty ones) get none."""
    share = getattr(value, "value", None)
    if not isinstance(share, float | int):
        return ""
    return f"heat-{max(0, min(10, round(share * 10)))}"
