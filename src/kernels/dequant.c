/*
 * dequant.c - row dequantizers of the quantized dtypes: the reference (the dtype row's own
 * to_f32 / to_f32_range, the specification) and the lookup of the SIMD versions
 * (x86/dequant_<isa>.c, written once in x86/dequant_x86.h). Contracts: kernels.h.
 */
#include "kernels.h"

void sk_dequant_ref(shrink_dtype t, const void *row, int64_t k0, int64_t n, float *dst) {
    const sk_dtype_traits *d = sk_dtype(t);
    if (d->row_head > 0) d->to_f32_range(row, k0, n, dst);
    else d->to_f32((const uint8_t *)row + (uint64_t)k0 / d->block * d->bytes, dst, n);
}

void sk_dequant_fill(sk_isa_table *tb) {
    for (int i = 0; i < SHRINK_DTYPE_COUNT; i++) {
        const shrink_dtype t = (shrink_dtype)i;
        sk_dequant_fn f = NULL;
        if (sk_dtype_quantized(t)) {
            if (tb->isa >= SK_ISA_AVX512) f = sk_dequant_avx512(t);
            if (!f && tb->isa >= SK_ISA_AVX2) f = sk_dequant_avx2(t);
        }
        tb->dtype[t].dequant = f;
    }
}

sk_dequant_fn sk_dequant_get(sk_isa isa, shrink_dtype t) {
    if ((unsigned)t >= SHRINK_DTYPE_COUNT) return NULL;
    return sk_kernel_table(isa)->dtype[t].dequant;
}
