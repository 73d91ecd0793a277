#!/usr/bin/env python3
"""Float64 reference of shrink's palette k-means (src/quant/palette.c, sk_kmeans1d).

Weighted one-dimensional k-means (Lloyd's algorithm), written independently with numpy:
  init    the weighted quantiles (e + 1/2) / k: for each e the first sorted value whose
          inclusive cumulative weight reaches (e + 1/2) / k of the total;
  assign  each value to the nearest centroid, ties to the lower one (np.searchsorted on the
          midpoints of the ascending centroids, side='left');
  update  each centroid to the weighted mean of its values (np.bincount); an empty cluster
          keeps its centroid; the centroids are sorted again;
  stop    when no value changes cluster, or after 100 assignments.

Writes tests/fixtures/palette/kmeans_ref.txt (or the path given): per case a line
"case N K WEIGHTED", then the N values (float32, as %.9g), the N weights if WEIGHTED, and the
K centroids (float64, hex). tests/test_palette.c runs sk_kmeans1d on the same data and
compares the centroids (1e-6 of the largest).

Usage: /usr/bin/python3 tools/ref_check/kmeans_ref.py [OUT]   (needs numpy)
"""
import sys

import numpy as np


def kmeans1d(x, w, k, max_iter=100):
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64)
    if not (w.sum() > 0):
        w = np.ones_like(x)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw = np.cumsum(ws)
    q = (np.arange(k) + 0.5) / k * cw[-1]
    idx = np.minimum(np.searchsorted(cw, q, side="left"), len(xs) - 1)
    c = xs[idx].copy()
    prev = None
    for _ in range(max_iter):
        mid = 0.5 * (c[:-1] + c[1:])
        a = np.searchsorted(mid, xs, side="left")
        if prev is not None and np.array_equal(a, prev):
            break
        sw = np.bincount(a, weights=ws, minlength=k)
        sx = np.bincount(a, weights=ws * xs, minlength=k)
        nz = (np.bincount(a, minlength=k) > 0) & (sw > 0)
        c[nz] = sx[nz] / sw[nz]
        c.sort()
        prev = a
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/palette/kmeans_ref.txt"
    rng = np.random.default_rng(20261207)
    cases = []
    g = rng.standard_normal
    cases.append((g(800) * 0.02, None, 16))
    cases.append((g(800) * 0.02, 0.01 + 4 * rng.random(800) * rng.random(800), 16))
    cases.append((g(600) ** 3, None, 4))
    cases.append((g(600), rng.random(600), 4))
    cases.append((g(1200) * 0.05, None, 256))
    cases.append((np.round(g(64) * 3) / 4, None, 16))  # few distinct values: ties, empties
    cases.append((g(700) * np.where(rng.random(700) < 0.02, 20.0, 1.0), None, 16))  # outliers
    with open(out, "w") as f:
        for x, w, k in cases:
            x = np.asarray(x, dtype=np.float32)
            w = None if w is None else np.asarray(w, dtype=np.float32)
            c = kmeans1d(x.astype(np.float64), None if w is None else w.astype(np.float64), k)
            f.write("case %d %d %d\n" % (len(x), k, w is not None))
            f.write(" ".join("%.9g" % v for v in x) + "\n")
            if w is not None:
                f.write(" ".join("%.9g" % v for v in w) + "\n")
            f.write(" ".join(float(v).hex() for v in c) + "\n")


if __name__ == "__main__":
    main()
