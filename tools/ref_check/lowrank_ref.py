#!/usr/bin/env python3
"""Float64 reference of shrink's low-rank truncation (issue 15, point 1), written from the papers
with numpy's LAPACK SVD, independent of shrink's eigensolver: for two small random matrices W
(10 x 16: shrink decomposes W C W^T; 16 x 10: shrink decomposes T^T W^T W T) and a random
calibration input X with unequal column scales, the rank-r approximation W' of

  svd     A = W                                   W' = A_r
  asvd    A = W diag(s), s_j = mean_t |x_tj|^0.5  W' = A_r diag(1/s)       (Yuan et al. 2023)
  whiten  A = W L, L L^T = X^T X + d I,           W' = A_r L^-1            (SVD-LLM, Wang et
          d = 1e-3 * mean(diag X^T X)                                        al. 2024)

with A_r = U_r S_r V_r^T from numpy.linalg.svd, and the singular values of A.
Writes tests/fixtures/lowrank/ref.safetensors (F64 tensors: W{a,b}, X{a,b}, and per method
"<method>{a,b}.recon" (m x n) and "<method>{a,b}.sigma" (min(m, n)); rank r = 4), which
tests/test_lowrank.c compares sk_lowrank_matrix's result with (the test needs no python).

Run (Debian: apt-get install python3-numpy): /usr/bin/python3 tools/ref_check/lowrank_ref.py [OUT]
"""
import json
import os
import struct
import sys

import numpy as np

RANK = 4
ALPHA = 0.5
DAMP = 1e-3


def truncate(W, X, method):
    if method == "svd":
        A, back = W, lambda M: M
    elif method == "asvd":
        s = np.mean(np.abs(X), axis=0) ** ALPHA
        A, back = W * s[None, :], lambda M: M / s[None, :]
    else:
        C = X.T @ X
        C = C + DAMP * np.mean(np.diag(C)) * np.eye(C.shape[0])
        L = np.linalg.cholesky(C)
        A, back = W @ L, lambda M: np.linalg.solve(L.T, M.T).T
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    Ar = (U[:, :RANK] * S[:RANK]) @ Vt[:RANK]
    return back(Ar), S


def save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "fixtures", "lowrank", "ref.safetensors")
    rng = np.random.RandomState(15)
    t = {}
    for tag, (m, n) in (("a", (10, 16)), ("b", (16, 10))):
        W = rng.standard_normal((m, n)).astype(np.float32).astype(np.float64)
        X = rng.standard_normal((40, n)) * np.exp(rng.uniform(-1.5, 1.5, n))[None, :]
        X = X.astype(np.float32).astype(np.float64)  # exactly representable in f32 (the C input)
        t["W" + tag], t["X" + tag] = W, X
        for method in ("svd", "asvd", "whiten"):
            R, S = truncate(W, X, method)
            t[method + tag + ".recon"], t[method + tag + ".sigma"] = R, S
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save(out, t)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
