#!/usr/bin/env python3
"""Float64 reference of AWQ's scale search (issue 14, point 4), written from the paper (Lin et
al. 2023) and AutoAWQ's _search_best_scale, independent of shrink's C code: for a small random
layer (two linears sharing one input X, with a few outlier channels) it searches

    s(alpha) = max(mean_t |x_tj| ^ alpha, 1e-4),  s /= sqrt(max(s) * min(s)),
    loss(alpha) = sum over linears and rows of || (w - Q(w * s) / s) X^T ||^2 / T

over alpha = a / 20, a = 0..20 (the first least loss wins), where Q is shrink's int4_g32
round-to-nearest quantizer (src/kernels/q_shrink.c int4_sym_quant, emulated bit for bit in
float32: d = f16(absmax / 7), q = roundf(clamp(x / d, -7, 7))). The loss is float64.

Writes tests/fixtures/awq/search.txt (float32 values as 8 hex digits of their bits), which
tests/test_awq.c reads: X, the weights, and the expected alpha index, scales and losses.

Run (Debian: apt-get install python3-numpy):
  /usr/bin/python3 tools/ref_check/awq_ref.py [OUT]
"""
import os
import sys

import numpy as np

T, COLS, ROWS, GRID, G = 48, 64, (12, 8), 20, 32


def f32(a):
    return np.asarray(a, dtype=np.float32)


def roundf(v):
    """C roundf: half away from zero (np.round is half to even)."""
    return f32(np.sign(v) * np.floor(np.abs(v) + f32(0.5)))


def int4_g32_round_trip(x):
    """dequant(quant(x)) of one row, as int4_sym_quant / int4_sym_deq with g = 32."""
    x = f32(x)
    out = np.empty_like(x)
    for b in range(0, x.size, G):
        blk = x[b:b + G]
        amax = f32(np.max(np.abs(blk)))
        d = f32(np.float16(f32(amax / f32(7.0))))  # f16 round to nearest even
        if d != 0:
            q = roundf(np.clip(f32(blk / d), f32(-7.0), f32(7.0)))
        else:
            q = np.zeros_like(blk)
        out[b:b + G] = f32(d * q)
    return out


def search(X, Ws):
    X64 = X.astype(np.float64)
    xmean = np.mean(np.abs(X64), axis=0)
    H = X64.T @ X64 / X.shape[0]
    best, best_a, best_s, losses = np.inf, 0, None, []
    for a in range(GRID + 1):
        al = a / GRID
        s = f32(np.maximum(xmean ** al, 1e-4))
        nrm = f32(np.sqrt(np.float64(s.max()) * np.float64(s.min())))
        s = f32(s / nrm)
        loss = 0.0
        for W in Ws:
            for w in W:
                ws = f32(w * s)
                qd = int4_g32_round_trip(ws)
                d = f32(w - f32(qd / s)).astype(np.float64)
                loss += d @ H @ d
        losses.append(loss)
        if loss < best:
            best, best_a, best_s = loss, a, s
    return best_a, best_s, losses


def hexes(a):
    return " ".join("%08x" % v for v in f32(a).ravel().view(np.uint32))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "fixtures", "awq", "search.txt")
    rng = np.random.default_rng(14)
    chan = np.exp(rng.standard_normal(COLS) * 0.7)
    chan[[3, 17, 40]] *= 12.0  # outlier channels, as LLM activations have
    X = f32(rng.standard_normal((T, COLS)) * chan)
    Ws = [f32(rng.standard_normal((r, COLS)) * 0.1) for r in ROWS]
    a, s, losses = search(X, Ws)
    srt = sorted(losses)
    # the winner must be clear, so float32 arithmetic in C picks the same alpha
    assert srt[1] - srt[0] > 1e-3 * srt[0], (srt[0], srt[1])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("# tools/ref_check/awq_ref.py: T cols n_lin rows... grid, then X, W..., the best\n")
        f.write("# alpha index, the scales (f32 bits) and the float64 losses per alpha\n")
        f.write("%d %d %d %s %d\n" % (T, COLS, len(ROWS), " ".join(map(str, ROWS)), GRID))
        f.write(hexes(X) + "\n")
        for W in Ws:
            f.write(hexes(W) + "\n")
        f.write("%d\n" % a)
        f.write(hexes(s) + "\n")
        f.write(" ".join("%.17g" % v for v in losses) + "\n")
    print("alpha %.2f, loss %.6g (alpha 0: %.6g), written %s" % (a / GRID, losses[a], losses[0],
                                                                out))


if __name__ == "__main__":
    main()
