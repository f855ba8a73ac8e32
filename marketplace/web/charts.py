"""Server-rendered SVG charts: line charts for the economics pages, grouped bar charts for what a model delivered. No
script and no inline style (the site's CSP allows neither), only SVG presentation attributes, so a chart is plain
markup in the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 56


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Marker:
    """A vertical line at x with a label (a bargaining solution, the first mover's bound)."""

    x: float
    label: str
    dashed: bool = True


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    band: tuple[float, float] | None = None  # a shaded x interval (the Pareto set)
    band_label: str = ""


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9 and len(ticks) < 20:
        ticks.append(round(v, 12))
        v += step
    return ticks


def render_svg(chart: Chart) -> SafeString:
    xs = [x for s in chart.series for x, _ in s.points] + [m.x for m in chart.markers]
    ys = [y for s in chart.series for _, y in s.points]
    if chart.band:
        xs += list(chart.band)
    if not xs or not ys:
        return mark_safe("")
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(min(ys), 0.0), max(ys)
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y1 = y0 + 1.0
    y1 += (y1 - y0) * 0.05
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + ph - (y - y0) / (y1 - y0) * ph

    title = escape(chart.title)
    out = [
        f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {HEIGHT + 20 * len(chart.series)}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
    ]
    if chart.band:
        a, b = chart.band
        out.append(
            f'<rect x="{sx(a):.1f}" y="{TOP}" width="{max(sx(b) - sx(a), 1):.1f}" height="{ph}" fill="#dcfce7" '
            f'data-band="{escape(chart.band_label)}"/>'
        )
    for t in _ticks(y0, y1):
        y = sy(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#374151">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 4}" stroke="#6b7280"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" font-size="11" text-anchor="middle" fill="#374151">{_fmt(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    out.append(
        f'<text x="{LEFT + pw / 2:.1f}" y="{TOP + ph + 34}" font-size="12" text-anchor="middle" fill="#111827">'
        f"{escape(chart.x_label)}</text>"
    )
    out.append(
        f'<text x="14" y="{TOP + ph / 2:.1f}" font-size="12" text-anchor="middle" fill="#111827" '
        f'transform="rotate(-90 14 {TOP + ph / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    for i, m in enumerate(chart.markers):
        x = sx(m.x)
        dash = ' stroke-dasharray="4 3"' if m.dashed else ""
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#111827"{dash} data-marker="{escape(m.label)}"/>'
        )
        # Labels near the right edge go to the left of their line, so they stay inside the chart.
        right = x > LEFT + pw * 0.75
        anchor = ' text-anchor="end"' if right else ""
        out.append(
            f'<text x="{x - 3 if right else x + 3:.1f}" y="{TOP + 12 + 12 * (i % 6)}" font-size="10" fill="#111827"{anchor}>'
            f"{escape(m.label)}</text>"
        )
    for i, s in enumerate(chart.series):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" data-series="{escape(s.label)}"/>')
        ly = HEIGHT + 20 * i - 2
        out.append(f'<line x1="{LEFT}" x2="{LEFT + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{LEFT + 30}" y="{ly}" font-size="12" fill="#111827">{escape(s.label)}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every label above is escaped; numbers are formatted floats


# --- grouped bar charts (delivered against promised) ---------------------------------------------------------------


@dataclass(frozen=True)
class BarSeries:
    """One bar per category; ``None`` where the value was not measured (no bar, and a dash in the legend's table)."""

    label: str
    values: list[float | None]
    colour: str | None = None  # None: the palette by position; set it to keep a series' colour across charts


@dataclass
class BarChart:
    title: str
    y_label: str
    categories: list[str]
    series: list[BarSeries]
    y_max: float | None = None  # a fixed top (1.0 for normalised rewards); None: from the data


def render_bar_svg(chart: BarChart) -> SafeString:
    """A grouped bar chart: one cluster per category, one bar per series, a legend below. Like ``render_svg``, only
    presentation attributes (no style, no script); every bar carries ``data-series``, ``data-category`` and
    ``data-value`` so tests and readers can check the numbers without parsing geometry."""
    values = [v for s in chart.series for v in s.values if v is not None]
    if not chart.categories or not chart.series or not values:
        return mark_safe("")
    y0 = min(0.0, min(values))
    y1 = chart.y_max if chart.y_max is not None else max(values) * 1.05
    if y1 <= y0:
        y1 = y0 + 1.0
    legend_rows = math.ceil(len(chart.series) / 3)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    height = HEIGHT + 20 * legend_rows

    def sy(y: float) -> float:
        return TOP + ph - (y - y0) / (y1 - y0) * ph

    title = escape(chart.title)
    out = [
        f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
    ]
    for t in _ticks(y0, y1):
        y = sy(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#374151">{_fmt(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    out.append(
        f'<text x="14" y="{TOP + ph / 2:.1f}" font-size="12" text-anchor="middle" fill="#111827" '
        f'transform="rotate(-90 14 {TOP + ph / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    cluster = pw / len(chart.categories)
    bar = cluster * 0.8 / len(chart.series)
    for c, name in enumerate(chart.categories):
        x_c = LEFT + c * cluster + cluster * 0.1
        for i, s in enumerate(chart.series):
            v = s.values[c] if c < len(s.values) else None
            if v is None:
                continue
            top, bottom = sy(max(v, 0.0)), sy(min(v, 0.0))
            out.append(
                f'<rect x="{x_c + i * bar:.1f}" y="{top:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" fill="{s.colour or PALETTE[i % len(PALETTE)]}" '
                f'data-series="{escape(s.label)}" data-category="{escape(name)}" data-value="{v:.4f}">'
                f"<title>{escape(name)}, {escape(s.label)}: {v:.3f}</title></rect>"
            )
        out.append(
            f'<text x="{x_c + cluster * 0.4:.1f}" y="{TOP + ph + 16}" font-size="12" text-anchor="middle" '
            f'fill="#111827">{escape(name)}</text>'
        )
    for i, s in enumerate(chart.series):
        col, row = i % 3, i // 3
        lx, ly = LEFT + col * (pw / 3), HEIGHT + 20 * row - 8
        colour = s.colour or PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{lx:.1f}" y="{ly - 10:.1f}" width="14" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 20:.1f}" y="{ly:.1f}" font-size="12" fill="#111827">{escape(s.label)}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every label above is escaped; numbers are formatted floats


def delivery_charts(evaluation: dict) -> dict[str, SafeString]:
    """The two bar charts of what a model delivered, from ``delivery.selectors.model_evaluation``: per group, on fresh
    answers to the round's prompts (base, promised, the adapter alone, exact delivery at each K) and to held-out
    prompts (base, the adapter, exact delivery; the auction promised nothing there)."""
    groups = evaluation.get("groups") or []
    ks = evaluation.get("exact_ks") or []
    names = [str(g.get("name") or g.get("group")) for g in groups]

    def exact(rows: list[dict], k: int) -> list[float | None]:
        return [(r.get("exact") or {}).get(str(k)) for r in rows]

    # One colour per measure in both charts (the held-out chart has no "promised").
    base_c, promised_c, adapter_c, *exact_c = PALETTE

    held = [g.get("heldout") or {} for g in groups]
    round_chart = BarChart(
        title="Delivered against promised: the round's prompts",
        y_label="reward (0-1, each group's scale)",
        categories=names,
        series=[
            BarSeries("base model", [g.get("base") for g in groups], base_c),
            BarSeries("promised", [g.get("promised") for g in groups], promised_c),
            BarSeries("adapter alone", [g.get("delivered") for g in groups], adapter_c),
            *[BarSeries(f"exact K={k}", exact(groups, k), exact_c[i % len(exact_c)]) for i, k in enumerate(ks)],
        ],
        y_max=1.0,
    )
    heldout_chart = BarChart(
        title="Held-out prompts (not in the round)",
        y_label="reward (0-1, each group's scale)",
        categories=names,
        series=[
            BarSeries("base model", [h.get("base") for h in held], base_c),
            BarSeries("adapter alone", [h.get("delivered") for h in held], adapter_c),
            *[BarSeries(f"exact K={k}", exact(held, k), exact_c[i % len(exact_c)]) for i, k in enumerate(ks)],
        ],
        y_max=1.0,
    )
    return {"round": render_bar_svg(round_chart), "heldout": render_bar_svg(heldout_chart)}
