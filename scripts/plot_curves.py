#!/usr/bin/env python3
"""Training-loss curves of Prelude jobs as one SVG figure (standard library only).

Each input is the CSV that `prelude metrics JOB` prints (its `step` rows are used);
give each a legend label:

    prelude metrics job-000007 > x22.csv
    prelude metrics job-000008 > k22.csv
    scripts/plot_curves.py fig.svg "Xavier plain-22=x22.csv" "Kaiming plain-22=k22.csv"

Options: --title TEXT, --ymax Y (top of the loss axis, default: the largest loss),
--dash LABEL_SUBSTRING (curves whose label contains it are drawn dashed; repeatable),
--colour-by-last-word (curves whose labels end in the same word share a colour).
"""
import argparse
import math
import csv
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 60, 200, 40, 50


def read_curve(path):
    points = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("event") == "step" and row.get("step") and row.get("loss"):
                points.append((float(row["step"]), float(row["loss"])))
    if not points:
        raise SystemExit(f"{path}: no step rows with a loss (is it `prelude metrics JOB` CSV?)")
    return points


def nice_ticks(top, count=5):
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the SVG file to write")
    p.add_argument("curves", nargs="+", help="LABEL=FILE.csv")
    p.add_argument("--title", default="training loss")
    p.add_argument("--ymax", type=float, default=0.0)
    p.add_argument("--dash", action="append", default=[])
    p.add_argument("--colour-by-last-word", action="store_true",
                   help="curves whose labels end in the same word share a colour")
    a = p.parse_args()

    curves = []
    for spec in a.curves:
        label, sep, path = spec.rpartition("=")
        if not sep or not label:
            raise SystemExit(f"{spec}: expected LABEL=FILE.csv")
        curves.append((label, read_curve(path)))
    xmax = max(x for _, pts in curves for x, _ in pts)
    ymax = a.ymax or max(y for _, pts in curves for _, y in pts)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * x / xmax

    def sy(y):
        return TOP + ph * (1 - min(y, ymax) / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT + pw / 2}" y="22" text-anchor="middle" font-size="14">{a.title}</text>']
    for t in nice_ticks(ymax):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(xmax):
        out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eee"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 12}" text-anchor="middle">step</text>')
    out.append(f'<text x="16" y="{TOP + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + ph / 2})">training loss</text>')
    keys = []
    for i, (label, pts) in enumerate(curves):
        key = label.split()[-1] if a.colour_by_last_word else label
        if key not in keys:
            keys.append(key)
        colour = COLOURS[keys.index(key) % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if any(d in label for d in a.dash) else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>')
        ly = TOP + 14 + 18 * i
        out.append(f'<line x1="{LEFT + pw + 12}" x2="{LEFT + pw + 36}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{LEFT + pw + 42}" y="{ly}">{label}</text>')
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{a.out}: {len(curves)} curves, steps 0-{xmax:g}, loss 0-{ymax:g}", file=sys.stderr)


if __name__ == "__main__":
    main()
