"""Latency against load as an SVG line chart, drawn by hand: a few polylines on a log scale
need no plotting library, and the file reads on GitHub and in any browser."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLOURS = ("#1f6feb", "#d1242f", "#8250df", "#57606a")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]  # (x, y), y > 0
    dashed: bool = False


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               targets: Sequence[tuple[float, str]] = (), width: int = 720,
               height: int = 380) -> str:
    """Lines on a linear x axis and a logarithmic y axis (latencies span milliseconds to
    seconds); `targets` are horizontal dotted lines with their labels."""
    left, right, top, bottom = 70, 190, 40, 50
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y > 0] + [y for y, _ in targets]
    x_max = max(xs) * 1.05
    low = 10 ** math.floor(math.log10(min(ys)))
    high = 10 ** math.ceil(math.log10(max(ys)))
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + plot_w * x / x_max

    def py(y: float) -> float:
        share = (math.log10(max(y, low)) - math.log10(low)) / (
            math.log10(high) - math.log10(low))
        return top + plot_h * (1 - share)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             f'<text x="{left}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    decade = low
    while decade <= high:
        y = py(decade)
        label = f"{decade * 1000:g} ms" if decade < 1 else f"{decade:g} s"
        parts += [f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                  'stroke="#d0d7de"/>',
                  f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>']
        decade *= 10
    for x in sorted({x for s in series for x, _ in s.points}):
        parts.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                     f'{x:g}</text>')
    parts += [f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle">'
              f'{escape(x_label)}</text>',
              f'<text x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
              f'transform="rotate(-90 16 {top + plot_h / 2:.1f})">{escape(y_label)}</text>',
              f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
              'stroke="#57606a"/>']
    for value, label in targets:
        y = py(value)
        parts += [f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                  'stroke="#2da44e" stroke-dasharray="2 4" stroke-width="1.5"/>',
                  f'<text x="{left + plot_w - 6}" y="{y - 5:.1f}" text-anchor="end" '
                  f'fill="#2da44e">{escape(label)}</text>']
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"{dash}/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                  for x, y in s.points]
        legend_y = top + 14 + 18 * i
        parts += [f'<line x1="{left + plot_w + 12}" y1="{legend_y - 4}" '
                  f'x2="{left + plot_w + 34}" y2="{legend_y - 4}" stroke="{colour}" '
                  f'stroke-width="2"{dash}/>',
                  f'<text x="{left + plot_w + 40}" y="{legend_y}">{escape(s.name)}</text>']
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
