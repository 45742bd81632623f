"""Hand-written inline SVG charts (no JavaScript, no external resources).

Every function returns one ``<svg>`` element as text with a viewBox, so it scales to the page
and prints crisply. All text is escaped. Colours: the Okabe-Ito palette (colour-blind safe).
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

PALETTE = ("#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FONT = "'Noto Sans CJK SC','Source Han Sans SC','WenQuanYi Micro Hei','WenQuanYi Zen Hei','Microsoft YaHei','PingFang SC','SimHei',sans-serif"


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def nice_max(v: float) -> float:
    """A round axis maximum >= v (1, 2, 2.5, 5 x 10^k)."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def _ticks(top: float, n: int = 5) -> list[float]:
    return [top * i / n for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:g}" if v != int(v) else str(int(v))


def _open(w: int, h: int, title: str) -> str:
    return (f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'aria-label="{_e(title)}" font-family="{_e(FONT)}" font-size="12"><title>{_e(title)}</title>')


def _legend(series: Sequence[str], x: int, y: int, width: int) -> tuple[str, int]:
    """Legend items flowing left to right; returns (svg, height used)."""
    parts, cx, cy = [], x, y
    for i, name in enumerate(series):
        w = 22 + 12 * sum(2 if ord(c) > 0x2E80 else 1 for c in name) // 2 + 14
        if cx + w > x + width:
            cx, cy = x, cy + 18
        parts.append(f'<rect x="{cx}" y="{cy}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{cx + 16}" y="{cy + 10}">{_e(name)}</text>')
        cx += w
    return "".join(parts), cy - y + 18


def stacked_bars(rows: Sequence[tuple[str, Sequence[int]]], series: Sequence[str], title: str, width: int = 760) -> str:
    """Horizontal stacked bars: one bar per row label, one segment per series."""
    label_w, bar_h, gap = 120, 18, 8
    legend, lh = _legend(series, label_w, 8, width - label_w - 10)
    top = 8 + lh + 6
    axis_top = nice_max(max((sum(v) for _, v in rows), default=0))
    plot_w = width - label_w - 30
    h = top + len(rows) * (bar_h + gap) + 30
    out = [_open(width, h, title), legend]
    bottom = top + len(rows) * (bar_h + gap)
    for t in _ticks(axis_top):
        x = label_w + plot_w * t / axis_top
        out.append(f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">{_fmt(t)}</text>')
    for i, (label, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(f'<text x="{label_w - 6}" y="{y + bar_h - 4}" text-anchor="end">{_e(label)}</text>')
        x = float(label_w)
        for j, v in enumerate(values):
            if v <= 0:
                continue
            w = plot_w * v / axis_top
            out.append(f'<rect class="seg" data-series="{_e(series[j])}" data-value="{v}" x="{x:.1f}" y="{y}" '
                       f'width="{w:.1f}" height="{bar_h}" fill="{PALETTE[j % len(PALETTE)]}">'
                       f'<title>{_e(label)} · {_e(series[j])}: {v}</title></rect>')
            x += w
        total = sum(values)
        out.append(f'<text x="{x + 4:.1f}" y="{y + bar_h - 4}" fill="#333">{total}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(labels: Sequence[str], series: dict[str, Sequence[int]], title: str, width: int = 760, height: int = 300) -> str:
    """One line per series over the x labels (runs)."""
    names = list(series)
    legend, lh = _legend(names, 50, 8, width - 60)
    left, right, top, bottom = 50, 20, 8 + lh + 10, height - 40
    top_v = nice_max(max((max(v) for v in series.values() if len(v)), default=0))
    n = len(labels)

    def px(i: int) -> float:
        return left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def py(v: float) -> float:
        return bottom - (bottom - top) * v / top_v

    out = [_open(width, height, title), legend]
    for t in _ticks(top_v):
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{width - right}" y2="{py(t):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>')
    for i, lab in enumerate(labels):
        # First and last labels anchored inward so they are not clipped at the edges.
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        out.append(f'<text x="{px(i):.1f}" y="{bottom + 16}" text-anchor="{anchor}" fill="#555">{_e(lab)}</text>')
    for j, name in enumerate(names):
        vals = list(series[name])
        colour = PALETTE[j % len(PALETTE)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
        if len(vals) > 1:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(vals):
            out.append(f'<circle class="pt" data-series="{_e(name)}" data-value="{v}" cx="{px(i):.1f}" cy="{py(v):.1f}" '
                       f'r="3.5" fill="{colour}"><title>{_e(labels[i])} · {_e(name)}: {v}</title></circle>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#888"/></svg>')
    return "".join(out)


def histogram(edges: Sequence[float], counts: Sequence[int], thresholds: dict[str, float], labels: dict[str, str],
              title: str, x_label: str, width: int = 760, height: int = 260) -> str:
    """Bars per probability bin, with dashed vertical lines at the thresholds."""
    left, right, top, bottom = 50, 20, 24, height - 44
    top_v = nice_max(max(counts, default=0))
    span = edges[-1] - edges[0] or 1

    def px(v: float) -> float:
        return left + (width - left - right) * (v - edges[0]) / span

    def py(v: float) -> float:
        return bottom - (bottom - top) * v / top_v

    out = [_open(width, height, title)]
    for t in _ticks(top_v):
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{width - right}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>')
    for i, c in enumerate(counts):
        x0, x1 = px(edges[i]), px(edges[i + 1])
        if c:
            out.append(f'<rect class="bin" data-lo="{edges[i]:g}" data-value="{c}" x="{x0 + 1:.1f}" y="{py(c):.1f}" '
                       f'width="{x1 - x0 - 2:.1f}" height="{bottom - py(c):.1f}" fill="{PALETTE[0]}">'
                       f'<title>{edges[i]:.2f}–{edges[i + 1]:.2f}: {c}</title></rect>')
    for i in range(0, len(edges), 2):
        out.append(f'<text x="{px(edges[i]):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">{edges[i]:g}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.1f}" y="{bottom + 32}" text-anchor="middle">{_e(x_label)}</text>')
    for k, colour, dy in (("review_threshold", PALETTE[1], 0), ("match_threshold", PALETTE[2], 14)):
        if k in thresholds:
            x = px(thresholds[k])
            out.append(f'<line class="threshold" data-threshold="{k}" data-value="{thresholds[k]:g}" x1="{x:.1f}" y1="{top - 10}" '
                       f'x2="{x:.1f}" y2="{bottom}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/>'
                       f'<text x="{x - 4:.1f}" y="{top - 12 + dy}" text-anchor="end" fill="{colour}">'
                       f'{_e(labels.get(k, k))} {thresholds[k]:g}</text>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#888"/></svg>')
    return "".join(out)
