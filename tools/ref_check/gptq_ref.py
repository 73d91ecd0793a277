#!/usr/bin/env python3
"""Float64 reference of shrink's GPTQ (issue 14, point 3), written from the paper (Frantar et al.
2023) and the authors' gptq.py (github.com/IST-DASLab/gptq, GPTQ.fasterquant with
static_groups as in AutoGPTQ), independent of shrink: numpy only, no lazy batches (every
column's error is pushed onto all later columns at once), the inverse Hessian by
numpy.linalg.inv and its Cholesky factor by numpy.linalg.cholesky.

    H = sum_t x_t x_t^T; dead inputs (H_cc == 0): H_cc = 1, W[:, c] = 0
    act-order: columns by descending diag(H) (stable), static groups (scales of every group
               from W as given, before any rounding)
    H += damp * mean(diag H) * I;  U = chol(H^-1)^T (upper)
    for each column j (in order): a group starting here (no act-order) gets its scales from
      the current values; q = quant(w_j); err = (w_j - q) / U_jj; w_{>j} -= err * U_{j,>j}

Scales of a group (the dtype's round-to-nearest formulas of ggml / shrink, computed in f32 and
stored in f16 as the C code does):
    q4_0 d = signed absmax / -8   q = clamp(round(x/d), -8, 7)   (x = d q)
    q4_1 d = (max - min) / 15, m = min   q = clamp(round((x-m)/d), 0, 15)   (x = d q + m)
    q5_0 / q5_1 as q4_* with 16 / 31;  q8_0 d = absmax / 127, q in [-127, 127]
    int4_gG d = absmax / 7, q in [-7, 7];  int4_gG_asym as q4_1;  int8_ch d = absmax / 127 (f32)

The matrix and inputs come from a splitmix64 generator both sides implement (seed below);
X[t][c] = s_c * (z1 + z2 / 2) with s_c a power of two and some columns always zero (dead), so
both sides have bit-identical inputs. Writes tests/fixtures/gptq/gptq_ref.bin, which
tests/test_gptq.c compares sk_gptq_quantize with (the test needs no python):

    "GPTQREF1", int32 rows, cols, T, n_cases, uint64 seed, then per case:
    char dtype[16], int32 act_order, int32 block, float64 damp, float64 rel_err,
    float32 Q[rows * cols] (the dequantized result, row-major)

rel_err = ||(W - Q) X^T||_F / ||W X^T||_F.

Run: /usr/bin/python3 tools/ref_check/gptq_ref.py   (Debian: apt-get install python3-numpy)
"""
import os
import struct
import sys

import numpy as np

ROWS, COLS, T, SEED = 8, 256, 384, 0x6A09E667F3BCC908
M64 = (1 << 64) - 1

CASES = [  # dtype, act_order, block, damp
    ("int4_g128", 0, 128, 0.01),
    ("int4_g128", 1, 128, 0.01),
    ("int4_g32_asym", 0, 64, 0.01),
    ("q4_0", 0, 128, 0.01),
    ("q4_0", 1, 32, 0.01),
    ("q4_1", 0, 128, 0.1),
    ("q5_0", 0, 128, 0.01),
    ("q5_1", 1, 128, 0.01),
    ("q8_0", 0, 128, 0.01),
    ("int8_ch", 0, 96, 0.01),
]


class SplitMix:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):  # [-1, 1)
        return ((self.next() >> 11) * (1.0 / (1 << 53))) * 2.0 - 1.0


def inputs():
    g = SplitMix(SEED)
    W = np.array([[g.uniform() for _ in range(COLS)] for _ in range(ROWS)])
    s = np.array([float(1 << (g.next() % 4)) for _ in range(COLS)])
    X = np.zeros((T, COLS))
    for t in range(T):
        for c in range(COLS):
            z1 = g.uniform()
            z2 = g.uniform()
            X[t, c] = 0.0 if c % 61 == 5 else s[c] * (z1 + z2 * 0.5)
    # correlate neighbouring inputs (exact in both: a power-of-two multiple and one add)
    X2 = X.copy()
    X2[:, 1:] = X[:, 1:] + X[:, :-1] * 0.5
    X2[:, [c for c in range(COLS) if c % 61 == 5]] = 0.0
    return W, X2


f32 = np.float32


