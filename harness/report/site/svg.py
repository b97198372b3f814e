"""Charts as SVG text, made when the site is built: the page needs no charting library, and a few hundred runs'
charts cost milliseconds (matplotlib's PNGs cost a tenth of a second each). Every label is escaped."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from html import escape

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 170, 36, 52
SCATTER_W, SCATTER_LABELS, SCATTER_CHARS = 720, 20, 56  # its legend, below: a system and a workload a label
MARKERS = {"measured": "circle", "partly modelled": "triangle", "modelled": "square", "incomplete": "cross"}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
LIGHTNESS = (0.34, 0.48, 0.62)  # beyond len(COLORS) series: neighbouring hues differ in lightness too


def palette(n: int) -> list[str]:
    """`n` distinct colours, one a series: COLORS up to its length, beyond that `n` evenly spaced hues whose
    lightness alternates (a colour never repeats within one chart)."""
    if n <= len(COLORS):
        return list(COLORS[:n])
    out: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        hue, light = i / n, LIGHTNESS[i % len(LIGHTNESS)]
        for k in range(64):  # rounding to 8 bits could make two of very many hues one colour: nudge the lightness
            r, g, b = colorsys.hls_to_rgb(hue, light + 0.003 * ((k + 1) // 2) * (-1) ** k, 0.7)
            color = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
            if color not in seen:
                break
        out.append(color)
        seen.add(color)
    return out


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
        span = self.hi - self.lo or 1.0
        base = 10 ** math.floor(math.log10(span / 4))
        step = next(base * k for k in (1, 2, 5, 10) if span / (base * k) <= 10)  # 4 to 10 ticks over the axis
        start = math.ceil(self.lo / step) * step
        return [start + i * step for i in range(int((self.hi - start) / step + 1e-9) + 1)]


def _num(v: float) -> str:
    if v and (abs(v) >= 1e4 or abs(v) < 1e-2):
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:g}"


def _frame(title: str, xlabel: str, ylabel: str, x: Axis, y: Axis, width: int = W, height: int = H) -> list[str]:
    """Axes, grid and labels; the plot spans the axes' own pixel ranges (the rest of `width` x `height` is legend)."""
    left, right, top, bottom = x.lo_px, x.hi_px, y.hi_px, y.lo_px
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(title)}</title>", f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="13" font-weight="bold">{escape(title)}</text>']
    for t in x.ticks():
        px = x(t)
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#eee"/>'
                   f'<text x="{px:.1f}" y="{bottom + 14}" text-anchor="middle">{_num(t)}</text>')
    for t in y.ticks():
        py = y(t)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
               'stroke="#999"/>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{bottom + 38}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
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
    """(label, x, y, method) points on log axes; the marker's shape is the energy method, its colour the label (one
    colour a label: `palette`). The legend lies below the plot, two columns of labels, so that the plot gets the
    width (the chart shares the first screen with the dense-versus-sparse table)."""
    x = Axis([p[1] for p in points], LEFT, SCATTER_W - 24, log=True)
    y = Axis([p[2] for p in points], H - BOTTOM, TOP, log=True)
    labels = list(dict.fromkeys(p[0] for p in points))
    colors = dict(zip(labels, palette(len(labels)), strict=True))
    shown = labels[:SCATTER_LABELS]
    rows = (len(shown) + 1) // 2 + (len(labels) > SCATTER_LABELS)
    ly = H + 8  # the methods' row, then the labels
    out = _frame(title, xlabel, ylabel, x, y, SCATTER_W, ly + 14 * (rows + 1) + 8)
    for label, px, py, method in points:
        if px and py and px > 0 and py > 0:
            out.append(f"<g><title>{escape(label)}: {px:.4g} s, {py:.4g} J ({escape(method)})</title>"
                       f"{_marker(MARKERS.get(method, 'circle'), x(px), y(py), colors[label])}</g>")
    for i, (method, shape) in enumerate(MARKERS.items()):
        out.append(_marker(shape, LEFT + 120 * i + 4, ly, "#444")
                   + f'<text x="{LEFT + 120 * i + 12}" y="{ly + 4}">{method}</text>')
    column = (SCATTER_W - 16) // 2
    for i, label in enumerate(shown):
        cx, cy = 16 + column * (i % 2), ly + 14 * (i // 2 + 1)
        out.append(f'<circle cx="{cx + 4}" cy="{cy}" r="4" fill="{colors[label]}"/>'
                   f'<text x="{cx + 12}" y="{cy + 4}">{escape(_short(label, SCATTER_CHARS))}</text>')
    if len(labels) > SCATTER_LABELS:  # each point still names itself on hover
        out.append(f'<text x="28" y="{ly + 14 * rows + 4}">and {len(labels) - SCATTER_LABELS} more</text>')
    return "\n".join([*out, "</svg>"]) + "\n"


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def lines(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
          hline: tuple[str, float] | None = None, log_x: bool = False) -> str:
    """Each (label, xs, ys) as a polyline; `hline` a labelled horizontal line (a target)."""
    xs = [v for _, a, _ in series for v in a] or [0.0, 1.0]
    ys = [v for _, _, b in series for v in b] + ([hline[1]] if hline else []) or [0.0, 1.0]
    x = Axis(xs, LEFT, W - RIGHT, log=log_x)
    y = Axis(ys, H - BOTTOM, TOP, log=False)
    out = _frame(title, xlabel, ylabel, x, y)
    for i, ((label, a, b), color) in enumerate(zip(series, palette(len(series)), strict=True)):
        pts = " ".join(f"{x(u):.1f},{y(v):.1f}" for u, v in zip(a, b, strict=True)
                       if u is not None and v is not None and (u > 0 or not log_x))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>'
                   f'<text x="{W - RIGHT + 8}" y="{TOP + 14 * i + 8}" fill="{color}">{escape(label[:28])}</text>')
    if hline:
        py = y(hline[1])
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="black" '
                   f'stroke-dasharray="5,4"/><text x="{W - RIGHT + 8}" y="{py + 4:.1f}">{escape(hline[0])}</text>')
    return "\n".join([*out, "</svg>"]) + "\n"
