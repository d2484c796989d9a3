"""Geometry for server-rendered SVG charts: numbers in, coordinates out. The templates draw
them (``templates/_macros.html``); nothing here touches text a person typed."""

from __future__ import annotations

import math
from typing import Any, Sequence


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About ``count`` round numbers covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi == lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    x = first
    while x <= hi + step * 1e-9:
        ticks.append(round(x, 12))
        x += step
    return ticks


def fmt_tick(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:g}M"
    if a >= 1e4:
        return f"{x / 1e3:g}k"
    if a >= 1:
        return f"{x:g}"
    return f"{x:.3g}"


def sparkline(points: Sequence[Sequence[float]], width: int = 120, height: int = 28) -> str:
    """The ``points`` attribute of a polyline through (x, y) pairs."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2) / ((x1 - x0) or 1)
    sy = (height - 4) / ((y1 - y0) or 1)
    return " ".join(f"{1 + (x - x0) * sx:.1f},{height - 2 - (y - y0) * sy:.1f}" for x, y in points)


def line_chart(points: Sequence[Sequence[float]], width: int = 340, height: int = 150) -> dict[str, Any]:
    """Axes, ticks, the line and a few hover points of one curve."""
    left, right, top, bottom = 44, 10, 8, 22
    w, h = width - left - right, height - top - bottom
    out: dict[str, Any] = {"width": width, "height": height, "left": left, "top": top,
                           "plot_w": w, "plot_h": h, "line": "", "x_ticks": [], "y_ticks": [],
                           "dots": [], "last": None}
    if not points:
        return out
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - (abs(y0) or 1) * 0.1, y1 + (abs(y1) or 1) * 0.1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    if min(ys) >= 0 and y0 < 0:
        y0 = 0.0
    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * w
    def py(y):
        return top + h - (y - y0) / (y1 - y0) * h
    out["line"] = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    out["x_ticks"] = [{"x": round(px(t), 1), "label": fmt_tick(t)} for t in nice_ticks(x0, x1, 4)
                      if x0 <= t <= x1]
    out["y_ticks"] = [{"y": round(py(t), 1), "label": fmt_tick(t)} for t in nice_ticks(y0, y1, 3)
                      if y0 <= t <= y1]
    stride = max(1, len(points) // 40)
    chosen = list(points[::stride])
    if chosen[-1] is not points[-1]:
        chosen.append(points[-1])
    out["dots"] = [{"x": round(px(x), 1), "y": round(py(y), 1), "step": x, "value": y} for x, y in chosen]
    out["last"] = out["dots"][-1]
    return out


def histogram(counts: Sequence[int], width: int = 520, height: int = 200,
              counts_b: Sequence[int] | None = None) -> dict[str, Any]:
    """Bars for ``counts`` (and, overlaid, ``counts_b``), scaled to the larger."""
    left, right, top, bottom = 40, 8, 18, 34
    w, h = width - left - right, height - top - bottom
    n = len(counts)
    top_count = max(list(counts) + list(counts_b or [])) or 1
    slot = w / max(n, 1)
    bars = []
    for i in range(n):
        def bar(c, inset):
            bh = c / top_count * h
            return {"x": round(left + i * slot + inset, 1), "y": round(top + h - bh, 1),
                    "w": round(slot - 2 * inset, 1), "h": round(bh, 1), "n": c}
        entry = {"i": i, "a": bar(counts[i], 3), "label_x": round(left + (i + 0.5) * slot, 1),
                 "slot_x": round(left + i * slot, 1), "slot_w": round(slot, 1)}
        if counts_b is not None:
            entry["b"] = bar(counts_b[i], slot * 0.22)
        bars.append(entry)
    ticks = [{"y": round(top + h - t / top_count * h, 1), "label": fmt_tick(t)}
             for t in nice_ticks(0, top_count, 3) if t <= top_count]
    return {"width": width, "height": height, "left": left, "top": top, "plot_w": w, "plot_h": h,
            "bottom": top + h, "bars": bars, "y_ticks": ticks}


def stacked_shares(columns: Sequence[Sequence[int]], width: int = 560, height: int = 200,
                   max_labels: int = 12) -> dict[str, Any]:
    """One bar per column (a checkpoint), its counts stacked bottom to top in their order, each
    segment as tall as its share of the column's total (every bar reaches 100%, an empty one
    draws nothing). At most about ``max_labels`` columns are labelled below the axis, evenly,
    the last always."""
    left, right, top, bottom = 40, 8, 10, 34
    w, h = width - left - right, height - top - bottom
    n = len(columns)
    slot = w / max(n, 1)
    bar_w = min(slot * 0.78, 56.0)
    stride = max(1, math.ceil(n / max_labels))
    bars = []
    for i, counts in enumerate(columns):
        total = sum(counts)
        x = left + i * slot + (slot - bar_w) / 2
        y = float(top + h)
        segments = []
        for j, c in enumerate(counts):
            share = c / total if total else 0.0
            seg_h = share * h
            y -= seg_h
            if c:
                segments.append({"j": j, "y": round(y, 2), "h": round(seg_h, 2), "n": c, "share": share})
        bars.append({"i": i, "x": round(x, 1), "w": round(bar_w, 1), "total": total,
                     "label_x": round(left + (i + 0.5) * slot, 1), "labelled": (n - 1 - i) % stride == 0,
                     "segments": segments})
    ticks = [{"y": round(top + h - t * h, 1), "label": f"{round(t * 100)}%"} for t in (0, 0.25, 0.5, 0.75, 1)]
    return {"width": width, "height": height, "left": left, "top": top, "plot_w": w, "plot_h": h,
            "bottom": top + h, "bars": bars, "y_ticks": ticks}


# distinguishable on white and for most colour vision (Okabe-Ito, then Tableau); series i takes i
SERIES_COLOURS = ("#222222", "#E69F00", "#0072B2", "#009E73", "#CC79A7", "#D55E00", "#56B4E9",
                  "#8C564B", "#7F7F7F", "#BCBD22")


def series_colour(i: int) -> str:
    return SERIES_COLOURS[i % len(SERIES_COLOURS)]


def multi_line_chart(series: Sequence[Sequence[Sequence[float]]], width: int = 420,
                     height: int = 170) -> dict[str, Any]:
    """One shared pair of axes for several curves ([[x, y], …] each): a polyline and dots per
    series (``lines[i]``, empty for an empty series)."""
    left, right, top, bottom = 44, 10, 8, 22
    w, h = width - left - right, height - top - bottom
    pts = [p for s in series for p in s]
    out: dict[str, Any] = {"width": width, "height": height, "left": left, "top": top, "plot_w": w,
                           "plot_h": h, "lines": [], "x_ticks": [], "y_ticks": []}
    if not pts:
        return out
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(0.0, min(p[1] for p in pts)), max(1.0, max(p[1] for p in pts))
    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * w
    def py(y):
        return top + h - (y - y0) / ((y1 - y0) or 1) * h
    for s in series:
        out["lines"].append({"line": " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s),
                             "dots": [{"x": round(px(x), 1), "y": round(py(y), 1), "step": x, "value": y}
                                      for x, y in s]})
    out["x_ticks"] = [{"x": round(px(t), 1), "label": fmt_tick(t)} for t in nice_ticks(x0, x1, 4) if x0 <= t <= x1]
    out["y_ticks"] = [{"y": round(py(t), 1), "label": fmt_tick(t)} for t in nice_ticks(y0, y1, 3) if y0 <= t <= y1]
    return out


def generalisation_chart(panel: dict[str, Any], width: int = 460, height: int = 250) -> dict[str, Any]:
    """A panel of the generalisation chart (``queries.generalisation_data``): the x axis is the
    value (term length, trace length) itself, a bucket [lo, hi] covering [lo, hi + 1); each
    series' rates as a line through its buckets' middles (y 0 to 1, above), the training
    histogram as bars (below, its own scale), and ``shade``: the region from ``unseen_from``
    (longer than anything in training) to the right edge, across both."""
    left, right, top, bottom, gap, band = 44, 12, 16, 34, 10, 48
    w = width - left - right
    h = height - top - bottom - gap - band
    train = panel.get("train") or []
    ends = [b["hi"] + 1 for s in panel["series"] for b in s["buckets"]] + \
        [b["hi"] + 1 for b in train if b["n"]] + \
        ([panel["unseen_from"] + panel["width"]] if panel.get("unseen_from") is not None else [])
    x1 = max(ends, default=1)
    x0 = 0
    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * w
    def py(y):
        return top + h - y * h
    band_top = top + h + gap
    lines = []
    for s in panel["series"]:
        pts = [((b["lo"] + b["hi"] + 1) / 2, b["rate"], b) for b in s["buckets"] if b["rate"] is not None]
        lines.append({"colour": series_colour(s["colour"]), "title": s["title"],
                      "line": " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts),
                      "dots": [{"x": round(px(x), 1), "y": round(py(y), 1), "b": b} for x, y, b in pts]})
    top_n = max((b["n"] for b in train), default=0) or 1
    bars = [{"x": round(px(b["lo"]), 1), "w": round(max(0.5, px(b["hi"] + 1) - px(b["lo"]) - 0.5), 1),
             "y": round(band_top + band - b["n"] / top_n * band, 1), "h": round(b["n"] / top_n * band, 1),
             "b": b} for b in train if b["n"]]
    shade = None
    if panel.get("unseen_from") is not None and panel["unseen_from"] < x1:
        sx = px(panel["unseen_from"])
        shade = {"x": round(sx, 1), "w": round(left + w - sx, 1), "y": top, "h": band_top + band - top,
                 "from": panel["unseen_from"], "max": panel["train_max"]}
    return {"width": width, "height": height, "left": left, "top": top, "plot_w": w, "plot_h": h,
            "band_top": band_top, "band_h": band, "bottom": band_top + band, "lines": lines, "bars": bars,
            "shade": shade, "train_top": top_n,
            "x_ticks": [{"x": round(px(t), 1), "label": fmt_tick(t)} for t in nice_ticks(x0, x1, 5) if x0 <= t <= x1],
            "y_ticks": [{"y": round(py(t), 1), "label": f"{round(t * 100)}%"} for t in (0, 0.5, 1)]}