def f16(v):
    return float(np.float16(f32(v)))


TYPES = {  # name: (group, lo, hi, asym, kind)
    "q4_0": (32, -8, 7, 0, "signed"), "q5_0": (32, -16, 15, 0, "signed"),
    "q4_1": (32, 0, 15, 1, "f16"), "q5_1": (32, 0, 31, 1, "f16"),
    "q8_0": (32, -127, 127, 0, "abs16"),
    "int4_g32": (32, -7, 7, 0, "abs16"), "int4_g64": (64, -7, 7, 0, "abs16"),
    "int4_g128": (128, -7, 7, 0, "abs16"),
    "int4_g32_asym": (32, 0, 15, 1, "f16"), "int4_g64_asym": (64, 0, 15, 1, "f16"),
    "int4_g128_asym": (128, 0, 15, 1, "f16"), "int8_ch": (0, -127, 127, 0, "abs32"),
}


def scales(name, x):
    """(d, m) of one group of values x (float64) as the dtype stores them."""
    g, lo, hi, asym, kind = TYPES[name]
    xf = x.astype(np.float32)
    if asym:
        mn, mx = f32(xf.min()), f32(xf.max())
        return f16(f32(mx - mn) / f32(hi)), f16(mn)
    if kind == "signed":
        i = int(np.argmax(np.abs(xf)))
        return f16(f32(xf[i]) / f32(lo)), 0.0
    amax = f32(np.abs(xf).max())
    d = f32(amax / f32(hi))
    return (f16(d) if kind == "abs16" else float(d)), 0.0


def quant(name, x, d, m):
    """Dequantized values of the column x (one value per row) under per-row scales d, m."""
    g, lo, hi, asym, kind = TYPES[name]
    out = np.zeros_like(x)
    for r in range(len(x)):
        if d[r] == 0.0:
            out[r] = m[r] if asym else 0.0
            continue
        v = (x[r] - m[r]) / d[r] if asym else x[r] / d[r]
        c = np.floor(abs(v) + 0.5) * np.sign(v)  # round half away from zero, as C's round
        c = min(max(c, lo), hi)
        out[r] = float(f32(d[r]) * f32(c) + f32(m[r])) if asym else float(f32(d[r]) * f32(c))
    return out


def gptq(name, W, X, act_order, damp):
    g = TYPES[name][0] or COLS
    W = W.copy()
    H = X.T @ X
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    ng = COLS // g
    d = np.zeros((ROWS, ng))
    m = np.zeros((ROWS, ng))
    if act_order:
        for b in range(ng):
            for r in range(ROWS):
                d[r, b], m[r, b] = scales(name, W[r, b * g:(b + 1) * g])
        perm = np.argsort(-np.diag(H), kind="stable")
    else:
        perm = np.arange(COLS)
    W = W[:, perm]
    H = H[perm][:, perm]
    H[np.diag_indices(COLS)] += damp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    Q = np.zeros((ROWS, COLS))
    for j in range(COLS):
        c = perm[j]
        if not act_order and c % g == 0:
            for r in range(ROWS):
                d[r, c // g], m[r, c // g] = scales(name, W[r, j:j + g])
        q = quant(name, W[:, j], d[:, c // g], m[:, c // g])
        Q[:, c] = q
        err = (W[:, j] - q) / U[j, j]
        W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
        W[:, j] = q
    return Q


def main():
    W, X = inputs()
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(here, "..", "..", "tests", "fixtures", "gptq")
    os.makedirs(outdir, exist_ok=True)
    ref = W @ X.T
    blob = bytearray(b"GPTQREF1" + struct.pack("<iiiiQ", ROWS, COLS, T, len(CASES), SEED))
    for name, act, block, damp in CASES:
        Q = gptq(name, W, X, act, damp)
        rel = np.linalg.norm((W - Q) @ X.T) / np.linalg.norm(ref)
        print(f"{name:14s} act_order={act} damp={damp}: rel layer error {rel:.6g}", file=sys.stderr)
        blob += struct.pack("<16siidd", name.encode(), act, block, damp, rel)
        blob += Q.astype("<f4").tobytes()
    path = os.path.join(outdir, "gptq_ref.bin")
    with open(path, "wb") as fh:
        fh.write(blob)
    print(f"wrote {path} ({len(blob)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
