/*
 * palette.h (quant) - the k-means behind the palette types (src/kernels/palette.h).
 *
 * sk_kmeans1d: weighted one-dimensional k-means (Lloyd's algorithm) in float64. The values
 * are sorted once; every cluster is then a run of the sorted values between the midpoints of
 * neighbouring centroids (ties to the lower centroid), found by binary search, and its new
 * centroid the weighted mean of the run from prefix sums. Initial centroids: the weighted
 * quantiles (e + 1/2) / k of the values (deterministic: no random seed needed, the same
 * input gives the same palette). Iterates until no cluster boundary moves or max_iter; an
 * empty cluster keeps its centroid. The float64 reference is tools/ref_check/kmeans_ref.py;
 * tests/test_palette.c compares them through tests/fixtures/palette/kmeans_ref.txt.
 */
#ifndef SK_QUANT_PALETTE_H
#define SK_QUANT_PALETTE_H

#include "../kernels/palette.h"

/* Centroids of the n values x (weights w, NULL: all 1; a zero total weight: all 1) into
 * cent[0..k) ascending. Returns the iterations run (>= 1), or -1 if out of memory. */
SK_HIDDEN int sk_kmeans1d(const float *x, const float *w, int64_t n, int k, int max_iter,
                          double *cent);

/* The palettes of a (rows, cols) tensor x for palette type t (k = sk_pal_k(t)), group by group:
 * groups of k consecutive rows, the last one of g = rows % k rows if that is not 0, with g
 * entries (one per row head); element (r, c) weighted by imatrix[c] when given. Output
 * pal[group * k + e] (f32) for e < g. On the OpenMP threads. SHRINK_ERR_NOMEM on failure. */
SK_HIDDEN shrink_status sk_palette_fit(shrink_dtype t, const float *x, int64_t rows, int64_t cols,
                                       const float *imatrix, float *pal);

#endif /* SK_QUANT_PALETTE_H */
