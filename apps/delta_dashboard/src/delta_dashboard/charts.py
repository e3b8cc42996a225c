"""Server-side SVG charts: no JavaScript, no external assets, readable at a glance."""

from __future__ import annotations

from html import escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#bab0ac"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_max(value: float) -> float:
    if value <= 0:
        return 1
    step = 10 ** (len(str(int(value))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def fmt(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0", "")
    return str(int(n))


def stacked_bars(hours, series: dict[str, list[int]], width=960, height=320, top_n=6) -> str:
    """Events per hour, stacked by type (the top types, the rest as 'other')."""
    names = list(series)[:top_n]
    other = [sum(v[i] for k, v in series.items() if k not in names) for i in range(len(hours))]
    stacks = {n: series[n] for n in names}
    if any(other):
        stacks["other"] = other
    left, right, top, bottom = 56, 16, 16, 40
    w, h = width - left - right, height - top - bottom
    totals = [sum(v[i] for v in stacks.values()) for i in range(len(hours))]
    ymax = nice_max(max(totals, default=0))
    bw = w / max(len(hours), 1)
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Events per hour by type" class="chart">']
    for k in range(5):
        v = ymax * k / 4
        y = top + h - h * k / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">{fmt(v)}</text>')
    for i, hour in enumerate(hours):
        x = left + i * bw
        y = top + h
        for j, (name, values) in enumerate(stacks.items()):
            n = values[i]
            if not n:
                continue
            bh = h * n / ymax
            y -= bh
            label = f"{hour:%Y-%m-%d %H:00} UTC: {n} {name}"
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{bh:.1f}" '
                f'fill="{color(j) if name != "other" else "#bab0ac"}"><title>{escape(label)}</title></rect>'
            )
        if i % max(len(hours) // 8, 1) == 0:
            out.append(
                f'<text x="{x + bw / 2:.1f}" y="{top + h + 16}" class="axis" text-anchor="middle">{hour:%H:00}</text>'
            )
            if hour.hour < max(len(hours) // 8, 1) or i == 0:
                cx, cy = f"{x + bw / 2:.1f}", top + h + 30
                out.append(f'<text x="{cx}" y="{cy}" class="axis" text-anchor="middle">{hour:%b %d}</text>')
    out.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{color(j) if n != "other" else "#bab0ac"}"></i>{escape(n)}</span>'
        for j, n in enumerate(stacks)
    )
    return "".join(out) + f'<div class="legend">{legend}</div>'


def horizontal_bars(totals: dict[str, int], width=460, row=26) -> str:
    """Events per type over the window."""
    items = list(totals.items())[:12]
    height = max(row * len(items) + 8, 40)
    label_w = 150
    vmax = max((v for _unused, v in items), default=1) or 1
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Events per type" class="chart">']
    for i, (name, v) in enumerate(items):
        y = 4 + i * row
        bw = (width - label_w - 70) * v / vmax
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" class="label" text-anchor="end">{escape(name[:22])}</text>')
        box = f'x="{label_w}" y="{y + 3}" width="{max(bw, 1):.1f}" height="{row - 8}"'
        out.append(f'<rect {box} rx="3" fill="{color(i)}"><title>{escape(name)}: {v}</title></rect>')
        out.append(f'<text x="{label_w + bw + 6:.1f}" y="{y + 16}" class="value">{fmt(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def history_bars(history: list[dict], width=460, height=150) -> str:
    """Rows added per commit, oldest to newest (the table's version history)."""
    items = list(reversed(history))
    if not items:
        return '<p class="muted">No versions yet.</p>'
    left, bottom = 8, 24
    w, h = width - 2 * left, height - bottom - 8
    vmax = nice_max(max((x["rows"] for x in items), default=1))
    bw = w / len(items)
    ops = {}
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Rows added per version" class="chart">']
    for i, x in enumerate(items):
        c = ops.setdefault(x["operation"], color(len(ops)))
        bh = max(h * x["rows"] / vmax, 2)
        label = f"v{x['version']} {x['operation']} {x['timestamp'][:19]}: {x['rows']} rows, {x['files']} files"
        out.append(
            f'<rect x="{left + i * bw + 1:.1f}" y="{8 + h - bh:.1f}" width="{max(bw - 2, 1):.1f}" '
            f'height="{bh:.1f}" fill="{c}"><title>{escape(label)}</title></rect>'
        )
    out.append(f'<text x="{left}" y="{height - 6}" class="axis">v{items[0]["version"]}</text>')
    out.append(
        f'<text x="{width - left}" y="{height - 6}" class="axis" text-anchor="end">v{items[-1]["version"]}</text>'
    )
    out.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{escape(op)}</span>' for op, c in ops.items())
    return "".join(out) + f'<div class="legend">{legend}</div>'
