#!/usr/bin/env python3
"""distill_matrix_report.py - the Markdown tables (and SVGs) of bench/distill_matrix.sh's runs.

    python3 bench/distill_matrix_report.py [OUTDIR] [--svg-dir docs]

For each teacher: one row per run (final held-out ppl and KL to the teacher on the validation
windows, KL as a multiple of the CE-only cut student's, tok/s of the run), then the ppl / KL
against tokens seen (tools/distill_plot.py's table; with --svg-dir, its SVG
distill-matrix-<prefix>.svg). A run not (yet) done is a "not run" row. Pure Python.
"""
import json
import math
import os
import subprocess
import sys

TEACHERS = [('L', 'mix-llama-22m-long'), ('g', 'mix-gpt2-30m'), ('m', 'mix-llama-22m')]
RUNS = [('scratch', 'from scratch (random init), CE only', '`--alpha 0`, student `--init random`'),
        ('ce', 'cut from the teacher, CE only', '`--alpha 0`'),
        ('soft9', 'distilled, soft', '`--alpha 0.9`'),
        ('soft5', 'distilled, soft', '`--alpha 0.5`'),
        ('soft9t2', 'distilled, soft', '`--alpha 0.9 --temperature 2`'),
        ('weak', 'weak (teacher top-1)', '`--alpha 0.5 --mode weak`'),
        ('top32', 'top-32, teacher cache', '`--alpha 0.9 --top-k 32 --teacher-cache`'),
        ('syn', 'synthetic-only (shrink synth), soft', '`--alpha 0.9`, data: synth')]


def summary(path):
    if not os.path.exists(path):
        return None
    for line in reversed(open(path).read().splitlines()):
        if line.startswith('{') and '"output"' in line:
            return json.loads(line)
    return None


def main(argv):
    out, svg_dir = 'runs/matrix', None
    i = 0
    while i < len(argv):
        if argv[i] == '--svg-dir':
            svg_dir = argv[i + 1]; i += 2
        else:
            out = argv[i]; i += 1
    here = os.path.dirname(os.path.abspath(__file__))
    plot = os.path.join(here, '..', 'tools', 'distill_plot.py')
    for p, teacher in TEACHERS:
        ce = summary(os.path.join(out, p + '_ce.json'))
        print('#### teacher %s\n' % teacher)
        print('| run | options | held-out ppl | KL to teacher | KL vs CE-only cut | tok/s |')
        print('| --- | --- | --- | --- | --- | --- |')
        if ce:
            print('| the cut student, untrained | | %.2f | %.3f | %.2f× | |' %
                  (math.exp(ce['val_loss_start']), ce['val_kl_start'],
                   ce['val_kl_start'] / ce['val_kl']))
        args = []
        for name, what, opts in RUNS:
            s = summary(os.path.join(out, '%s_%s.json' % (p, name)))
            if not s:
                print('| %s | %s | not run | not run | | |' % (what, opts))
                continue
            ratio = ('%.2f×' % (s['val_kl'] / ce['val_kl'])) if ce else ''
            print('| %s | %s | %.2f | %.3f | %s | %.0f |' %
                  (what, opts, math.exp(s['val_loss']), s['val_kl'], ratio, s['tokens_per_s']))
            args.append('%s=%s' % (name, os.path.join(out, '%s_%s.json' % (p, name))))
        print()
        if args:
            cmd = [sys.executable, plot, '--tokens-per-step', '256']
            if svg_dir:
                cmd += ['--svg', os.path.join(svg_dir, 'distill-matrix-%s.svg' % p)]
            print('ppl / KL against tokens seen (validation windows):\n')
            sys.stdout.flush()
            subprocess.run(cmd + args, check=True)
            print()
    speed(out)


def tps(path):
    if not os.path.exists(path):
        return None
    for line in reversed(open(path).read().splitlines()):
        if line.startswith('{') and 'tokens_per_s' in line and '"step":' not in line[:8]:
            return json.loads(line)['tokens_per_s']
    return None


def speed(out):
    """Phase 7: tok/s of train / distill soft / distill from the cache / the teacher's forward,
    per round, and the targets' ratios."""
    rows = []
    for r in (1, 2, 3):
        v = [tps(os.path.join(out, 'sp_%s_%d.json' % (k, r)))
             for k in ('train', 'soft', 'cache', 'fwd')]
        if all(x is not None for x in v):
            rows.append(v)
    if not rows:
        print('throughput (phase 7): not run')
        return
    print('#### throughput, mix-llama-22m-long -> its 3-layer cut (16 steps x 4 x 64, one thread)\n')
    print('| round | train tok/s | distill soft tok/s | distill top-32 cache tok/s | teacher forward tok/s '
          '| bound 1/(1 + c) | soft / train | cache / train |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for i, (tr, so, ca, fw) in enumerate(rows):
        c = tr / fw  # the teacher's forward per token, in units of a student training token
        print('| %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |' %
              (i + 1, tr, so, ca, fw, 1 / (1 + c), so / tr, ca / tr))
    print()


if __name__ == '__main__':
    main(sys.argv[1:])
