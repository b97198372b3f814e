"""Charts as SVG text, made when the site is built: the page needs no charting library, and a few hundred runs'
charts cost milliseconds (matplotlib's PNGs cost a tenth of a second each). Every label is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 170, 36, 52
SCATTER_W, SCATTER_LABELS = 940, 20  # the scatter's legend names a system and a workload: wider, more rows
MARKERS = {"measured": "circle", "partly modelled": "triangle", "modelled": "square", "incomplete": "cross"}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")


class Axis:
    def __init__(self, values: Sequence[float], lo_px: float, hi_px: float, log: bool) -> None:
        finite = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
        lo, hi = (min(finite), max(finite)) if finite else (1.0, 10.0)
        self.log = log
        if log:
            lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi) + 1e-9)
            lo, hi = (lo, hi * 10) if lo == hi else (lo, hi)
        else:
            pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.lo_px, self.hi_px = lo, hi, lo_px, hi_px

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.lo_px + f * (self.hi_px - self.lo_px)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0**k for k in range(round(math.log10(self.lo)), round(math.log10(self.hi)) + 1)]
        step = 10 ** math.floor(math.log10((self.hi - self.lo) / 4 or 1))
        start = math.ceil(self.lo / step) * step
        return [start + i * step for i in range(int((self.hi - start) / step) + 1)][:12]


def _num(v: float) -> str:
    if v and (abs(v) >= 1e4 or abs(v) < 1e-2):
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:g}"


def _frame(title: str, xlabel: str, ylabel: str, x: Axis, y: Axis, width: int = W) -> list[str]:
    """Axes, grid and labels; the plot spans LEFT..W - RIGHT whatever the `width` (the rest is legend)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {H}" width="{width}" height="{H}" '
           f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(title)}</title>", f'<rect width="{width}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="13" font-weight="bold">{escape(title)}</text>']
    for t in x.ticks():
        px = x(t)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{H - BOTTOM}" stroke="#eee"/>'
                   f'<text x="{px:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle">{_num(t)}</text>')
    for t in y.ticks():
        py = y(t)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" '
               'stroke="#999"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 14}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {(TOP + H - BOTTOM) / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f"{escape(ylabel)}</text>")
    return out


def _marker(shape: str, x: float, y: float, color: str) -> str:
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}"/>'
    if shape == "triangle":
        return f'<polygon points="{x:.1f},{y - 5:.1f} {x - 5:.1f},{y + 4:.1f} {x + 5:.1f},{y + 4:.1f}" fill="{color}"/>'
    if shape == "cross":
        return (f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},'
                f'{y - 4:.1f}" stroke="{color}" stroke-width="2"/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}"/>'


def scatter(points: Sequence[tuple[str, float, float, str]], title: str, xlabel: str, ylabel: str) -> str:
    """(label, x, y, method) points on log axes; the marker's shape is the energy method, its colour the label."""
    x = Axis([p[1] for p in points], LEFT, W - RIGHT, log=True)
    y = Axis([p[2] for p in points], H - BOTTOM, TOP, log=True)
    out = _frame(title, xlabel, ylabel, x, y, SCATTER_W)
    labels = list(dict.fromkeys(p[0] for p in points))
    for label, px, py, method in points:
        if px and py and px > 0 and py > 0:
            color = COLORS[labels.index(label) % len(COLORS)]
            out.append(f"<g><title>{escape(label)}: {px:.4g} s, {py:.4g} J ({escape(method)})</title>"
                       f"{_marker(MARKERS.get(method, 'circle'), x(px), y(py), color)}</g>")
    ly = TOP + 4
    for i, label in enumerate(labels[:SCATTER_LABELS]):
        out.append(f'<circle cx="{W - RIGHT + 14}" cy="{ly + 14 * i:.0f}" r="4" fill="{COLORS[i % len(COLORS)]}"/>'
                   f'<text x="{W - RIGHT + 22}" y="{ly + 14 * i + 4:.0f}">{escape(label[:64])}</text>')
    if len(labels) > SCATTER_LABELS:  # each point still names itself on hover
        out.append(f'<text x="{W - RIGHT + 22}" y="{ly + 14 * SCATTER_LABELS + 4:.0f}">and '
                   f"{len(labels) - SCATTER_LABELS} more</text>")
    ly += 14 * min(len(labels) + 1, SCATTER_LABELS + 1) + 10
    for i, (method, shape) in enumerate(MARKERS.items()):
        out.append(_marker(shape, W - RIGHT + 14, ly + 14 * i, "#444")
                   + f'<text x="{W - RIGHT + 22}" y="{ly + 14 * i + 4:.0f}">{method}</text>')
    return "\n".join([*out, "</svg>"]) + "\n"


def lines(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
          hline: tuple[str, float] | None = None, log_x: bool = False) -> str:
    """Each (label, xs, ys) as a polyline; `hline` a labelled horizontal line (a target)."""
    xs = [v for _, a, _ in series for v in a] or [0.0, 1.0]
    ys = [v for _, _, b in series for v in b] + ([hline[1]] if hline else []) or [0.0, 1.0]
    x = Axis(xs, LEFT, W - RIGHT, log=log_x)
    y = Axis(ys, H - BOTTOM, TOP, log=False)
    out = _frame(title, xlabel, ylabel, x, y)
    for i, (label, a, b) in enumerate(series):
        pts = " ".join(f"{x(u):.1f},{y(v):.1f}" for u, v in zip(a, b, strict=True)
                       if u is not None and v is not None and (u > 0 or not log_x))
        color = COLORS[i % len(COLORS)]
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>'
                   f'<text x="{W - RIGHT + 8}" y="{TOP + 14 * i + 8}" fill="{color}">{escape(label[:28])}</text>')
    if hline:
        py = y(hline[1])
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="black" '
                   f'stroke-dasharray="5,4"/><text x="{W - RIGHT + 8}" y="{py + 4:.1f}">{escape(hline[0])}</text>')
    return "\n".join([*out, "</svg>"]) + "\n"
