#!/usr/bin/env python3
"""distill_plot.py - held-out ppl and KL to the teacher against tokens seen, from the `--json`
lines of `shrink distill ... --valid FILE --eval-every N` runs (docs/distillation.md).

    python3 tools/distill_plot.py --tokens-per-step 512 --svg out.svg LABEL=run.jsonl ...

Prints a Markdown table (one row per run, one column per evaluated step: "ppl / KL") and, with
--svg, writes a two-panel SVG (ppl left, KL right; x: tokens seen). Pure Python, no
dependencies. Step 0 is the summary's val_loss_start / val_kl_start (in the table; the plot
starts at the first evaluated step).
"""
import json
import math
import sys

COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2',
          '#7f7f7f', '#17becf', '#bcbd22']


def read_run(path, tps):
    pts = {}
    for line in open(path):
        line = line.strip()
        if not line.startswith('{'):
            continue
        d = json.loads(line)
        if 'step' in d and d.get('val_loss') is not None and 'steps' in d:
            pts[d['step'] * tps] = (math.exp(d['val_loss']), d.get('val_kl'))
        if 'val_loss_start' in d and d['val_loss_start'] is not None:
            pts[0] = (math.exp(d['val_loss_start']), d.get('val_kl_start'))
    return sorted(pts.items())


def panel(out, runs, x0, y0, w, h, idx, title, log_y):
    xs = [t for _, p in runs for t, _ in p]
    ys = [v[idx] for _, p in runs for _, v in p if v[idx] is not None]
    if not xs or not ys:
        return
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xmax, ymin, ymax = max(xs) or 1, f(min(ys)), f(max(ys))
    if ymax == ymin:
        ymax += 1
    X = lambda t: x0 + 50 + (w - 60) * t / xmax
    Y = lambda v: y0 + h - 30 - (h - 50) * (f(v) - ymin) / (ymax - ymin)
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' %
               (x0 + 50, y0 + 20, w - 60, h - 50))
    out.append('<text x="%d" y="%d" font-size="13">%s</text>' % (x0 + 50, y0 + 14, title))
    for k in range(5):
        v = ymin + (ymax - ymin) * k / 4
        val = 10 ** v if log_y else v
        yy = y0 + h - 30 - (h - 50) * k / 4
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%.3g</text>' %
                   (x0 + 46, yy + 3, val))
        xv = xmax * k / 4
        out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%d</text>' %
                   (X(xv), y0 + h - 16, round(xv)))
    out.append('<text x="%d" y="%d" font-size="10" text-anchor="middle">tokens seen</text>' %
               (x0 + 50 + (w - 60) // 2, y0 + h - 3))
    for i, (label, p) in enumerate(runs):
        q = [(t, v[idx]) for t, v in p if v[idx] is not None]
        pts = ' '.join('%.1f,%.1f' % (X(t), Y(v)) for t, v in q)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>' %
                   (pts, COLORS[i % len(COLORS)]))


def main(argv):
    tps, svg, runs = None, None, []
    i = 0
    while i < len(argv):
        if argv[i] == '--tokens-per-step':
            tps = int(argv[i + 1]); i += 2
        elif argv[i] == '--svg':
            svg = argv[i + 1]; i += 2
        else:
            label, path = argv[i].split('=', 1)
            runs.append(label); runs.append(path); i += 1
    if not tps or not runs:
        sys.exit(__doc__)
    data = [(runs[j], read_run(runs[j + 1], tps)) for j in range(0, len(runs), 2)]
    steps = sorted({t for _, p in data for t, _ in p})
    print('| run | ' + ' | '.join('%d' % t for t in steps) + ' |')
    print('| --- |' + ' --- |' * len(steps))
    for label, p in data:
        m = dict(p)
        cell = lambda t: ('%.2f / %.3f' % (m[t][0], m[t][1]) if t in m and m[t][1] is not None
                          else '%.2f' % m[t][0] if t in m else '')
        print('| %s | ' % label + ' | '.join(cell(t) for t in steps) + ' |')
    if svg:
        W, H = 860, 330
        out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'font-family="sans-serif">' % (W, H + 20 * ((len(data) + 3) // 4))]
        out.append('<rect width="100%" height="100%" fill="white"/>')
        trained = [(label, [(t, v) for t, v in p if t > 0]) for label, p in data]
        panel(out, trained, 0, 0, W // 2, H, 0, 'held-out perplexity (log scale)', True)
        panel(out, trained, W // 2, 0, W // 2, H, 1, 'held-out KL to the teacher', False)
        for i, (label, _) in enumerate(data):
            x, y = 60 + 200 * (i % 4), H + 14 + 20 * (i // 4)
            c = COLORS[i % len(COLORS)]
            out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>' %
                       (x, y - 4, x + 20, y - 4, c))
            out.append('<text x="%d" y="%d" font-size="11">%s</text>' % (x + 25, y, label))
        out.append('</svg>')
        open(svg, 'w').write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main(sys.argv[1:])
